"""Augmentation: the counts asked for, lesions moving with the pixels, same result any way."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from core.errors import BadConfigError
from core.prep.augment import AugmentConfig, augment_image, balance, balance_counts

SIZE = 96
GEOMETRY_ONLY = AugmentConfig(brightness=0.0, contrast=0.0, noise_std=0.0)


def _disk_image(centre: tuple[float, float], radius: int, level: int = 200) -> np.ndarray:
    image = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(image, (round(centre[1]), round(centre[0])), radius, level, -1)
    return image


def _centroid(image: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    weights = image.astype(np.float64)
    return np.array([(rows * weights).sum(), (cols * weights).sum()]) / weights.sum()


def _set(n_per_class: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """Films with one disk-shaped lesion each, the disk where its lesion row says."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    images, lesions = [], []
    for _ in labels:
        centre = rng.uniform(35, SIZE - 35, size=2).round()
        radius = int(rng.integers(5, 10))
        images.append(_disk_image(tuple(centre), radius))
        lesions.append(np.array([[centre[0], centre[1], radius]]))
    return np.stack(images), labels, lesions


def test_augmented_lesion_stays_under_its_transformed_centre() -> None:
    centre, radius = (40.0, 57.0), 8
    image = _disk_image(centre, radius)
    for seed in range(10):
        out, transform = augment_image(image, np.random.default_rng(seed), GEOMETRY_ONLY)
        expected = transform.forward(centre)
        assert np.allclose(_centroid(out), expected, atol=0.15)
        area_radius = np.sqrt((out > 100).sum() / np.pi)
        assert area_radius == pytest.approx(transform.forward_radius(radius), abs=0.5)
        assert np.allclose(transform.inverse(_centroid(out)), centre, atol=0.2)
        # A heatmap on the augmented grid maps back onto the original lesion.
        back = transform.unapply(out.astype(np.float32))
        peak = np.unravel_index(cv2.GaussianBlur(back, (0, 0), 3).argmax(), back.shape)
        assert np.hypot(peak[0] - centre[0], peak[1] - centre[1]) <= 1.5


def test_augment_image_varies_and_keeps_uint8() -> None:
    image = _disk_image((48, 48), 20, level=120)
    outputs = [augment_image(image, np.random.default_rng(s), AugmentConfig(flip=True))
               for s in range(6)]
    assert all(out.dtype == np.uint8 and out.shape == image.shape for out, _ in outputs)
    assert len({out.tobytes() for out, _ in outputs}) == 6
    assert any(t.matrix[0, 0] * t.matrix[1, 1] < 0 for _, t in outputs)  # some flipped
    unflipped = AugmentConfig()  # the default keeps the chest wall where orient put it
    assert all(np.linalg.det(augment_image(image, np.random.default_rng(s), unflipped)[1]
                             .matrix) > 0 for s in range(6))
    still = AugmentConfig(rotation_deg=0, flip=False, scale=(1, 1), shift=0, brightness=0,
                          contrast=0, noise_std=0)
    same, transform = augment_image(image, np.random.default_rng(0), still)
    assert np.array_equal(same, image) and np.allclose(transform.matrix, np.eye(3))


def test_counts_for_each_kind_of_target() -> None:
    labels = [0] * 10 + [1] * 3 + [2] * 1
    before, after = balance_counts(labels, 4)
    assert before.tolist() == [10, 3, 1, 0]
    assert after.tolist() == [10, 10, 10, 0]  # an empty class cannot be grown
    # The paper's 247 -> 1300 over 7 classes: 185 or 186 each, summing exactly.
    paper = [0] * 15 + [1] * 12 + [2] * 19 + [3] * 18 + [4] * 11 + [5] * 157 + [6] * 15
    before, after = balance_counts(paper, 7, 1300)
    assert before.sum() == 247 and after.sum() == 1300
    assert after.tolist() == [186, 186, 186, 186, 186, 185, 185]
    # A class already above an equal share keeps its films; the rest share the remainder.
    before, after = balance_counts(labels, 3, 24)
    assert after.tolist() == [10, 7, 7]
    before, after = balance_counts(labels, 3, {1: 5, 2: 4})
    assert after.tolist() == [10, 5, 4]
    for bad in ({1: 2}, {3: 5}, {1: 4.5}, 5, "1300", True):
        with pytest.raises(BadConfigError):
            balance_counts(labels, 3, bad)
    with pytest.raises(BadConfigError, match="no films to augment"):
        balance_counts(labels, 4, {3: 2})
    with pytest.raises(BadConfigError, match="class numbers 0..1"):
        balance_counts(labels, 2)


