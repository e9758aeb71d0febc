"""Lesion and normal-tissue patches cut from preprocessed films, for patch-level pretraining.

A whole film gives one label for 512 x 512 pixels, of which a lesion covers a few hundred; a
patch centred on the lesion gives the encoder the same label for the pixels that carry it.
Patches are cut at the film's own scale (the model-input grid), so what the encoder learns
on them is what it sees in the film afterwards.

* Lesion patches: ``per_lesion`` crops per located lesion, centred within half a radius
  (at most a quarter of the patch) of the marked centre, turned by a random multiple of 90
  degrees and maybe mirrored (tissue texture has no preferred direction at this scale).
  They carry the film's class.
* Normal patches: from films with no lesion (class ``normal_label``) and from abnormal
  films away from every located lesion, centred on breast tissue (pixels above
  ``tissue_level``; preprocessing leaves the background black). They carry
  ``normal_label``. Abnormal films without a located lesion give no patches at all:
  where their abnormality lies is unknown. A dataset with no normal class (benign vs
  malignant crops) passes ``normal_label=None`` and gets lesion patches only.

Give it training films only, as for any augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import BadConfigError
from core.geometry import Transform

#: Grey level above which a preprocessed pixel counts as breast tissue, not background.
TISSUE_LEVEL = 20


@dataclass(frozen=True)
class Patches:
    """Square uint8 patches (N, size, size) and their class ids (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _crop(image: np.ndarray, row: float, col: float, size: int) -> np.ndarray:
    """The size x size window centred at (row, col), zero beyond the image's edge."""
    return Transform.centred_crop(image.shape, (row, col), size).cut(image)


def _turn(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    patch = np.rot90(patch, int(rng.integers(4)))
    return np.ascontiguousarray(patch[:, ::-1] if rng.random() < 0.5 else patch)


def _normal_centres(image: np.ndarray, lesions: np.ndarray, size: int, count: int,
                    rng: np.random.Generator, tissue_level: int) -> np.ndarray:
    """Up to ``count`` (row, col) centres on tissue, each patch clear of every lesion disk."""
    rows, cols = np.nonzero(image > tissue_level)
    if len(lesions):
        clearance = lesions[:, 2][None, :] + size / 2
        distance = np.hypot(rows[:, None] - lesions[:, 0][None, :],
                            cols[:, None] - lesions[:, 1][None, :])
        keep = np.all(distance > clearance, axis=1)
        rows, cols = rows[keep], cols[keep]
    if not len(rows):
        return np.zeros((0, 2))
    chosen = rng.choice(len(rows), size=min(count, len(rows)), replace=False)
    return np.column_stack([rows[chosen], cols[chosen]])


def lesion_patches(images: np.ndarray, labels: np.ndarray, lesions: Sequence[np.ndarray],
                   normal_label: int | None, size: int, per_lesion: int = 16,
                   normal_per_film: int = 4, seed: int = 0,
                   tissue_level: int = TISSUE_LEVEL) -> Patches:
    """Patches from films (N, S, S) uint8 with their class ids and located lesions (one
    (n, 3) array of (row, col, radius) per film, on the films' grid)."""
    if images.ndim != 3 or len(images) != len(labels) or len(images) != len(lesions):
        raise BadConfigError("lesion_patches needs films (N, S, S) with one label and one "
                             "lesion array per film")
    if size < 8 or per_lesion < 1 or normal_per_film < 0:
        raise BadConfigError(f"patches need a size of at least 8 px, per_lesion at least 1 "
                             f"and normal_per_film at least 0, got {size}, {per_lesion} and "
                             f"{normal_per_film}")
    rng = np.random.default_rng(seed)
    normals = normal_per_film if normal_label is not None else 0
    cut: list[np.ndarray] = []
    classes: list[int] = []
    for image, label, found in zip(images, labels, lesions):
        found = np.asarray(found, np.float64).reshape(-1, 3)
        if label != normal_label and not len(found):
            continue
        for row, col, radius in found:
            reach = min(radius / 2, size / 4)
            for _ in range(per_lesion):
                shift = rng.uniform(-reach, reach, size=2)
                cut.append(_turn(_crop(image, row + shift[0], col + shift[1], size), rng))
                classes.append(int(label))
        for row, col in _normal_centres(image, found, size, normals, rng, tissue_level):
            cut.append(_turn(_crop(image, row, col, size), rng))
            classes.append(int(normal_label))  # type: ignore[arg-type]
    if not cut:
        return Patches(np.zeros((0, size, size), np.uint8), np.zeros((0,), np.int64))
    return Patches(np.stack(cut), np.asarray(classes, np.int64))
