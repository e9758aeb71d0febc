"""Class-balancing augmentation of a training split.

MIAS has 166 normal films and 11 ill-defined masses; a model trained on that learns to say
"normal". The paper grows its 247 training films to 1300 by augmentation; this module grows
each class to a target count with randomly rotated, flipped, scaled, shifted, re-lit and
noised copies of that class's films. Originals are always kept unchanged, and lesion centres
and radii go through the same ``Transform`` as the pixels. Give it the training split only:
augmented copies of test films would leak the test set into training.

Each new sample draws from its own generator, seeded from the caller's seed and the sample's
number, so the result is the same whatever the number of worker threads.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from core.errors import BadConfigError, reject_unknown_settings
from core.geometry import Transform, lesions_from_array, lesions_to_array

Target = None | int | Mapping[int, int]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges the random changes are drawn from, uniformly unless said otherwise.

    ``rotation_deg``: angle in ``[-r, r]``. ``flip``: mirror left-right with probability 1/2.
    It is off by default because it would put the chest wall back on the right, undoing
    ``PrepConfig.orient``; turn it on for inputs that are not oriented. ``scale``: zoom factor range. ``shift``: translation
    in ``[-s, s]`` of the image side, per axis. ``brightness``: added offset in
    ``[-b, b]`` x 255. ``contrast``: factor in ``[1 - c, 1 + c]`` about the image's mean.
    ``noise_std``: standard deviation of added Gaussian noise, as a fraction of 255.
    """

    rotation_deg: float = 15.0
    flip: bool = False
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1
    noise_std: float = 0.02

    def __post_init__(self) -> None:
        if not isinstance(self.flip, bool):
            raise BadConfigError(f"augment config: flip must be true or false, got {self.flip!r}")
        for name, upper in (("rotation_deg", 180.0), ("shift", 1.0), ("brightness", 1.0),
                            ("contrast", 1.0), ("noise_std", 1.0)):
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 <= value <= upper:
                raise BadConfigError(f"augment config: {name} must be a number from 0 to "
                                     f"{upper:g}, got {value!r}")
        scale = self.scale
        if (not isinstance(scale, (tuple, list)) or len(scale) != 2
                or not all(_is_real(s) for s in scale) or not 0.0 < scale[0] <= scale[1]):
            raise BadConfigError(f"augment config: scale must be two numbers 0 < low <= high, "
                                 f"got {scale!r}")
        object.__setattr__(self, "scale", (float(scale[0]), float(scale[1])))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scale"] = list(self.scale)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        reject_unknown_settings(cls, data, "augment config")
        return cls(**data)


@dataclass
class Balanced:
    """The grown training set: originals first, in their order, then the new samples.

    ``source_index[i]`` is the original that row ``i`` is (or was made from);
    ``transforms[i]`` maps that original's grid onto row ``i`` (identity for originals);
    ``lesions[i]`` is an ``(n, 3)`` array of ``(row, col, radius)`` on row ``i``'s grid.
    Lesions pushed past the edge by a shift are kept: callers decide what an off-image
    lesion means for them.
    """

    images: np.ndarray  # uint8 [M, H, W]
    labels: np.ndarray  # int64 [M]
    source_index: np.ndarray  # int64 [M]
    transforms: list[Transform]
    lesions: list[np.ndarray]
    counts_before: np.ndarray
    counts_after: np.ndarray


def balance_counts(labels: Any, n_classes: int,
                   target: Target = None) -> tuple[np.ndarray, np.ndarray]:
    """Films per class before and after balancing, without touching any image.

    ``target``: ``None`` grows every class to the largest class's count; an int is a total
    shared out as equally as the originals allow (the classes above an equal share keep
    their films, the rest are filled to one level, spare films going to the lowest class
    numbers); a dict ``{class_id: count}`` sets those classes and leaves the others.
    Originals are never dropped, and a class with no films cannot be grown: ``None`` and
    an int total leave such a class at zero, a dict asking for it is refused.
    """
    labels = _check_labels(labels, n_classes)
    before = np.bincount(labels, minlength=n_classes).astype(np.int64)
    present = before > 0
    if target is None:
        after = np.where(present, before.max(initial=0), 0)
    elif isinstance(target, numbers.Integral) and not isinstance(target, bool):
        after = _fill_to_total(before, int(target))
    elif isinstance(target, Mapping):
        after = before.copy()
        for key, count in target.items():
            if (not isinstance(key, numbers.Integral) or isinstance(key, bool)
                    or not 0 <= key < n_classes):
                raise BadConfigError(f"augment target: class {key!r} is not one of "
                                     f"0..{n_classes - 1}")
            if not isinstance(count, numbers.Integral) or isinstance(count, bool):
                raise BadConfigError(f"augment target: count for class {key} must be an "
                                     f"integer, got {count!r}")
            if count < before[key]:
                raise BadConfigError(f"augment target: class {key} has {before[key]} films; "
                                     f"originals are kept, so it cannot have {count}")
            if count > 0 and before[key] == 0:
                raise BadConfigError(f"augment target: class {key} has no films to augment")
            after[key] = int(count)
    else:
        raise BadConfigError(f"augment target must be empty, a total or a per-class dict, "
                             f"got {target!r}")
    return before, after.astype(np.int64)


