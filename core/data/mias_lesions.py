"""Benign vs malignant lesion crops cut from mini-MIAS films: the second paper's task
(CBIS-DDSM calcification crops, benign vs malignant) on the data that is here.

Every located lesion with a severity becomes one square crop centred on the film pixel
nearest its centre (``Transform.centred_crop``), ``side_factor`` times its radius wide
(within ``min_side`` and ``max_side`` px; zero-padded where the square leaves the film),
written once as a PNG under ``<cache>/mias-lesion-crops/`` and named by the film's content
and the crop's place, so a changed film never reuses a stale crop. A patient's crops keep
the patient's id, so splits stay grouped by patient. Lesions without a location
(MIAS's whole-breast calcifications) cannot be cropped and are listed in the warnings.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.atomic import atomic_path
from core.data import mias
from core.data.options import MIAS_LESION_OPTIONS, resolve_options
from core.data.records import Dataset, FilmRecord
from core.errors import BadConfigError, BadFilmError, MammoError
from core.films import read_film
from core.geometry import Lesion, Transform, nearest_pixel
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
            pixel = nearest_pixel(lesion.center)
            # The film's shape as probed when it was listed: no pixel is read for a crop
            # already in the cache.
            window = Transform.centred_crop(film.extra["film_shape"], pixel, side)
            try:
                path = _crop(film, pixel, window, out)
            except MammoError as error:
                warnings.append(f"{film.film_id}: lesion {number} left out ({error})")
                continue
            records.append(FilmRecord(
                film_id=f"{film.film_id}-{number}", patient_id=film.patient_id,
                label=_LABEL[str(lesion.severity)], classes=CLASSES, path=path, side=film.side,
                view=film.view, tissue=film.tissue, severity=lesion.severity,
                lesions=(_on_crop(lesion, pixel, window),),
                synthetic=film.synthetic, extra={"film": film.film_id, "side_px": side}))
    return Dataset("mias-lesions", films.root, CLASSES, records, missing=films.missing,
                   warnings=warnings, synthetic=films.synthetic)


def _on_crop(lesion: Lesion, pixel: tuple[int, int], window: Transform) -> Lesion:
    """The lesion on its crop: at the crop's centre pixel (the film pixel the crop is centred
    on, not the sub-pixel centre), with its radius."""
    return window.map_lesion(replace(lesion, center=(float(pixel[0]), float(pixel[1]))))


def _crop(film: FilmRecord, pixel: tuple[int, int], window: Transform, out: Path) -> Path:
    """The crop's PNG, cut and written on first use; named by the film pixel it is centred on
    and its side, so a crop already written is found without reading the film."""
    row, col = pixel
    digest = hashlib.sha256(film.path.read_bytes()).hexdigest()[:16]
    target = out / f"{film.film_id}-r{row}-c{col}-s{window.dst_shape[0]}-{digest}.png"
    if target.is_file():
        return target
    pixels = read_film(film.path).pixels
    if pixels.shape != window.src_shape:
        raise BadFilmError(film.path, f"is {pixels.shape[1]} x {pixels.shape[0]} px now, not the "
                           f"{window.src_shape[1]} x {window.src_shape[0]} px it was listed at")
    crop = window.cut(pixels)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        if not cv2.imwrite(str(tmp), crop, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
            raise BadConfigError(f"{target}: could not write the lesion crop")
    return target
