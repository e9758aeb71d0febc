"""What training feeds Keras: films and features in memory, or streamed from disk.

A small dataset is read into memory once (``core.prep.arrays``) and fed from arrays
(``core.train.batches``), as it always was. A large one (``streams``: above
``core.settings.STREAM_ABOVE_BYTES`` of films at the input size, or ``streaming`` "on")
never is:

* the DATA step reads every film once (``scan``), in parallel, in batches, keeping of each
  only what is small: its content key, its lesions on the input grid, its label. Films that
  cannot be read are left out with a warning, as in memory; a balanced training part then
  adds its augmented copies (``augment.balance_plan``: which original, which seed), scanned
  the same way;
* each frozen encoder's features go to the feature cache, one file per film
  (``encode_to_store``: only films not cached yet are read and encoded), and the head and
  the fine-tuned top train on a ``FeatureStore`` read batch by batch; fine-tuning that must
  see films, and the final validation scores, read the films again;
* patch pretraining, which cuts its patches from films in memory, gets the films that give
  patches, up to ``PATCH_FILM_BYTES`` of them (``patch_films``).

Every streamed feed is ``core.prep.stream.stream``: bounded buffers, the same batches as
``Batches`` for the same seed. Memory then holds, per film, a key and its targets (a label,
a few lesion rows, an attention target of the feature grid), never its pixels or features.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data.records import NORMAL_CLASS, FilmRecord
from core.errors import BadConfigError, BadFilmError, MammoError
from core.models.features import FeatureStore, image_key
from core.prep.arrays import FilmArrays, inverted_note, load_arrays
from core.prep.augment import balance_plan, lesion_arrays
from core.prep.stream import (
    Augmentation,
    Component,
    EpochOrder,
    LazyFilms,
    StreamSettings,
    stream,
)
from core.runs.config import TrainConfig
from core.settings import STREAM_ABOVE_BYTES
from core.train.batches import Batches, evenly_divided

log = logging.getLogger(__name__)

#: Films per batch when films are only read (the scan): small, since nothing trains on it.
SCAN_BATCH = 16
#: The most film pixels (uint8, at the input size) a streamed run reads into memory for
#: patch pretraining: 1,024 films at 512 px, 4,096 at 256 px.
PATCH_FILM_BYTES = 256 << 20

#: How streamed passes read: threads per pipeline and batches made ahead.
STREAM = StreamSettings()
#: ``on_batch(done, total)``: progress of a pass over films; it may raise to stop the pass.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class StreamedFilms:
    """A part's films, read from disk when fed: their ``LazyFilms`` and each sample's
    content key (``features.image_key``), under which the cache keeps its features."""

    source: LazyFilms
    keys: list[str]

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class TrainingSet:
    """What the model is fitted on (after balancing) and validated on: films as arrays
    (``np.ndarray``, uint8 N x S x S) or ``StreamedFilms``, with their labels and lesions
    on the input grid; the class counts before and after balancing; ``patch_films()``, the
    training and validation films patch pretraining cuts its patches from."""

    fit_images: np.ndarray | StreamedFilms
    fit_labels: np.ndarray
    fit_lesions: list[np.ndarray]
    val_images: np.ndarray | StreamedFilms
    val_labels: np.ndarray
    val_lesions: list[np.ndarray]
    counts_before: np.ndarray
    counts_after: np.ndarray
    patch_films: Callable[[], tuple[FilmArrays, FilmArrays]]
    streamed: bool = False
    #: With ``both_breasts``: each fitted and each validation sample's other breast, as a
    #: position in its part (``core.data.pairs.partner_positions``; itself where none).
    fit_partners: np.ndarray | None = None
    val_partners: np.ndarray | None = None


def streams(config: TrainConfig, films: int) -> bool:
    """Whether a run of ``config`` over ``films`` (training and validation) streams them."""
    if config.streaming != "auto":
        return config.streaming == "on"
    return films * config.image_size ** 2 > STREAM_ABOVE_BYTES


# -- reading every film once ------------------------------------------------------------------
@dataclass
class Scan:
    """What one pass over a part's samples found: per sample its content key and lesions
    (None for a film that could not be read), the faults, and the films stored inverted."""

    keys: list[str | None]
    lesions: list[np.ndarray | None]
    failures: dict[int, str]
    inverted: list[int]


def scan(source: LazyFilms, indices: Sequence[int] | None = None,
         on_batch: Progress | None = None,
         settings: StreamSettings = STREAM) -> Scan:
    """Read the samples ``indices`` (default: all) of ``source`` once, in parallel and in
    batches, keeping only their keys and lesions; a film that cannot be read is recorded in
    ``failures``, not raised."""
    chosen = list(range(len(source))) if indices is None else list(indices)
    size = source.prep.size
    found = Scan([None] * len(source), [None] * len(source), {}, [])

    def read(position: int) -> tuple[np.ndarray]:
        index = chosen[position]
        try:
            film = source.read(index)
        except BadFilmError as error:
            found.failures[index] = str(error)
            return (np.zeros((size, size), np.uint8),)
        found.lesions[index] = film.lesions
        if film.inverted:
            found.inverted.append(index)
        return (film.image,)

    done = 0
    order = EpochOrder(len(chosen), SCAN_BATCH)
    for (images,) in stream(read, [Component((size, size), np.uint8)], order,
                            settings).as_numpy_iterator():
        for image in images:
            index = chosen[done]
            if index not in found.failures:
                found.keys[index] = image_key(image)
            done += 1
        if on_batch is not None:
            on_batch(done, len(chosen))
    found.inverted.sort()
    return found


def _kept(source: LazyFilms, found: Scan, warnings: list[str]) -> tuple[LazyFilms, Scan]:
    """The part without the films that could not be read, warned of as ``load_arrays``
    warns of them, with the inverted films' note."""
    for index in sorted(found.failures):
        log.warning("film left out: %s", found.failures[index])
        warnings.append(f"film left out: {found.failures[index]}")
    if found.inverted:
        note = inverted_note([source.records[i] for i in found.inverted])
        log.info(note)
        warnings.append(note)
    keep = [i for i in range(len(source)) if i not in found.failures]
    if not keep:
        raise MammoError("no film could be read; see the warnings above")
    kept = LazyFilms([source.records[i] for i in keep], source.prep)
    return kept, Scan([found.keys[i] for i in keep], [found.lesions[i] for i in keep], {}, [])