def augment_image(image: np.ndarray, rng: np.random.Generator,
                  config: AugmentConfig) -> tuple[np.ndarray, Transform]:
    """One random variant of a 2-D uint8 image, and the map from its grid onto the variant.

    Every draw is made in a fixed order whatever the config, so widening one range never
    changes the others' draws for the same generator state. The noise comes from OpenCV's
    generator, reseeded from ``rng`` (this reseeds the calling thread's OpenCV generator).
    """
    rows, cols = image.shape
    angle = rng.uniform(-config.rotation_deg, config.rotation_deg)
    scale = rng.uniform(*config.scale)
    shift = rng.uniform(-config.shift, config.shift, size=2) * (rows, cols)
    flip = bool(rng.random() < 0.5) and config.flip
    contrast = 1.0 + rng.uniform(-config.contrast, config.contrast)
    brightness = 255.0 * rng.uniform(-config.brightness, config.brightness)
    noise_seed = int(rng.integers(2**31))

    transform = Transform.rotate_scale(image.shape, angle, scale, (shift[0], shift[1]), flip)
    warped = transform.apply(image, cv2.INTER_LINEAR).astype(np.float32)
    mean = float(warped.mean())
    out = warped * np.float32(contrast)
    out += np.float32(mean * (1.0 - contrast) + brightness)
    if config.noise_std > 0:
        # OpenCV's normal generator is five times faster than numpy's and, unlike it, lets
        # other threads run; its state is per thread, so seeding it here is deterministic.
        noise = np.empty(image.shape, np.float32)
        cv2.setRNGSeed(noise_seed)
        cv2.randn(noise, 0.0, 255.0 * config.noise_std)
        out += noise
    np.clip(out, 0, 255, out=out)
    return np.rint(out).astype(np.uint8), transform


def balance(images: np.ndarray, labels: Any, lesions: Sequence[Any] | None, n_classes: int,
            target: Target = None, config: AugmentConfig = AugmentConfig(), seed: int = 0,
            workers: int | None = None) -> Balanced:
    """Grow a training split to ``balance_counts(labels, n_classes, target)``.

    ``images`` is uint8 ``[N, H, W]``; ``lesions[i]`` is an ``(n, 3)`` array-like of
    ``(row, col, radius)`` on image ``i`` (empty or None for none). New samples of a class
    are copies of its films taken as evenly as possible (each film the same number of
    times, the remainder chosen at random), each augmented once.
    """
    if not isinstance(images, np.ndarray) or images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError("images must be a uint8 array of shape [N, H, W]")
    before, after, sources = balance_plan(labels, n_classes, target, seed)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    lesions = lesion_arrays(lesions, len(images))

    count = len(images) + len(sources)
    out = np.empty((count, *images.shape[1:]), np.uint8)
    out[:len(images)] = images
    out_lesions = [lesion.copy() for lesion in lesions] + [np.empty((0, 3))] * len(sources)
    transforms = [Transform.identity(images.shape[1:])] * count

    def make(number: int) -> None:
        row, source = len(images) + number, int(sources[number])
        out[row], out_lesions[row], transforms[row] = augmented_sample(
            images[source], lesions[source], number, seed, config)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(make, range(len(sources))))
    return Balanced(images=out, labels=np.concatenate([labels, labels[sources]]),
                    source_index=np.concatenate([np.arange(len(images)), sources]),
                    transforms=transforms, lesions=out_lesions,
                    counts_before=before, counts_after=after)