def test_balance_grows_to_the_target_and_keeps_originals_byte_identical() -> None:
    images, labels, lesions = _set([6, 2, 1])
    before_bytes = images.tobytes()
    result = balance(images, labels, lesions, 3, workers=2)
    assert images.tobytes() == before_bytes  # the input is not touched
    assert result.images.dtype == np.uint8 and result.images.shape == (18, SIZE, SIZE)
    assert np.bincount(result.labels, minlength=3).tolist() == [6, 6, 6]
    assert result.counts_before.tolist() == [6, 2, 1]
    assert result.counts_after.tolist() == [6, 6, 6]
    assert result.images[:9].tobytes() == before_bytes
    assert result.source_index[:9].tolist() == list(range(9))
    assert all(np.allclose(t.matrix, np.eye(3)) for t in result.transforms[:9])
    assert all(np.array_equal(a, b) for a, b in zip(result.lesions[:9], lesions))
    new = result.source_index[9:]
    assert (new >= 0).all() and np.array_equal(labels[new], result.labels[9:])
    # Copies are spread evenly: each of class 1's two films is used twice.
    assert sorted(new[result.labels[9:] == 1].tolist()) == [6, 6, 7, 7]


def test_balanced_lesions_follow_their_images() -> None:
    images, labels, lesions = _set([4, 1], seed=3)
    result = balance(images, labels, lesions, 2, target={0: 4, 1: 6}, config=GEOMETRY_ONLY)
    assert len(result.labels) == 10
    for row in range(5, 10):
        (centre_row, centre_col, radius), = result.lesions[row]
        image = result.images[row]
        assert np.allclose(_centroid(image), (centre_row, centre_col), atol=0.15)
        source = result.source_index[row]
        assert radius == pytest.approx(lesions[source][0, 2] * result.transforms[row].scale)
        assert np.allclose(result.transforms[row].inverse([centre_row, centre_col]),
                           lesions[source][0, :2])


def test_same_result_for_any_worker_count() -> None:
    images, labels, lesions = _set([5, 2, 1], seed=1)
    results = [balance(images, labels, lesions, 3, target=30, seed=7, workers=w)
               for w in (1, 2, 4)]
    for other in results[1:]:
        assert np.array_equal(results[0].images, other.images)
        assert np.array_equal(results[0].source_index, other.source_index)
        assert all(np.allclose(a.matrix, b.matrix)
                   for a, b in zip(results[0].transforms, other.transforms))
    changed = balance(images, labels, lesions, 3, target=30, seed=8)
    assert not np.array_equal(results[0].images, changed.images)


def test_balance_without_lesions_and_with_bad_input() -> None:
    images, labels, _ = _set([3, 1])
    result = balance(images, labels, None, 2)
    assert len(result.lesions) == 6 and all(len(l) == 0 for l in result.lesions)
    with pytest.raises(ValueError, match="uint8"):
        balance(images.astype(np.float32), labels, None, 2)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        balance(images, labels[:3], None, 2)
    with pytest.raises(ValueError, match="lesions of image 0"):
        balance(images, labels, [[1, 2]] + [None] * 3, 2)


def test_config_round_trips_through_json_and_refuses_nonsense() -> None:
    config = AugmentConfig(rotation_deg=5, flip=False, scale=(0.8, 1.2), noise_std=0.0)
    again = AugmentConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    for bad in ({"scale": (1.2, 0.8)}, {"shift": -0.1}, {"flip": "no"},
                {"rotation_deg": 400}, {"zoom": 2}):
        with pytest.raises(BadConfigError):
            AugmentConfig.from_dict(bad)
