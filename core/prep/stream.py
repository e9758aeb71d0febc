"""Films read lazily, a batch at a time: the input pipeline for datasets larger than memory.

In memory, training holds every film of its split at the input size (``core.prep.arrays``),
and whatever is made from them; RSNA's 54,706 screening films at 512 px are 14 GB as uint8
before a single feature. Streamed, a part of a split is a ``LazyFilms``: the records and how
to prepare them (and, for a balanced training part, which augmented copies to make), read one
film at a time when a batch needs it. ``stream`` turns any such reader into a ``tf.data``
pipeline that reads in parallel threads, batches, and prefetches a fixed number of batches,
so what memory holds is bounded by the pipeline's settings (``StreamSettings.held_at_most``),
never by the size of the dataset.

Why ``tf.data``: Keras 3's ``fit``, ``evaluate`` and ``predict`` take a ``tf.data.Dataset`` on
every backend (TensorFlow, the default, and JAX alike), and TensorFlow is already installed
whatever the backend (``requirements.txt``), so it adds no dependency. Its ``map`` runs the
reader on ``num_parallel_calls`` threads of its own (OpenCV, which decodes and prepares the
films, lets go of the GIL), and its ``prefetch`` overlaps reading with training. Grain
(``grain.python``) would do the same for JAX only, and is a new dependency that the default
backend would not use; Keras's own ``PyDataset`` (``core.train.batches``, for arrays in
memory) parallelises with a queue of whole batches per worker and has no per-film parallel
map. Under JAX, TensorFlow only reads data here and is kept off the GPU
(``core.backend.data_pipeline``).

The pipeline's buffers are fixed, not tuned: ``tf.data``'s autotuner and its injected
prefetches are switched off, since they size buffers by speed and RAM, and a bound that
moves with the machine is no bound. The order of films is ``EpochOrder``'s, which is the one
``core.train.batches.Batches`` draws for the same seed, so a streamed run sees the same
batches as the same run in memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import backend
from core.data.records import FilmRecord
from core.films import read_film
from core.prep.arrays import lesions_on_grid
from core.prep.augment import AugmentConfig, augmented_sample
from core.prep.preprocess import PrepConfig, prepare_film


def _default_parallel() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass(frozen=True)
class StreamSettings:
    """How many films are read at once (``parallel``) and how many batches wait ready for
    the model (``prefetch``)."""

    prefetch: int = 2
    parallel: int = field(default_factory=_default_parallel)

    def held_at_most(self, batch_size: int) -> int:
        """The most films read and not yet done with: those being read (``parallel``), the
        ready batches (``prefetch``) and the batch the model is working on. Measured so
        (``tests/prep/test_stream.py``): the pipeline fills exactly to it, never past it."""
        return self.parallel + batch_size * (self.prefetch + 1)


@dataclass(frozen=True)
class Augmentation:
    """The augmented copies a balanced training part adds after its originals:
    ``sources[k]`` is the original that copy ``k`` is made from (``augment.balance_plan``),
    with ``seed`` and ``config`` as ``augment.balance`` makes it; ``lesions`` are the
    originals' lesions on the input grid, as ``augment.lesion_arrays`` gives them."""

    sources: np.ndarray
    seed: int
    config: AugmentConfig
    lesions: Sequence[np.ndarray]


@dataclass(frozen=True)
class StreamedFilm:
    """One film as the model gets it: its input (uint8, S x S), its lesions on that grid
    ``(n, 3)``, and whether it was stored inverted (and corrected)."""

    image: np.ndarray
    lesions: np.ndarray
    inverted: bool


class LazyFilms:
    """The films of one part of a split, read only when asked for: the originals in record
    order, then the augmented copies (``Augmentation``), if any.

    Reading a film reads its file and prepares it exactly as ``core.prep.arrays.load_arrays``
    does, and an augmented copy is made exactly as ``augment.balance`` makes it, so a streamed
    sample equals its row in memory. A film that cannot be read raises ``BadFilmError``.
    """

    def __init__(self, records: Sequence[FilmRecord], prep: PrepConfig,
                 augmentation: Augmentation | None = None) -> None:
        self.records = list(records)
        self.prep = prep
        self.augmentation = augmentation

    @property
    def originals(self) -> int:
        return len(self.records)

    def __len__(self) -> int:
        extra = 0 if self.augmentation is None else len(self.augmentation.sources)
        return self.originals + extra

    @property
    def labels(self) -> np.ndarray:
        """Every sample's class id, known without reading a film."""
        labels = np.array([r.class_id for r in self.records], dtype=np.int64)
        if self.augmentation is None:
            return labels
        return np.concatenate([labels, labels[self.augmentation.sources]])

    def augmented(self, augmentation: Augmentation) -> LazyFilms:
        """The same originals followed by ``augmentation``'s copies."""
        return LazyFilms(self.records, self.prep, augmentation)

    def read(self, index: int) -> StreamedFilm:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of {len(self)}")
        if index < self.originals:
            return self._original(index)
        augmentation = self.augmentation
        assert augmentation is not None
        number = index - self.originals
        source = int(augmentation.sources[number])
        original = self._original(source)
        image, lesions, _ = augmented_sample(original.image, augmentation.lesions[source],
                                             number, augmentation.seed, augmentation.config)
        return StreamedFilm(image, lesions, original.inverted)

    def _original(self, index: int) -> StreamedFilm:
        record = self.records[index]
        prepared = prepare_film(read_film(record.path), self.prep, source=record.path)
        return StreamedFilm(prepared.image, lesions_on_grid(record, prepared.transform),
                            prepared.inverted)


