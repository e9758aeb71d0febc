"""Transform: points, radii and images must agree through every kind of step."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.geometry import Transform


def _disk(shape: tuple[int, int], center: tuple[float, float], radius: int) -> np.ndarray:
    image = np.zeros(shape, np.float32)
    cv2.circle(image, (int(center[1]), int(center[0])), radius, 1.0, -1)
    return image


def _centroid(image: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    total = image.sum()
    return np.array([(rows * image).sum() / total, (cols * image).sum() / total])


CHAIN = [
    Transform.crop((200, 160), 20, 10, 150, 140),
    Transform.resize((150, 140), (75, 70)),
    Transform.flip_horizontal((75, 70)),
    Transform.rotate_scale((75, 70), angle_deg=25, scale=1.15, shift=(3, -4)),
]


def _chained() -> Transform:
    chained = Transform.identity((200, 160))
    for step in CHAIN:
        chained = chained.then(step)
    return chained


def test_disk_stays_under_its_transformed_centre() -> None:
    image = _disk((200, 160), (120, 60), 12)
    transform = _chained()
    warped = transform.apply(image)
    assert np.allclose(_centroid(warped), transform.forward([120, 60]), atol=0.6)
    assert transform.forward_radius(12) == pytest.approx(12 * 0.5 * 1.15, rel=1e-6)


def test_inverse_round_trips_points_and_maps_heatmaps_back() -> None:
    transform = _chained()
    points = np.array([[120.0, 60.0], [30.5, 100.25]])
    assert np.allclose(transform.inverse(transform.forward(points)), points)
    heat = np.zeros(transform.dst_shape, np.float32)
    target = np.round(transform.forward([120, 60])).astype(int)
    heat[target[0], target[1]] = 1.0
    back = transform.unapply(cv2.GaussianBlur(heat, (0, 0), 2))
    peak = np.unravel_index(back.argmax(), back.shape)
    assert np.hypot(peak[0] - 120, peak[1] - 60) <= 2


def test_resize_matches_opencv_half_pixel_convention() -> None:
    image = _disk((64, 64), (20, 41), 5)
    small = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA)
    transform = Transform.resize((64, 64), (16, 16))
    assert np.allclose(_centroid(small), transform.forward([20, 41]), atol=0.1)
    assert np.allclose(transform.apply(image, cv2.INTER_AREA).shape, small.shape)


def test_flip_maps_edges_onto_each_other() -> None:
    flip = Transform.flip_horizontal((10, 30))
    assert np.allclose(flip.forward([4, 0]), [4, 29])
    assert np.allclose(flip.then(flip).matrix, np.eye(3))


def test_serialises_and_refuses_mismatched_chains() -> None:
    transform = _chained()
    again = Transform.from_dict(transform.to_dict())
    assert np.allclose(again.matrix, transform.matrix)
    assert again.src_shape == (200, 160) and again.dst_shape == (75, 70)
    with pytest.raises(ValueError):
        Transform.resize((10, 10), (5, 5)).then(Transform.flip_horizontal((10, 10)))
    with pytest.raises(ValueError):
        Transform.identity((10, 10)).apply(np.zeros((9, 10)))
