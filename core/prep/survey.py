"""What only a dataset's pixels say, found by reading every film once: how many are stored
inverted, per class, and which cannot be read.

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

import cv2

from core.data.records import FilmRecord
from core.errors import BadFilmError
from core.films import read_film
from core.prep.preprocess import film_polarity

#: Unreadable films named in full in the survey's warning; the rest are counted.
NAMED = 10


@dataclass
class Survey:
    """Films found inverted (their ids, and a count per class) and the read failures."""

    inverted: list[str] = field(default_factory=list)
    by_class: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        """One line for the films that could not be read, if any (the first ``NAMED`` in
        full: a broken copy can hold thousands)."""
        if not self.unreadable:
            return []
        shown = "; ".join(self.unreadable[:NAMED])
        more = f"; and {len(self.unreadable) - NAMED} more" if len(self.unreadable) > NAMED else ""
        return [(f"{len(self.unreadable)} film(s) could not be read to check their "
                 f"polarity: {shown}{more}")]


def survey(records: Sequence[FilmRecord], classes: Sequence[str],
           workers: int | None = None) -> Survey:
    """Read every film and check whether it is stored inverted (``film_polarity``).

    Threads, as ``preprocess_files`` uses: decoding and OpenCV release the GIL, and memory
    holds one film per worker. ``by_class`` lists every class of ``classes``, zeros included.
    """
    def one(record: FilmRecord) -> bool | str:
        try:
            return film_polarity(read_film(record.path).pixels).inverted
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
    for record, result in zip(records, results):
        if isinstance(result, str):
            found.unreadable.append(result)
        elif result:
            found.inverted.append(record.film_id)
            counts[record.label] += 1
    found.by_class = {name: counts.get(name, 0) for name in classes}
    return found
