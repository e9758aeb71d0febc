"""Patches for pretraining: lesion patches hold the lesion, normal ones keep clear of it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.errors import BadConfigError
from core.prep.patches import lesion_patches

SIZE = 128
NORM, CIRC = 1, 0


def _film(lesion: tuple[int, int, int] | None) -> np.ndarray:
    """Grey tissue (level 100) over the left 3/4, black background; a bright disk lesion."""
    image = np.zeros((SIZE, SIZE), np.uint8)
    image[:, : SIZE * 3 // 4] = 100
    if lesion:
        cv2.circle(image, (lesion[1], lesion[0]), lesion[2], 250, -1)
    return image


def test_lesion_patches_show_the_lesion_and_normal_patches_only_tissue() -> None:
    lesion = (60, 40, 6)
    images = np.stack([_film(lesion), _film(None)])
    lesions = [np.array([lesion], np.float32), np.zeros((0, 3), np.float32)]
    patches = lesion_patches(images, np.array([CIRC, NORM]), lesions, NORM, size=24,
                             per_lesion=5, normal_per_film=7, seed=3)
    assert patches.images.shape == (5 + 7 + 7, 24, 24) and patches.images.dtype == np.uint8
    assert list(patches.labels) == [CIRC] * 5 + [NORM] * 14
    for patch in patches.images[:5]:  # within half a radius of the centre: the disk is in view
        assert (patch == 250).sum() > 0.8 * np.pi * 6**2
    for patch in patches.images[5:]:
        assert not (patch == 250).any()  # clear of the lesion disk
        assert patch[patch.shape[0] // 2, patch.shape[1] // 2] == 100  # centred on tissue


def test_abnormal_films_without_a_location_give_nothing_and_no_normal_class_no_normals() -> None:
    images = np.stack([_film(None), _film((60, 40, 6))])
    lesions = [np.zeros((0, 3)), np.array([[60, 40, 6]], np.float64)]
    unlocated = lesion_patches(images[:1], np.array([CIRC]), lesions[:1], NORM, size=16)
    assert len(unlocated) == 0 and unlocated.images.shape == (0, 16, 16)
    only_lesions = lesion_patches(images, np.array([CIRC, CIRC]), lesions, None, size=16,
                                  per_lesion=3)
    assert list(only_lesions.labels) == [CIRC] * 3


def test_patches_at_the_edge_are_padded_with_black_and_seeded() -> None:
    images = np.full((1, SIZE, SIZE), 100, np.uint8)
    lesions = [np.array([[0, 0, 4]], np.float32)]
    first = lesion_patches(images, np.array([CIRC]), lesions, NORM, size=32, per_lesion=4, seed=1)
    again = lesion_patches(images, np.array([CIRC]), lesions, NORM, size=32, per_lesion=4, seed=1)
    np.testing.assert_array_equal(first.images, again.images)
    assert (first.images[:4] == 0).mean() > 0.5  # most of a corner patch lies off the film


def test_bad_arguments_are_refused() -> None:
    images = np.zeros((2, SIZE, SIZE), np.uint8)
    with pytest.raises(BadConfigError):
        lesion_patches(images, np.array([NORM]), [np.zeros((0, 3))] * 2, NORM, size=16)
    with pytest.raises(BadConfigError):
        lesion_patches(images, np.array([NORM, NORM]), [np.zeros((0, 3))] * 2, NORM, size=4)
