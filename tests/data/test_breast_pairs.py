"""Which film is the other breast of which (core.data.pairs), on hand-made records and on
the shared mini-MIAS films, whose README says every left film has its right one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data import load_dataset
from core.data.pairs import other_breasts, partner_positions, unpaired_note
from core.data.records import RSNA_CLASSES, Dataset, FilmRecord


def _film(film_id: str, patient: str, side: str | None, view: str | None = "CC") -> FilmRecord:
    return FilmRecord(film_id, patient, "no_cancer", RSNA_CLASSES, Path(f"{film_id}.png"),
                      side=side, view=view)


def test_the_other_breast_is_the_same_woman_other_side_same_view() -> None:
    records = [_film("a-lcc", "a", "L"), _film("a-rmlo", "a", "R", "MLO"),
               _film("a-rcc", "a", "R"), _film("b-rcc", "b", "R"), _film("a-lmlo", "a", "L", "MLO")]
    assert other_breasts(records) == [2, 4, 0, None, 1]


def test_no_side_no_partner_and_repeats_pair_with_the_first_film_id() -> None:
    records = [_film("a-r2", "a", "R"), _film("a-l", "a", "L"), _film("a-r1", "a", "R"),
               _film("c", "c", None)]
    # Whatever order the files came in, the left film goes with the first right one by id.
    assert other_breasts(records) == [1, 2, 1, None]
    assert other_breasts(records[::-1]) == [None, 2, 1, 2]  # a-r1 is now at 1


def test_a_film_without_its_other_breast_is_paired_with_itself_and_counted() -> None:
    records = [_film("a-l", "a", "L"), _film("a-r", "a", "R"), _film("b-l", "b", "L")]
    partners = partner_positions(records)
    np.testing.assert_array_equal(partners, [1, 0, 2])
    assert unpaired_note(records, partners).startswith("1 of 3 film(s) have no film of the other")
    assert unpaired_note(records[:2], partner_positions(records[:2])) is None
    summary = Dataset("rsna", Path("."), RSNA_CLASSES, records).summary()
    assert summary["films_with_other_breast"] == 2


def test_every_mias_film_has_its_other_breast(mias_root: Path) -> None:
    dataset = load_dataset("mias", mias_root)
    records = dataset.records
    assert dataset.summary()["films_with_other_breast"] == 256
    others = other_breasts(records)
    assert None not in others and len(records) == 256
    for record, other in zip(records, others):
        mate = records[other]
        assert mate.patient_id == record.patient_id and {mate.side, record.side} == {"L", "R"}
        assert abs(int(mate.film_id[3:]) - int(record.film_id[3:])) == 1  # mdb001 with mdb002
