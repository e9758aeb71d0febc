"""Streamed training: the films, labels, lesions and batches of the in-memory path, a run that
trains, evaluates and predicts like one trained in memory, and patch films in a budget."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

import core.train.feed as feed_module
from conftest import REPO
from core.data import load_dataset
from core.evaluate.evaluate import evaluate_run
from core.evaluate.predict import predict_films
from core.models.features import cached_features
from core.prep.patches import lesion_patches
from core.prep.splits import split_dataset
from core.runs.config import TrainConfig
from core.train.batches import Batches
from core.train.feed import (
    StreamedFilms,
    encode_to_store,
    feed,
    patch_films,
    streamed_training_set,
    streams,
)
from core.train.fit import _arrays_in_memory, train
from factories import TINY


def _config(root: Path, **overrides) -> TrainConfig:
    return TrainConfig(dataset="mias", root=str(root)).with_overrides(**{**TINY, **overrides})


def _parts(config: TrainConfig) -> tuple[list, list, int]:
    dataset = load_dataset("mias", config.root)
    splits = split_dataset(dataset, config.test_size, config.val_fraction, config.seed)
    return ([dataset.records[int(i)] for i in splits.train],
            [dataset.records[int(i)] for i in splits.val], len(dataset.classes))


def _encode(batch: np.ndarray) -> np.ndarray:
    """A stand-in encoder: a 4 x 4 grid of block means, 3 channels."""
    blocks = batch.reshape(len(batch), 4, batch.shape[1] // 4, 4, batch.shape[2] // 4)
    means = blocks.astype(np.float32).mean(axis=(2, 4))
    return np.stack([means, means / 2, means / 3], axis=-1)


def test_a_streamed_training_set_is_the_in_memory_one(synthetic_root: Path,
                                                      tmp_path: Path) -> None:
    """Augmented to balance, with a film that cannot be read: the same samples, labels,
    lesions, counts and warnings; only keys and lesions are kept, never pixels."""
    root = tmp_path / "films"
    shutil.copytree(synthetic_root, root)
    fit_records, val_records, n_classes = _parts(_config(root))
    fit_records[2].path.write_bytes(b"P5\n64 64\n255\n")  # truncated: no pixels
    config = _config(root, balance="augment")
    warned_memory: list[str] = []
    warned_stream: list[str] = []
    memory = _arrays_in_memory(config, fit_records, val_records, n_classes, warned_memory)
    streamed = streamed_training_set(config, fit_records, val_records, n_classes,
                                     warned_stream)
    assert streamed.streamed and not memory.streamed
    assert warned_stream == warned_memory and "film left out" in warned_memory[0]
    assert isinstance(streamed.fit_images, StreamedFilms)
    assert len(streamed.fit_images) == len(memory.fit_images) > len(fit_records)
    for name in ("fit_labels", "val_labels", "counts_before", "counts_after"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(memory, name))
    for part in ("fit", "val"):
        films = getattr(streamed, f"{part}_images")
        arrays = getattr(memory, f"{part}_images")
        for index in range(len(films)):
            np.testing.assert_array_equal(films.source.read(index).image, arrays[index])
        for rows, expected in zip(getattr(streamed, f"{part}_lesions"),
                                  getattr(memory, f"{part}_lesions"), strict=True):
            assert rows.dtype == expected.dtype
            np.testing.assert_array_equal(rows, expected)


def test_streamed_features_and_films_feed_the_batches_arrays_do(synthetic_root: Path,
                                                                tmp_path: Path) -> None:
    config = _config(synthetic_root)
    fit_records, val_records, n_classes = _parts(config)
    memory = _arrays_in_memory(config, fit_records, val_records, n_classes, [])
    streamed = streamed_training_set(config, fit_records, val_records, n_classes, [])
    in_memory = cached_features(_encode, memory.fit_images, "stand-in", tmp_path)
    store = encode_to_store(_encode, streamed.fit_images, "stand-in", 5)
    assert store.shape == in_memory.shape == (len(fit_records), 4, 4, 3)
    labels = memory.fit_labels
    targets = {"class": np.eye(n_classes, dtype=np.float32)[labels],
               "attention": np.arange(len(labels) * 4, dtype=np.float32).reshape(-1, 4)}
    weights = np.linspace(0.5, 2, len(labels)).astype(np.float32)
    for inputs_memory, inputs_streamed, films in ((in_memory, store, False),
                                                  (memory.fit_images, streamed.fit_images,
                                                   True)):
        batches = feed(inputs_memory, targets, 4, weights, seed=3, films=films)
        batches.on_epoch_end()  # Keras's adapter ends an epoch before the first
        dataset = feed(inputs_streamed, targets, 4, weights, seed=3, films=films)
        for _ in range(2):
            streamed_batches = list(dataset.as_numpy_iterator())
            assert len(streamed_batches) == len(batches)
            for index, (x, y, w) in enumerate(streamed_batches):
                want_x, want_y, want_w = batches[index]
                np.testing.assert_array_equal(x, want_x)
                assert set(y) == set(want_y)
                for name in y:
                    np.testing.assert_array_equal(y[name], want_y[name])
                np.testing.assert_array_equal(w, want_w)
            batches.on_epoch_end()


def test_features_in_the_cache_are_not_encoded_again(synthetic_root: Path,
                                                     tmp_path: Path) -> None:
    config = _config(synthetic_root)
    fit_records, val_records, n_classes = _parts(config)
    films = streamed_training_set(config, fit_records, val_records, n_classes, []).fit_images
    calls: list[int] = []

    def counted(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return _encode(batch)

    encode_to_store(counted, films, "counted", 4)
    assert sum(calls) == len(films)
    again = encode_to_store(counted, films, "counted", 4)
    assert sum(calls) == len(films) and again.missing() == []


def test_streaming_is_chosen_by_size_or_by_the_setting(synthetic_root: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(synthetic_root)
    assert config.streaming == "auto"
    assert not streams(config, 10_000)  # 10,000 films of 64 px: 41 MB, held in memory
    assert streams(config.with_overrides(image_size=512), 5_000)  # 1.3 GB: streamed
    assert streams(config.with_overrides(streaming="on"), 1)
    assert not streams(config.with_overrides(streaming="off", image_size=512), 100_000)
    monkeypatch.setattr(feed_module, "STREAM_ABOVE_BYTES", 64 * 64 * 10)
    assert streams(config, 11) and not streams(config, 10)
    # A run saved before streaming existed resumes as "auto": held in memory as it was,
    # unless it is large, and streamed it trains on the same batches.
    assert TrainConfig.from_manifest(
        {k: v for k, v in config.to_dict().items() if k != "streaming"}).streaming == "auto"


def test_patch_films_are_those_that_give_patches_within_a_budget(
        synthetic_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within the budget: the films that give patches, which give the patches all the
    training films give in memory. Past it: a share of them, and a warning says so."""
    config = _config(synthetic_root)
    fit_records, val_records, n_classes = _parts(config)
    unlocated = [i for i, r in enumerate(fit_records) if r.label != "NORM"][:3]
    for index in unlocated:  # lesions without a location (as some MIAS CALC films) give none
        fit_records[index] = replace(fit_records[index], lesions=())
    memory = _arrays_in_memory(config, fit_records, val_records, n_classes, [])
    warnings: list[str] = []
    fit, val = patch_films(fit_records, val_records, config, warnings)
    assert not warnings and len(fit) == len(fit_records) - 3 and len(val) == len(val_records)
    normal = fit_records[0].classes.index("NORM")
    every = lesion_patches(memory.fit_images, memory.fit_labels, memory.fit_lesions, normal,
                           16, per_lesion=2, normal_per_film=2, seed=1)
    chosen = lesion_patches(fit.images, fit.labels, fit.lesions, normal, 16, per_lesion=2,
                            normal_per_film=2, seed=1)
    np.testing.assert_array_equal(chosen.images, every.images)
    np.testing.assert_array_equal(chosen.labels, every.labels)

    monkeypatch.setattr(feed_module, "PATCH_FILM_BYTES", 64 * 64 * 6)
    fit, val = patch_films(fit_records, val_records, config, warnings)
    assert len(fit) + len(val) <= 6 and len(fit) > 0
    assert len(warnings) == 1 and "chosen at random" in warnings[0]


