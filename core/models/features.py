"""Disk cache of frozen-encoder features, so the encoder runs once per image, ever.

With a frozen encoder only the decoder or head trains, and the encoder's forward pass is
almost all of the cost. Features are stored one file per image, keyed by the encoder (its
name, weights, input size, feature layer and preprocessing: ``encoder_key``) and by the
image's content, so a rerun, a sweep or another split reuses what any earlier run computed.
Files are written to a temporary name and renamed, so two processes filling the cache at
once never leave a half-written file (at worst they both compute the same features).

Streamed training (``core.train.feed``) keeps features nowhere else: a ``FeatureStore`` reads
them from this cache one image at a time, so memory never holds them all. An encoder that no
setting names (tuned within a run, or the frozen bottom of a cut encoder) is keyed by its
weights (``weights_key``), so its features are cached as safely as any.

In memory, the cache only saves time, so a cache that cannot be written (disk full, no
permission) never stops training: the features are used from memory, the entry is not
cached, and a warning says so once per call. An entry that cannot be read is computed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import WriteError, atomic_path, make_folder
from core.errors import MammoError
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


def image_key(image: np.ndarray) -> str:
    """An image's name in the cache: a digest of its content, shape and dtype."""
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
    keys = [image_key(image) for image in images]
    first_of: dict[str, int] = {}
    for index, name in enumerate(keys):
        first_of.setdefault(name, index)
    output: np.ndarray | None = None
    todo = []
    for name, index in first_of.items():
        cached = _load(folder / f"{name}.npy") if folder is not None else None
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
    for index, name in enumerate(keys):  # repeated images share their first's features
        if first_of[name] != index:
            output[index] = output[first_of[name]]
    return output


def _allocate(output: np.ndarray | None, count: int, example: np.ndarray,
              dtype: type[np.floating]) -> np.ndarray:
    if output is None:
        output = np.empty((count, *example.shape), dtype)
    elif output.shape[1:] != example.shape:
        raise ValueError(f"cached features of shape {example.shape} do not match "
                         f"{output.shape[1:]}: the cache key misses a setting")
    return output


def weights_key(model: Any, dtype: type[np.floating]) -> str:
    """A cache key for a model that no setting names: its layer types, its inputs' and
    outputs' shapes, the stored dtype and the bytes of its weights. Two models that compute
    the same function from the same weights share it; any change of a weight changes it."""
    digest = hashlib.sha256()
    layout = {"layers": [type(layer).__name__ for layer in model.layers],
              "inputs": [list(t.shape) for t in model.inputs],
              "outputs": [list(t.shape) for t in model.outputs],
              "dtype": np.dtype(dtype).str}
    digest.update(json.dumps(layout, default=str).encode())
    for weights in model.get_weights():
        digest.update(str(weights.shape).encode())
        digest.update(np.ascontiguousarray(weights).tobytes())
    return "weights-" + digest.hexdigest()[:20]


class FeatureStore:
    """The features of a list of images, one cache file each (``key`` names the encoder,
    ``image_keys`` the images, as ``image_key`` names them), read one at a time.

    Unlike ``cached_features``, nothing falls back to memory: a streamed training keeps its
    features nowhere else, so an entry that cannot be written or read is an error naming the
    file, not a warning.
    """

    def __init__(self, key: str, image_keys: Sequence[str], cache_dir: Path | None = None
                 ) -> None:
        self.folder = Path(cache_dir or cache_root()) / "features" / key
        self.keys = list(image_keys)
        self._made = False

    def __len__(self) -> int:
        return len(self.keys)

    def path(self, index: int) -> Path:
        return self.folder / f"{self.keys[index]}.npy"

    def missing(self) -> list[int]:
        """The images whose features are not stored yet, each content once (the first
        image of each key)."""
        seen: set[str] = set()
        todo = []
        for index, key in enumerate(self.keys):
            if key not in seen and not self.path(index).is_file():
                todo.append(index)
            seen.add(key)
        return todo

    def save(self, index: int, features: np.ndarray) -> None:
        if not self._made:
            make_folder(self.folder, "feature cache")
            self._made = True
        with atomic_path(self.path(index)) as tmp:
            np.save(tmp, features, allow_pickle=False)

    def read(self, index: int) -> np.ndarray:
        found = _load(self.path(index))
        if found is None:
            raise MammoError(f"{self.path(index)}: cached features are missing or unreadable; "
                             "delete the file and train again")
        return found

    @property
    def shape(self) -> tuple[int, ...]:
        """``(images, *one image's features' shape)``, as the array of them all would have
        (the second part read from the first file's header)."""
        try:
            one = np.load(self.path(0), mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError, EOFError):
            one = self.read(0).shape
        return (len(self), *one)