def streamed_training_set(config: TrainConfig, fit_records: list[FilmRecord],
                          val_records: list[FilmRecord], n_classes: int, warnings: list[str],
                          on_batch: Progress | None = None) -> TrainingSet:
    """The training and validation parts, scanned (``scan``) and, for ``balance`` "augment",
    grown by the augmented copies ``augment.balance`` would make, never held in memory."""
    if config.both_breasts:
        raise BadConfigError("both breasts are read together from films in memory only: "
                             "this run would stream its films (set streaming to off, or "
                             "train on fewer films or a smaller input)")
    read_fit, read_val = LazyFilms(fit_records, config.prep), LazyFilms(val_records, config.prep)
    fit, fit_scan = _kept(read_fit, scan(read_fit, on_batch=on_batch), warnings)
    val, val_scan = _kept(read_val, scan(read_val, on_batch=on_batch), warnings)
    labels = fit.labels
    keys: list[Any] = list(fit_scan.keys)
    lesions: list[Any] = list(fit_scan.lesions)
    if config.balance == "augment":
        before, after, sources = balance_plan(labels, n_classes, config.augment_target,
                                              config.seed)
        originals = lesion_arrays(lesions, len(lesions))
        grown = fit.augmented(Augmentation(sources, config.seed, config.augment, originals))
        copies = scan(grown, range(fit.originals, len(grown)), on_batch=on_batch)
        fit_source = grown
        keys += copies.keys[fit.originals:]
        lesions = [rows.copy() for rows in originals] + copies.lesions[fit.originals:]
    else:
        fit_source = fit
        before = after = np.bincount(labels, minlength=n_classes)

    def patches() -> tuple[FilmArrays, FilmArrays]:
        return patch_films(fit.records, val.records, config, warnings)

    return TrainingSet(
        fit_images=StreamedFilms(fit_source, keys), fit_labels=fit_source.labels,
        fit_lesions=lesions, val_images=StreamedFilms(val, list(val_scan.keys)),
        val_labels=val.labels, val_lesions=list(val_scan.lesions),
        counts_before=before, counts_after=after, patch_films=patches, streamed=True)


def _gives_patches(record: FilmRecord) -> bool:
    """Whether ``core.prep.patches.lesion_patches`` cuts anything from the film: a located
    lesion, or normal tissue of a normal film. It draws nothing for the others, so leaving
    them out changes none of the patches."""
    return bool(record.located_lesions) or record.label == NORMAL_CLASS


