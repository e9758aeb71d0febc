"""Streamed films: the same samples as in memory, in the same batches, with memory bounded by
the pipeline's settings and not by the number of films."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import core.prep.preprocess as preprocess_module
from core import backend
from core.data import load_dataset
from core.prep.arrays import load_arrays
from core.prep.augment import AugmentConfig, balance, balance_plan, lesion_arrays
from core.prep.preprocess import PrepConfig
from core.prep.stream import (
    Augmentation,
    Component,
    EpochOrder,
    LazyFilms,
    StreamSettings,
    stream,
)
from core.train.batches import Batches
from factories import wait_for

PREP = PrepConfig(size=64)


def test_a_film_source_reads_what_load_arrays_holds(synthetic_root: Path) -> None:
    records = load_dataset("mias", synthetic_root).records[:10]
    in_memory = load_arrays(records, PREP)
    source = LazyFilms(records, PREP)
    assert len(source) == 10
    np.testing.assert_array_equal(source.labels, in_memory.labels)
    for index in range(10):
        film = source.read(index)
        np.testing.assert_array_equal(film.image, in_memory.images[index])
        np.testing.assert_array_equal(film.lesions, in_memory.lesions[index])
    assert sum(len(rows) for rows in in_memory.lesions) > 0  # lesions were compared, not none


def test_augmented_copies_are_balances_own(synthetic_root: Path) -> None:
    records = load_dataset("mias", synthetic_root).records[:12]
    films = load_arrays(records, PREP)
    n_classes = len(records[0].classes)
    config = AugmentConfig(noise_std=0.05)
    grown = balance(films.images, films.labels, films.lesions, n_classes, config=config, seed=3)
    before, after, sources = balance_plan(films.labels, n_classes, seed=3)
    np.testing.assert_array_equal(before, grown.counts_before)
    originals = lesion_arrays(films.lesions, len(films))
    source = LazyFilms(records, PREP).augmented(Augmentation(sources, 3, config, originals))
    assert len(source) == len(grown.images) > len(records)
    np.testing.assert_array_equal(source.labels, grown.labels)
    np.testing.assert_array_equal(after, grown.counts_after)
    for index in range(len(records), len(source)):
        film = source.read(index)
        np.testing.assert_array_equal(film.image, grown.images[index])
        np.testing.assert_array_equal(film.lesions, grown.lesions[index])


@pytest.mark.parametrize("seed", [None, 7])
def test_the_epoch_order_is_batches_order(seed: int | None) -> None:
    """Three epochs, a last batch short of full: the same rows in the same batches as
    ``fit`` draws from ``Batches``, whose Keras adapter ends one epoch before the first."""
    values = np.arange(23, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    targets = np.arange(23) % 3
    batches = Batches(values, targets, 5, seed=seed)
    batches.on_epoch_end()  # as Keras's adapter does, once the first batches are read
    dataset = stream(lambda i: (values[i], targets[i]),
                     [Component((2,), np.float32), Component((), targets.dtype)],
                     EpochOrder(23, 5, seed), StreamSettings(prefetch=1, parallel=2))
    assert int(dataset.cardinality()) == len(batches) == 5
    epochs = []
    for _ in range(3):
        streamed = list(dataset.as_numpy_iterator())
        assert len(streamed) == len(batches)
        for index, (inputs, labels) in enumerate(streamed):
            expected_inputs, expected_labels = batches[index]
            np.testing.assert_array_equal(inputs, expected_inputs)
            np.testing.assert_array_equal(labels, expected_labels)
        batches.on_epoch_end()
        epochs.append(np.concatenate([labels for _, labels in streamed]).tolist())
    assert (epochs[0] != epochs[1]) == (seed is not None)  # shuffled anew, or in order


def test_an_abandoned_pass_draws_no_new_order() -> None:
    """Keras may peek at a first batch; only a complete epoch moves to the next order."""
    order, twin = EpochOrder(10, 4, seed=1), EpochOrder(10, 4, seed=1)
    peek = order()
    next(peek)
    peek.close()
    assert list(order()) == list(twin())
    assert list(order()) == list(twin())


class CountingReader:
    """Films read so far, films the model is done with, and the most ever held between."""

    def __init__(self, films: int) -> None:
        self.lock = threading.Lock()
        self.read = self.done = self.most_held = 0
        self.films = films

    def __call__(self, index: int) -> tuple[np.ndarray]:
        with self.lock:
            self.read += 1
            self.most_held = max(self.most_held, self.read - self.done)
        return (np.full((16, 16), index, np.uint8),)


@pytest.mark.parametrize(("batch_size", "prefetch", "parallel"), [(4, 2, 2), (8, 1, 3)])
def test_the_pipeline_never_holds_more_than_its_bound(batch_size: int, prefetch: int,
                                                      parallel: int) -> None:
    """A slow model: after every batch it waits until the pipeline has read as far ahead as
    it will, then counts the batch done. The films read but not done never pass
    ``held_at_most``, and it does read that far ahead (the bound is the real one) unless op
    determinism is on in this process (a test before this one trained a model): then
    tf.data runs the reader one film at a time and reads ahead less, still within the bound."""
    films = 96
    settings = StreamSettings(prefetch=prefetch, parallel=parallel)
    bound = settings.held_at_most(batch_size)
    assert bound < films / 2
    reader = CountingReader(films)
    dataset = stream(reader, [Component((16, 16), np.uint8)], EpochOrder(films, batch_size, 0),
                     settings)
    ahead = batch_size if backend.pipelines_deterministic() else bound
    seen = []
    for (batch,) in dataset.as_numpy_iterator():
        seen += batch[:, 0, 0].tolist()
        wait_for(lambda: reader.read >= min(films, reader.done + ahead),
                 "the pipeline to read ahead", timeout_s=60)
        with reader.lock:
            reader.done += len(batch)
    assert sorted(seen) == list(range(films))
    assert batch_size <= reader.most_held <= bound
    if not backend.pipelines_deterministic():
        assert reader.most_held == bound


def test_loading_into_memory_holds_every_film(synthetic_root: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The contrast the bound is drawn against: ``load_arrays`` reads every film before the
    model sees one, so the films held grow with the dataset."""
    records = load_dataset("mias", synthetic_root).records
    reads = []
    real = preprocess_module.read_film
    monkeypatch.setattr(preprocess_module, "read_film", lambda path: reads.append(path)
                        or real(path))
    load_arrays(records, PREP)
    assert len(reads) == len(records) > StreamSettings(prefetch=1, parallel=1).held_at_most(4)
