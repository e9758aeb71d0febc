"""The feature cache computes each image once and survives concurrent writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.models.features import cached_features, encoder_key


def _encoder(calls: list[int]):
    def encode(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch.mean(axis=(1, 2), keepdims=True).astype(np.float32) + np.arange(3)

    return encode


def test_each_image_is_encoded_once_across_calls(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 255, (7, 8, 8), dtype=np.uint8)
    images[5] = images[1]  # equal content is encoded once
    calls: list[int] = []
    first = cached_features(_encoder(calls), images, "k", tmp_path, batch_size=4)
    assert sum(calls) == 6 and first.shape == (7, 1, 3) and first.dtype == np.float16
    again = cached_features(_encoder(calls), images[::-1], "k", tmp_path, batch_size=4)
    assert sum(calls) == 6  # nothing recomputed
    np.testing.assert_array_equal(again, first[::-1])
    cached_features(_encoder(calls), images, "other-encoder", tmp_path)
    assert sum(calls) == 12  # another encoder key is another cache


def test_concurrent_writers_leave_a_consistent_cache(tmp_path: Path) -> None:
    images = np.random.default_rng(1).integers(0, 255, (20, 8, 8), dtype=np.uint8)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: cached_features(_encoder([]), images, "k", tmp_path,
                                                          batch_size=3), range(4)))
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])
    files = list((tmp_path / "features" / "k").iterdir())
    assert len(files) == 20 and not [f for f in files if f.name.startswith(".")]


def test_a_corrupt_cache_file_is_recomputed(tmp_path: Path) -> None:
    images = np.zeros((1, 4, 4), np.uint8)
    calls: list[int] = []
    cached_features(_encoder(calls), images, "k", tmp_path)
    (next((tmp_path / "features" / "k").iterdir())).write_bytes(b"garbage")
    cached_features(_encoder(calls), images, "k", tmp_path)
    assert len(calls) == 2


def test_encoder_key_depends_on_every_setting() -> None:
    base = {"backbone": "mobilenet_v2", "image_size": 512, "prep": {"clahe": True}}
    assert encoder_key(base) == encoder_key(dict(reversed(list(base.items()))))
    assert encoder_key(base) != encoder_key({**base, "prep": {"clahe": False}})