def balance_plan(labels: Any, n_classes: int, target: Target = None,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``balance`` will make, without touching any image: the counts per class before
    and after, and which original each new sample copies (``sources``, in sample order).
    A streamed training (``core.prep.stream``) makes the same samples one at a time from it."""
    before, after = balance_counts(labels, n_classes, target)
    labels = np.asarray(labels, dtype=np.int64)
    return before, after, _choose_sources(labels, before, after, seed)


def augmented_sample(image: np.ndarray, lesions: np.ndarray, number: int, seed: int,
                     config: AugmentConfig) -> tuple[np.ndarray, np.ndarray, Transform]:
    """New sample ``number`` of ``balance``, made from its original's ``image`` and
    ``lesions`` (a ``lesion_arrays`` row): the variant, its lesions and the map onto it.
    Its own generator, seeded from ``seed`` and ``number``, so any thread, in any order,
    makes the same sample."""
    rng = np.random.default_rng([seed, 1, number])
    variant, transform = augment_image(image, rng, config)
    return variant, _move_lesions(lesions, transform), transform


def _fill_to_total(before: np.ndarray, total: int) -> np.ndarray:
    """Raise the smallest present classes to one common level so the counts sum to ``total``."""
    present = before > 0
    if total < before.sum():
        raise BadConfigError(f"augment target: {total} films is fewer than the "
                             f"{before.sum()} originals, which are always kept")
    if not present.any():
        if total > 0:
            raise BadConfigError("augment target: there are no films to augment")
        return before.copy()

    def filled(level: int) -> int:
        return int(np.where(present, np.maximum(before, level), 0).sum())

    low, high = 0, total  # the largest level whose fill stays within the total
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if filled(middle) <= total else (low, middle - 1)
    after = np.where(present, np.maximum(before, low), 0)
    spare = total - int(after.sum())
    at_level = np.flatnonzero(present & (before <= low))
    after[at_level[:spare]] += 1
    return after


def _choose_sources(labels: np.ndarray, before: np.ndarray, after: np.ndarray,
                    seed: int) -> np.ndarray:
    """Which original each new sample copies: each film of a class equally often, the rest
    at random; class by class in class order."""
    rng = np.random.default_rng([seed, 0])
    chosen = []
    for klass in range(len(before)):
        extra = int(after[klass] - before[klass])
        if extra == 0:
            continue
        films = np.flatnonzero(labels == klass)
        rounds, rest = divmod(extra, len(films))
        picks = np.concatenate([np.tile(films, rounds),
                                rng.choice(films, size=rest, replace=False)])
        chosen.append(rng.permutation(picks))
    return np.concatenate(chosen).astype(np.int64) if chosen else np.empty(0, np.int64)


def _move_lesions(lesions: np.ndarray, transform: Transform) -> np.ndarray:
    """A film's ``(row, col, radius)`` rows carried onto its augmented variant."""
    moved = transform.map_lesions(lesions_from_array(lesions))
    return lesions_to_array(moved, lesions.dtype)


def lesion_arrays(lesions: Sequence[Any] | None, count: int) -> list[np.ndarray]:
    """Each film's lesions as a float ``(n, 3)`` array (empty for none), checked."""
    if lesions is None:
        return [np.empty((0, 3)) for _ in range(count)]
    if len(lesions) != count:
        raise ValueError(f"{count} images but {len(lesions)} lesion lists")
    checked = []
    for index, item in enumerate(lesions):
        array = np.empty((0, 3)) if item is None else np.asarray(item, dtype=float)
        if array.size == 0:
            array = np.empty((0, 3))
        if array.ndim != 2 or array.shape[1] != 3:
            raise ValueError(f"lesions of image {index} must be (row, col, radius) rows, "
                             f"got shape {array.shape}")
        checked.append(array)
    return checked


def _check_labels(labels: Any, n_classes: int) -> np.ndarray:
    if not isinstance(n_classes, numbers.Integral) or n_classes < 1:
        raise BadConfigError(f"n_classes must be a positive integer, got {n_classes!r}")
    array = np.asarray(labels)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise BadConfigError("labels must be a 1-D sequence of class numbers")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise BadConfigError(f"labels must be class numbers 0..{n_classes - 1}, "
                             f"got {array.min()}..{array.max()}")
    return array

