"""Films to model inputs: read whole (``load_arrays``) or a part at a time (``film_chunks``),
with the same rows, the same warnings and the same refusal when nothing can be read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core.data import load_dataset
from core.data.records import FilmRecord
from core.errors import MammoError
from core.prep.arrays import film_chunks, load_arrays
from core.prep.preprocess import PrepConfig

PREP = PrepConfig(size=64)


@pytest.fixture
def records(synthetic_root: Path, tmp_path: Path) -> list:
    """The synthetic films, copied, with one film's pixels cut off after the dataset was
    loaded: its record stands, and reading it fails."""
    copy = tmp_path / "films"
    shutil.copytree(synthetic_root, copy)
    loaded = load_dataset("mias", copy).records[:11]
    loaded[7].path.write_bytes(b"P5\n128 128\n255\n")
    return loaded


def test_parts_hold_the_rows_of_the_whole_in_order(records: list) -> None:
    whole_warnings: list[str] = []
    whole = load_arrays(records, PREP, whole_warnings)
    part_warnings: list[str] = []
    parts = list(film_chunks(records, PREP, 4, part_warnings))
    assert [len(part) for part in parts] == [4, 3, 3]  # the bad film was the eighth
    assert [r.film_id for part in parts for r in part.records] == \
        [r.film_id for r in whole.records]
    assert np.array_equal(np.concatenate([part.images for part in parts]), whole.images)
    assert np.array_equal(np.concatenate([part.labels for part in parts]), whole.labels)
    assert part_warnings == whole_warnings
    assert len(part_warnings) == 1 and records[7].path.name in part_warnings[0]


def test_a_part_whose_films_all_fail_is_skipped(records: list) -> None:
    parts = list(film_chunks(records[6:9], PREP, 1))
    assert [r.film_id for part in parts for r in part.records] == \
        [records[6].film_id, records[8].film_id]


def test_nothing_readable_is_refused_after_the_last_part(records: list) -> None:
    with pytest.raises(MammoError, match="no film could be read"):
        list(film_chunks(records[7:8], PREP, 1))
    with pytest.raises(MammoError, match="no film could be read"):
        load_arrays(records[7:8], PREP)


def test_each_part_names_its_own_inverted_films(tmp_path: Path) -> None:
    """``FilmArrays.inverted`` holds positions within its own part, so that whoever joins
    the parts (evaluation) can offset them; and a film left out shifts nobody."""
    import cv2

    from factories import screening_film

    flags = [False, True, False, True, True, False]
    records = []
    for i, flag in enumerate(flags):
        path = tmp_path / f"film{i}.png"
        cv2.imwrite(str(path), screening_film(inverted=flag, seed=i))
        records.append(FilmRecord(f"f{i}", f"p{i}", "A", ("A",), path))
    records[2].path.write_bytes(b"not a film")
    parts = list(film_chunks(records, PREP, 3))
    assert [sorted(part.inverted) for part in parts] == [[1], [0, 1]]
    whole = load_arrays(records, PREP)
    assert sorted(whole.inverted) == [1, 2, 3]  # f1, f3, f4 once f2 is left out
