"""From films to arrays a model can train on: model inputs and lesion targets.

Lesions travel with their films as ``(row, col, radius)`` on the model-input grid,
computed through each film's ``Transform`` (``map_lesions``) and nowhere else, and put in
that array form by ``core.geometry.lesions_to_array``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from core.data.records import FilmRecord
from core.errors import MammoError
from core.geometry import Transform, lesions_to_array
from core.prep.preprocess import PrepConfig, preprocess_files

log = logging.getLogger(__name__)


@dataclass
class FilmArrays:
    """Model inputs for some films, in the order of ``records``."""

    records: list[FilmRecord]
    images: np.ndarray  # uint8 [N, S, S]
    transforms: list[Transform]  # original film grid -> model-input grid
    lesions: list[np.ndarray]  # per film: (n, 3) rows of (row, col, radius) on the input grid
    labels: np.ndarray  # int64 class ids
    #: Positions (in ``records``) of films found stored inverted and mirrored before they
    #: became inputs (``PrepConfig.fix_inverted``): whoever shows a film the model saw
    #: mirrors these, instead of checking the film's polarity again.
    inverted: frozenset[int] = frozenset()

    def __len__(self) -> int:
        return len(self.records)


def lesions_on_grid(record: FilmRecord, transform: Transform) -> np.ndarray:
    """The film's located lesions as float32 ``(row, col, radius)`` rows on the transform's
    output grid."""
    return lesions_to_array(transform.map_lesions(record.located_lesions), np.float32)


def inverted_note(records: list[FilmRecord]) -> str:
    """One line on films stored inverted, with their count per class."""
    by_class = Counter(record.label for record in records)
    counts = ", ".join(f"{label} {count}" for label, count in sorted(by_class.items()))
    return (f"{len(records)} film(s) were stored inverted (bright background) and were "
            f"corrected ({counts})")


def load_arrays(records: list[FilmRecord], prep: PrepConfig,
                warnings: list[str] | None = None) -> FilmArrays:
    """Read and preprocess films; a film that cannot be read is left out with a warning
    (appended to ``warnings``) instead of stopping the run. Films stored inverted are
    corrected (``PrepConfig.fix_inverted``) and counted in one more warning, since their
    share can differ between classes (the RSNA export's does), which is worth knowing."""
    (arrays,) = film_chunks(records, prep, max(1, len(records)), warnings)
    return arrays


def film_chunks(records: list[FilmRecord], prep: PrepConfig, chunk_films: int,
                warnings: list[str] | None = None) -> Iterator[FilmArrays]:
    """``load_arrays`` a part at a time: the films of ``records`` in order, at most
    ``chunk_films`` of them read and held at once, so that scoring a dataset of any size
    holds one part's films, not all of them (``core.evaluate.evaluate``). A part whose films
    all fail is skipped; the failures, and one note of the films stored inverted over all
    parts, are warned of as ``load_arrays`` does, once the last part is read. Raises
    ``MammoError`` at the end when no film at all could be read."""
    failures: list[str] = []
    inverted: list[FilmRecord] = []
    read_any = False
    for start in range(0, len(records), chunk_films):
        part = _read_part(records[start:start + chunk_films], prep, failures, inverted)
        if part is not None:
            read_any = True
            yield part
    for failure in failures:
        log.warning("film left out: %s", failure)
    if warnings is not None:
        warnings.extend(f"film left out: {failure}" for failure in failures)
    if inverted:
        note = inverted_note(inverted)
        log.info(note)
        if warnings is not None:
            warnings.append(note)
    if not read_any:
        raise MammoError("no film could be read; see the warnings above")


def _read_part(records: list[FilmRecord], prep: PrepConfig, failures: list[str],
               inverted: list[FilmRecord]) -> FilmArrays | None:
    """The films of ``records`` that could be read (None when none could); the others'
    messages are added to ``failures``, the films found stored inverted to ``inverted``."""
    found_inverted: list[int] = []
    images, transforms = preprocess_files([r.path for r in records], prep, failures=failures,
                                          inverted=found_inverted)
    inverted.extend(records[i] for i in sorted(found_inverted))
    keep = [i for i, t in enumerate(transforms) if t is not None]
    if not keep:
        return None
    kept_records = [records[i] for i in keep]
    kept_transforms = [t for t in transforms if t is not None]
    position = {index: kept for kept, index in enumerate(keep)}
    return FilmArrays(
        records=kept_records,
        images=images[keep] if len(keep) < len(records) else images,
        transforms=kept_transforms,
        lesions=[lesions_on_grid(r, t) for r, t in zip(kept_records, kept_transforms)],
        labels=np.array([r.class_id for r in kept_records], dtype=np.int64),
        inverted=frozenset(position[i] for i in found_inverted if i in position),
    )


def other_breast_images(part: FilmArrays, others: Mapping[str, FilmRecord],
                        prep: PrepConfig) -> tuple[np.ndarray, int]:
    """Each film of ``part``'s other breast (``others``: by film id, as
    ``core.data.pairs.other_breast_by_film`` gives them), prepared as the film was, in
    ``part``'s order; and how many films had none. A film without its other breast, or
    whose other breast cannot be read, goes with itself, as training pairs it
    (``partner_positions``). The other films are read again rather than looked up in the
    part being scored, since the two need not fall in the same part."""
    wanted = {row: others[record.film_id] for row, record in enumerate(part.records)
              if record.film_id in others}
    images = part.images.copy()
    paired = 0
    if wanted:
        read = _read_part(list(wanted.values()), prep, [], [])
        by_film = ({} if read is None else
                   {r.film_id: image for r, image in zip(read.records, read.images)})
        for row, record in wanted.items():
            if record.film_id in by_film:  # an unreadable other breast: the film itself
                images[row] = by_film[record.film_id]
                paired += 1
    return images, len(part) - paired
