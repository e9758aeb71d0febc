"""Which film is the other breast of which: the pairing a two-breast reading needs.

A radiologist reads a film beside the other breast of the same view, since asymmetry
between the two is itself a finding (MIAS's ASYM class) and the other breast shows what this
woman's normal tissue looks like. A film's *other breast* is the film of the same patient,
the other side and the same view: MIAS pairs every left film with the right one of the same
woman (mdb001 with mdb002); RSNA's own layout says laterality and view in ``train.csv``. A
film whose other breast is not in the list, or whose side is unknown (the RSNA 640-px
export keeps no laterality), has none; a woman with several films of one side and view
(RSNA repeats some) is paired with the first by film id, so the pairing never depends on
the order files were listed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # records counts pairs in its summary, so it imports this module
    from core.data.records import FilmRecord

OTHER_SIDE = {"L": "R", "R": "L"}


def other_breasts(records: Sequence[FilmRecord]) -> list[int | None]:
    """For each record, the position in ``records`` of its other breast's film, or None."""
    by_key: dict[tuple[str, str, str | None], list[int]] = {}
    for position, record in enumerate(records):
        if record.side in OTHER_SIDE:
            by_key.setdefault((record.patient_id, record.side, record.view), []).append(position)
    found: list[int | None] = []
    for record in records:
        if record.side not in OTHER_SIDE:
            found.append(None)
            continue
        candidates = by_key.get((record.patient_id, OTHER_SIDE[record.side], record.view), [])
        found.append(min(candidates, key=lambda p: records[p].film_id) if candidates else None)
    return found


def other_breast_by_film(records: Sequence[FilmRecord]) -> dict[str, FilmRecord]:
    """``other_breasts`` by film id: each film that has its other breast in ``records``."""
    return {records[own].film_id: records[other]
            for own, other in enumerate(other_breasts(records)) if other is not None}


def partner_positions(records: Sequence[FilmRecord]) -> np.ndarray:
    """``other_breasts`` as an index array for reading pairs: a film without its other
    breast is paired with itself, so it is read as if both breasts looked the same (no
    asymmetry to see), which is also how a film uploaded alone is read."""
    return np.array([own if other is None else other
                     for own, other in enumerate(other_breasts(records))], dtype=np.int64)


def unpaired_note(records: Sequence[FilmRecord], partners: np.ndarray) -> str | None:
    """One line on the films read without their other breast, or None when every film has
    it."""
    alone = int(np.sum(partners == np.arange(len(partners))))
    if not alone:
        return None
    return (f"{alone} of {len(records)} film(s) have no film of the other breast (same "
            "woman, other side, same view) and are read against themselves")