def patch_films(fit: list[FilmRecord], val: list[FilmRecord], config: TrainConfig,
                warnings: list[str]) -> tuple[FilmArrays, FilmArrays]:
    """The films patch pretraining cuts from: those that give patches, all of them while
    they fit in ``PATCH_FILM_BYTES`` (then the patches are the ones in memory would be),
    else a random share of each part that does, with a warning saying how many."""
    parts = [[r for r in fit if _gives_patches(r)], [r for r in val if _gives_patches(r)]]
    room = max(2, PATCH_FILM_BYTES // config.image_size ** 2)
    total = sum(len(part) for part in parts)
    if total > room:
        rng = np.random.default_rng([config.seed, 2])
        shares = [max(1, room * len(part) // total) if part else 0 for part in parts]
        note = (f"patch pretraining cut its patches from {shares[0]} of {len(parts[0])} "
                f"training and {shares[1]} of {len(parts[1])} validation films with lesions "
                f"or normal tissue, chosen at random: streamed runs read at most "
                f"{PATCH_FILM_BYTES >> 20} MiB of films for it")
        parts = [[part[i] for i in sorted(rng.choice(len(part), share, replace=False))]
                 for part, share in zip(parts, shares)]
        log.info(note)
        warnings.append(note)
    return tuple(_arrays(part, config) for part in parts)  # type: ignore[return-value]


def _arrays(records: list[FilmRecord], config: TrainConfig) -> FilmArrays:
    if not records:
        size = config.image_size
        return FilmArrays([], np.zeros((0, size, size), np.uint8), [], [],
                          np.zeros(0, np.int64))
    return load_arrays(records, config.prep)


# -- features on disk -------------------------------------------------------------------------
def encode_to_store(encode: Callable[[np.ndarray], np.ndarray], films: StreamedFilms,
                    key: str, batch_size: int, on_batch: Progress | None = None,
                    dtype: type[np.floating] = np.float16,
                    settings: StreamSettings = STREAM) -> FeatureStore:
    """Every film's features in the cache under ``key``, computing only those missing
    (``encode`` maps a uint8 batch to features); returns the store to read them from."""
    store = FeatureStore(key, films.keys)
    todo = store.missing()
    if not todo:
        return store
    size = films.source.prep.size

    def read(position: int) -> tuple[np.ndarray]:
        return (films.source.read(todo[position]).image,)

    done = 0
    order = EpochOrder(len(todo), batch_size)
    for (images,) in stream(read, [Component((size, size), np.uint8)], order,
                            settings).as_numpy_iterator():
        for features in np.asarray(encode(images), dtype=dtype):
            store.save(todo[done], features)
            done += 1
        if on_batch is not None:
            on_batch(done, len(todo))
    return store


# -- batches for Keras --------------------------------------------------------------------------
def feed(inputs: np.ndarray | StreamedFilms | FeatureStore, targets: Any, batch_size: int,
         weights: np.ndarray | None = None, seed: int | None = None, films: bool = False,
         settings: StreamSettings = STREAM, replicas: int = 1,
         partners: np.ndarray | None = None) -> Any:
    """``(inputs, targets[, weights])`` in batches of ``batch_size`` for ``fit``, ``evaluate``
    or ``predict``, shuffled every epoch when there is a ``seed``: a ``Batches`` over arrays,
    or a streamed ``tf.data`` pipeline over films or stored features, giving the same
    batches. ``films``: the inputs are grey films (a channel axis is added). ``replicas``:
    the devices every batch is split among; an epoch then leaves out its last
    ``len(inputs) % replicas`` samples (``batches.evenly_divided``), in memory or streamed.
    ``partners``: each sample's other breast (a position in ``inputs``), fed beside it as a
    pair; arrays only (``streamed_training_set`` refuses pairs)."""
    used = evenly_divided(len(inputs), batch_size, replicas)
    if isinstance(inputs, np.ndarray):
        return Batches(inputs, targets, batch_size, weights, seed, films=films,
                       replicas=replicas, partners=partners)
    if partners is not None:
        raise BadConfigError("both breasts are read together from films in memory only")
    names = list(targets) if isinstance(targets, dict) else None
    parts = [targets[name] for name in names] if names else [targets]
    per_sample = [np.asarray(part) for part in parts]
    if weights is not None:
        per_sample.append(np.asarray(weights))
    if isinstance(inputs, StreamedFilms):
        size = inputs.source.prep.size
        shape: tuple[int, ...] = (size, size, 1)
        source = inputs.source

        def read_input(index: int) -> np.ndarray:
            return source.read(index).image[..., None]
    else:
        shape = tuple(inputs.shape[1:])
        read_input = inputs.read

    def read(index: int) -> tuple[np.ndarray, ...]:
        return (read_input(index), *(array[index] for array in per_sample))

    components = [Component(shape, np.float32)]
    components += [Component(array.shape[1:], array.dtype) for array in per_sample]
    n_targets = len(parts)

    def pack(batch: Any, *rest: Any) -> tuple[Any, ...]:
        given = dict(zip(names, rest[:n_targets])) if names else rest[0]
        return (batch, given) if weights is None else (batch, given, rest[-1])

    order = EpochOrder(len(inputs), batch_size, seed, used=used)
    dataset = stream(read, components, order, settings, pack)
    dataset.start_epoch = order.start_epoch  # for batches.FeedEpochs, as Batches has it
    return dataset