#: The draw of a feed's generator that ``fit``'s first epoch trains on (see ``EpochOrder``).
FIRST_EPOCH_DRAW = 2


class Shuffle:
    """Orders of ``count`` samples, drawn one after another from ``seed``'s generator (in
    order, never shuffled, without a seed). The order of draw ``k`` depends on the seed and
    ``k`` alone, so a feed that knows its epoch can always find that epoch's order."""

    def __init__(self, count: int, seed: int | None) -> None:
        self.count, self.seed = count, seed
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.draws = 0
        self.order = np.arange(count)

    def next(self) -> np.ndarray:
        if self.rng is not None:
            self.order = self.rng.permutation(self.count)
            self.draws += 1
        return self.order

    def draw(self, k: int) -> np.ndarray:
        """The order of draw ``k`` (the generator restarts when asked for an earlier one)."""
        if self.rng is None:
            return self.order
        if k < self.draws:
            self.rng, self.draws = np.random.default_rng(self.seed), 0
        while self.draws < k:
            self.next()
        return self.order


class EpochOrder:
    """The order films are fed in, one epoch after another: shuffled anew for every epoch
    when there is a ``seed`` (in order without), each batch's films in ascending order.

    It is the order ``fit`` draws from ``Batches`` for the same seed: the same generator,
    drawn at the same moments, so a streamed run trains on the batches the same run in
    memory trains on. ``Batches`` draws once when made and once after every epoch, and
    Keras's adapter for it ends an epoch once before the first (after reading two batches
    to learn their shapes): so the first epoch ``fit`` trains on is ``Batches``'s second
    draw, and here too (``tests/train/test_feed.py`` trains both ways and compares).

    Counting passes is not enough inside ``fit``: a pass Keras abandons (a peek, one more
    batch asked for) still completes when the pipeline has read the whole epoch ahead, and
    how often that happens depends on the backend, the devices and timing. So ``fit`` tells
    the feed each epoch as it begins (``start_epoch``, from ``batches.FeedEpochs``): epoch
    ``e`` then gets draw ``e + FIRST_EPOCH_DRAW``, whatever was read before, on every backend
    and any number of devices, and a resumed run gets the order its epoch had.
    ``used``: how many of the ``count`` samples an epoch feeds (default all; fewer when its
    batches must divide among devices, ``core.train.batches.evenly_divided``).
    """

    def __init__(self, count: int, batch_size: int, seed: int | None = None,
                 used: int | None = None) -> None:
        self.count, self.batch_size = count, batch_size
        self.used = count if used is None else used
        self.shuffle = Shuffle(count, seed)
        self.driven = False
        self.order = self.shuffle.draw(FIRST_EPOCH_DRAW)

    def start_epoch(self, epoch: int) -> None:
        """``fit`` begins epoch ``epoch``: feed its order, and from now on only this sets
        the order (a pass that completes no longer draws)."""
        self.driven = True
        self.order = self.shuffle.draw(epoch + FIRST_EPOCH_DRAW)

    @property
    def batches(self) -> int:
        return math.ceil(self.used / self.batch_size)

    def __call__(self) -> Iterator[int]:
        order = self.order[:self.used]
        for start in range(0, self.used, self.batch_size):
            yield from (int(i) for i in np.sort(order[start:start + self.batch_size]))
        if not self.driven:
            self.order = self.shuffle.next()


@dataclass(frozen=True)
class Component:
    """One array of what ``stream``'s reader returns per sample: its shape and dtype."""

    shape: tuple[int, ...]
    dtype: Any


def stream(read: Callable[[int], Sequence[np.ndarray]], components: Sequence[Component],
           order: EpochOrder, settings: StreamSettings = StreamSettings(),
           pack: Callable[..., Any] | None = None) -> Any:
    """A ``tf.data.Dataset`` of batches: ``read(i)`` gives sample ``i`` as arrays shaped as
    ``components``, on ``settings.parallel`` threads, in ``order``'s batches, with
    ``settings.prefetch`` batches made ahead. ``pack`` (tensors of one batch -> what the
    model is given, e.g. ``(inputs, {"class": ..., "attention": ...}, weights)``) runs on
    each batch. Each iteration of the dataset is one epoch of ``order``."""
    tf = backend.data_pipeline()
    dtypes = [tf.as_dtype(np.dtype(c.dtype)) for c in components]

    def read_arrays(index: np.ndarray) -> list[np.ndarray]:
        values = read(int(index))
        return [np.asarray(v, dtype=c.dtype) for v, c in zip(values, components, strict=True)]

    def load(index: Any) -> tuple[Any, ...]:
        values = tf.numpy_function(read_arrays, [index], dtypes)
        return tuple(tf.ensure_shape(v, c.shape) for v, c in zip(values, components))

    dataset = tf.data.Dataset.from_generator(
        order, output_signature=tf.TensorSpec(shape=(), dtype=tf.int64))
    dataset = dataset.map(load, num_parallel_calls=settings.parallel, deterministic=True)
    dataset = dataset.batch(order.batch_size)
    if pack is not None:
        dataset = dataset.map(pack)
    dataset = dataset.prefetch(settings.prefetch)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(order.batches))
    options = tf.data.Options()
    options.autotune.enabled = False
    # No rewriting either: fused into one map-and-batch step, the reader ran up to the
    # whole dataset ahead of the model (104 of 120 films read with 18 allowed).
    options.experimental_optimization.apply_default_optimizations = False
    options.experimental_optimization.inject_prefetch = False
    return dataset.with_options(options)
