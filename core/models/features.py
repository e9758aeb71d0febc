"""Disk cache of frozen-encoder features, so the encoder runs once per image, ever.

With a frozen encoder only the decoder or head trains, and the encoder's forward pass is
almost all of the cost. Features are stored one file per image, keyed by the encoder (its
name, weights, input size, feature layer and preprocessing: ``encoder_key``) and by the
image's content, so a rerun, a sweep or another split reuses what any earlier run computed.
Files are written to a temporary name and renamed, so two processes filling the cache at
once never leave a half-written file (at worst they both compute the same features).

The cache only saves time, so a cache that cannot be written (disk full, no permission)
never stops training: the features are used from memory, the entry is not cached, and a
warning says so once per call. An entry that cannot be read is computed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import WriteError, atomic_path
from core.settings import cache_root

log = logging.getLogger(__name__)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (films and weights files are named by content, not path)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_key(description: dict[str, Any]) -> str:
    """A short stable key for everything that changes what the encoder outputs."""
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _image_key(image: np.ndarray) -> str:
    digest = hashlib.sha1(image.tobytes())
    digest.update(str((image.shape, image.dtype.str)).encode())
    return digest.hexdigest()


def _save(target: Path, array: np.ndarray) -> bool:
    """Cache one array; False (and a warning) when the cache cannot be written."""
    try:
        with atomic_path(target) as tmp:
            np.save(tmp, array, allow_pickle=False)
    except WriteError as error:
        log.warning("%s; features are not cached, training goes on", error)
        return False
    return True


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log.warning("%s: cannot create the feature cache (%s); features are not cached, "
                    "training goes on", folder, error.strerror or error)
        return False
    return True


def _load(path: Path) -> np.ndarray | None:
    """A cached array, or None when absent or unreadable (then it is simply recomputed)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # EOFError: an empty file
        return None


def cached_features(encode: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                    key: str | None,
                    cache_dir: Path | None = None, batch_size: int = 16,
                    on_batch: Callable[[int, int], None] | None = None,
                    dtype: type[np.floating] = np.float16) -> np.ndarray:
    """Features for every image (uint8, N x H x W), computing only those not yet cached.

    ``encode`` maps a uint8 batch to a float feature batch. Features are kept as float16:
    half the disk and memory, and far more precision than a frozen ImageNet encoder's
    features carry. ``dtype`` float32 (with ``key=None``) is for activations that further
    layers are trained on, which should be what those layers would get. The result is
    filled in place, so memory holds it once, plus a batch.
    ``on_batch(done, total)`` reports progress. ``key=None`` computes without the cache: for
    an encoder tuned within one run, whose features no other run will ask for.
    """
    folder = Path(cache_dir or cache_root()) / "features" / key if key is not None else None
    writable = folder is not None and _writable(folder)  # one failed write: stop trying
    keys = [_image_key(image) for image in images]
    first_of: dict[str, int] = {}
    for index, image_key in enumerate(keys):
        first_of.setdefault(image_key, index)
    output: np.ndarray | None = None
    todo = []
    for image_key, index in first_of.items():
        cached = _load(folder / f"{image_key}.npy") if folder is not None else None
        if cached is None:
            todo.append(index)
            continue
        output = _allocate(output, len(images), cached, dtype)
        output[index] = cached
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        batch = np.asarray(encode(images[chunk]), dtype=dtype)
        output = _allocate(output, len(images), batch[0], dtype)
        for index, features in zip(chunk, batch):
            output[index] = features
            writable = writable and _save(folder / f"{keys[index]}.npy", features)
        if on_batch:
            on_batch(min(start + batch_size, len(todo)), len(todo))
    if output is None:  # no images at all
        return np.zeros((0,), dtype)
    for index, image_key in enumerate(keys):  # repeated images share their first's features
        if first_of[image_key] != index:
            output[index] = output[first_of[image_key]]
    return output


def _allocate(output: np.ndarray | None, count: int, example: np.ndarray,
              dtype: type[np.floating]) -> np.ndarray:
    if output is None:
        output = np.empty((count, *example.shape), dtype)
    elif output.shape[1:] != example.shape:
        raise ValueError(f"cached features of shape {example.shape} do not match "
                         f"{output.shape[1:]}: the cache key misses a setting")
    return output