def test_a_streamed_run_is_the_run_trained_in_memory(synthetic_root: Path,
                                                     tmp_path: Path) -> None:
    """Every phase (augmented head, fine-tuning on cut activations from the cache) streamed:
    the same losses and validation figures as in memory, and a run that evaluates and
    predicts."""
    settings = {"balance": "augment", "fine_tune_layers": 3, "fine_tune_epochs": 1}
    streamed = train(_config(synthetic_root, streaming="on", **settings), tmp_path / "on")
    memory = train(_config(synthetic_root, streaming="off", **settings), tmp_path / "off")
    for run in (streamed, memory):
        assert run.manifest["status"] == "done", run.manifest.get("error")
    data = [next(e for e in run.events() if e["event"] == "data") for run in (streamed, memory)]
    assert data[0].pop("streamed") is True and data[1].pop("streamed") is False
    assert {k: v for k, v in data[0].items() if k != "time"} == \
        {k: v for k, v in data[1].items() if k != "time"}
    losses = [[(e["phase"], e["loss"], e["val_loss"]) for e in run.events()
               if e["event"] == "epoch"] for run in (streamed, memory)]
    assert [phase for phase, *_ in losses[0]] == ["head", "head", "fine-tune"]
    np.testing.assert_allclose([loss for _, *loss in losses[0]],
                               [loss for _, *loss in losses[1]], rtol=1e-5)
    assert streamed.manifest["val"] == memory.manifest["val"]

    evaluated = evaluate_run(streamed)
    assert evaluated["synthetic"] is True and evaluated["n"] > 0
    film = next(synthetic_root.glob("mdb*.pgm"))
    (entry,) = predict_films(streamed, [film], tmp_path / "predicted")
    assert set(entry["probabilities"]) == set(streamed.manifest["dataset"]["classes"])
    assert Path(entry["heatmap"]).is_file()
    model = keras.models.load_model(streamed.path / "model.keras", safe_mode=True)
    assert model.inputs[0].shape[1:] == (64, 64, 1)


