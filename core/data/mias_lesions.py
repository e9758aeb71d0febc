"""Benign vs malignant lesion crops cut from mini-MIAS films: the second paper's task
(CBIS-DDSM calcification crops, benign vs malignant) on the data that is here.

Every located lesion with a severity becomes one square crop centred on it, ``side_factor``
times its radius wide (within ``min_side`` and ``max_side`` px; zero-padded where the square
leaves the film), written once as a PNG under ``<cache>/mias-lesion-crops/`` and named by the
film's content and the crop's place, so a changed film never reuses a stale crop. A patient's
crops keep the patient's id, so splits stay grouped by patient. Lesions without a location
(MIAS's whole-breast calcifications) cannot be cropped and are listed in the warnings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.atomic import atomic_path
from core.data import mias
from core.data.options import MIAS_LESION_OPTIONS, resolve_options
from core.data.records import Dataset, FilmRecord, Lesion
from core.errors import BadConfigError, MammoError
from core.films import read_film
from core.settings import cache_root

CLASSES = ("BENIGN", "MALIGNANT")
_LABEL = {"B": "BENIGN", "M": "MALIGNANT"}
CROPS = "mias-lesion-crops"


def load(root: Path, **options: Any) -> Dataset:
    """One record per located lesion of the MIAS copy at ``root``. Options
    (``MIAS_LESION_OPTIONS``, where their defaults are): ``side_factor``, ``min_side`` and
    ``max_side``, the crop's side as above."""
    values = resolve_options("mias-lesions", MIAS_LESION_OPTIONS, options)
    side_factor, min_side, max_side = values["side_factor"], values["min_side"], values["max_side"]
    if not 0 < side_factor <= 20 or not 8 <= min_side <= max_side <= 4096:
        raise BadConfigError(f"lesion crops: side_factor {side_factor}, sides {min_side}.."
                             f"{max_side} px are out of range")
    films = mias.load(root)
    out = cache_root() / CROPS
    records: list[FilmRecord] = []
    warnings = list(films.warnings)
    for film in films.records:
        lesions = [lesion for lesion in film.lesions if lesion.severity in _LABEL]
        for number, lesion in enumerate(lesions, start=1):
            if not lesion.located:
                warnings.append(f"{film.film_id}: lesion {number} has no location to crop")
                continue
            side = int(np.clip(round(side_factor * float(lesion.radius)), min_side, max_side))
            try:
                path = _crop(film, lesion, side, out)
            except MammoError as error:
                warnings.append(f"{film.film_id}: lesion {number} left out ({error})")
                continue
            records.append(FilmRecord(
                film_id=f"{film.film_id}-{number}", patient_id=film.patient_id,
                label=_LABEL[str(lesion.severity)], classes=CLASSES, path=path, side=film.side,
                view=film.view, tissue=film.tissue, severity=lesion.severity,
                lesions=(Lesion((float(side // 2), float(side // 2)), lesion.radius,
                                lesion.severity, lesion.kind),),
                synthetic=film.synthetic, extra={"film": film.film_id, "side_px": side}))
    return Dataset("mias-lesions", films.root, CLASSES, records, missing=films.missing,
                   warnings=warnings, synthetic=films.synthetic)


def _crop(film: FilmRecord, lesion: Lesion, side: int, out: Path) -> Path:
    """The crop's PNG, cut and written on first use."""
    row, col = (round(value) for value in lesion.center or (0.0, 0.0))
    digest = hashlib.sha256(film.path.read_bytes()).hexdigest()[:16]
    target = out / f"{film.film_id}-r{row}-c{col}-s{side}-{digest}.png"
    if target.is_file():
        return target
    pixels = read_film(film.path).pixels
    half = side // 2
    padded = np.pad(pixels, half + 1)
    top, left = row + 1, col + 1  # centre in the padded frame, minus half, plus the pad
    crop = padded[top:top + side, left:left + side]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        if not cv2.imwrite(str(tmp), crop, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
            raise BadConfigError(f"{target}: could not write the lesion crop")
    return target
