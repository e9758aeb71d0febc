"""What only a dataset's pixels say, found by reading every film once: how many are stored
inverted, per class, which cannot be read, and for DICOM films what their headers' gate says
(modality, presentation intent, laterality, view: ``core.films.dicom_gate``) and doubts.

Loaders never decode films (a collection may be large), so the ``data summary`` command
asks for this separately: inverted films are corrected wherever films are prepared
(``core.prep.preprocess``), but how many there were, and whether their share differs
between classes, is something a person should see before training on them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2

from core.data.records import FilmRecord
from core.errors import BadFilmError
from core.films import film_notes, read_film
from core.prep.preprocess import film_polarity

#: Unreadable films named in full in the survey's warning; the rest are counted.
NAMED = 10


@dataclass
class Survey:
    """Films found inverted (their ids, and a count per class), the read failures (a DICOM
    the gate refuses among them, with its reason), and ``dicom``: how many films of each
    value each field of the DICOM gate holds (None where no film is a DICOM), with the
    films it doubts (``doubtful``: "film: doubt")."""

    inverted: list[str] = field(default_factory=list)
    by_class: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    dicom: dict[str, Any] | None = None
    doubtful: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        """One line for the films that could not be read and one for those the DICOM gate
        doubts, if any (the first ``NAMED`` of each in full: a broken copy can hold
        thousands)."""
        lines = []
        if self.unreadable:
            lines.append(f"{len(self.unreadable)} film(s) could not be read to check their "
                         f"polarity: {_named(self.unreadable)}")
        if self.doubtful:
            lines.append(f"{len(self.doubtful)} DICOM film(s) are doubtful: "
                         f"{_named(self.doubtful)}")
        return lines


def _named(items: Sequence[str]) -> str:
    shown = "; ".join(items[:NAMED])
    return shown + (f"; and {len(items) - NAMED} more" if len(items) > NAMED else "")


#: The DICOM gate's fields counted in the survey (``core.films.dicom_gate``).
GATE_FIELDS = ("modality", "presentation_intent", "laterality", "view_position")


def survey(records: Sequence[FilmRecord], classes: Sequence[str],
           workers: int | None = None) -> Survey:
    """Read every film and check whether it is stored inverted (``film_polarity``).

    Threads, as ``preprocess_files`` uses: decoding and OpenCV release the GIL, and memory
    holds one film per worker. ``by_class`` lists every class of ``classes``, zeros included.
    """
    def one(record: FilmRecord) -> tuple[bool, dict[str, Any]] | str:
        try:
            film = read_film(record.path)
            return film_polarity(film.pixels).inverted, film_notes(film)
        except BadFilmError as error:
            return str(error)

    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            results = list(pool.map(one, records))
    finally:
        cv2.setNumThreads(opencv_threads)
    found = Survey()
    counts: Counter[str] = Counter()
    gates: dict[str, Counter[str]] = {name: Counter() for name in GATE_FIELDS}
    dicoms = 0
    for record, result in zip(records, results):
        if isinstance(result, str):
            found.unreadable.append(result)
            continue
        inverted, notes = result
        if inverted:
            found.inverted.append(record.film_id)
            counts[record.label] += 1
        if "dicom" in notes:
            dicoms += 1
            for name in GATE_FIELDS:
                gates[name][str(notes["dicom"][name] or "not given")] += 1
            found.doubtful.extend(f"{record.film_id}: {doubt}" for doubt in notes["warnings"])
    found.by_class = {name: counts.get(name, 0) for name in classes}
    if dicoms:
        found.dicom = {"films": dicoms, **{name: dict(sorted(gates[name].items()))
                                           for name in GATE_FIELDS}}
    return found