def test_a_streamed_run_trains_on_jax(synthetic_root: Path, tmp_path: Path) -> None:
    """tf.data feeds JAX too (TensorFlow kept off any GPU): head and fine-tuning streamed."""
    settings = {**TINY, "streaming": "on", "fine_tune_layers": 2, "fine_tune_epochs": 1}
    script = (
        "import json; from core.runs.config import TrainConfig; from core.train.fit import train;"
        f"c = TrainConfig(dataset='mias', root={str(synthetic_root)!r}).with_overrides("
        f"**{settings!r}); r = train(c, {str(tmp_path)!r}); m = r.manifest;"
        "d = next(e for e in r.events() if e['event'] == 'data');"
        "p = [e['phase'] for e in r.events() if e['event'] == 'epoch'];"
        "print(json.dumps([m['status'], m['versions']['backend'], d['streamed'], p]))"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    status, backend, streamed, phases = json.loads(result.stdout.strip().splitlines()[-1])
    assert (status, backend, streamed) == ("done", "jax", True)
    assert phases == ["head", "head", "fine-tune"]


class _Store:
    """A ``FeatureStore``'s face over an array: shape, length, read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape = array, array.shape

    def __len__(self) -> int:
        return len(self.array)

    def read(self, index: int) -> np.ndarray:
        return self.array[index]


def test_each_epoch_gets_its_order_however_many_passes_were_read() -> None:
    """Told the epoch (``FeedEpochs``, in ``fit``), in memory and streamed feed that epoch's
    batches, the ones an undisturbed run feeds it, after any number of passes read ahead
    (Keras on JAX, or on several devices, reads one more than it trains on)."""
    inputs = np.arange(20, dtype=np.float32).reshape(10, 2)
    targets = np.arange(10)
    undisturbed = Batches(inputs, targets, 4, seed=1)
    expected = []
    for _ in range(3):
        undisturbed.on_epoch_end()  # Keras's adapter ends an epoch before the first
        expected.append([undisturbed[i][1] for i in range(len(undisturbed))])
    memory = Batches(inputs, targets, 4, seed=1)
    streamed = feed(_Store(inputs), targets, 4, seed=1)
    for _ in range(4):
        list(streamed.as_numpy_iterator())  # whole passes, none of them trained on
        memory.on_epoch_end()
    for epoch in (2, 0, 1, 1):
        memory.start_epoch(epoch)
        streamed.start_epoch(epoch)
        for _ in range(2):  # a pass read to its end no longer moves the order on
            got = [y for _, y in streamed.as_numpy_iterator()]
            for batch, want in zip(got, expected[epoch], strict=True):
                np.testing.assert_array_equal(batch, want)
            for index, want in enumerate(expected[epoch]):
                np.testing.assert_array_equal(memory[index][1], want)
    assert not all(np.array_equal(a, b) for a, b in zip(expected[0], expected[1]))


def test_pairs_feed_each_sample_beside_its_other_breast(synthetic_root: Path) -> None:
    """In memory, every batch holds each film and, as its second channel, the film its
    ``partners`` entry names; a grown copy goes beside its original's other breast."""
    films = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    partners = np.array([1, 0, 3, 2])
    batches = Batches(films, np.arange(4), batch_size=4, films=True, partners=partners)
    inputs, targets = batches[0]
    for row, label in enumerate(targets):
        np.testing.assert_array_equal(inputs[row, ..., 0], films[label])
        np.testing.assert_array_equal(inputs[row, ..., 1], films[partners[label]])

    config = _config(synthetic_root, both_breasts=True, balance="augment")
    dataset = load_dataset("mias", synthetic_root)
    splits = split_dataset(dataset, config.test_size, config.val_fraction, config.seed)
    fit = [dataset.records[int(i)] for i in splits.train]
    val = [dataset.records[int(i)] for i in splits.val]
    data = _arrays_in_memory(config, fit, val, len(dataset.classes), [])
    originals = len(fit)
    assert len(data.fit_partners) == len(data.fit_labels) > originals
    for row, partner in enumerate(data.fit_partners[:originals]):
        own, other = fit[row], fit[partner]
        assert other.patient_id == own.patient_id and (other is own or other.side != own.side)
    # A copy of a film shares its original's label and its original's other breast.
    assert set(data.fit_partners[originals:]) <= set(data.fit_partners[:originals])
    assert len(data.val_partners) == len(data.val_labels)
