"""Data-parallel training and mixed precision, on this CPU.

Two devices must train the weights one device trains, for both model kinds and both
backends: JAX with its CPU split in two (``XLA_FLAGS``, read only when JAX starts) and
TensorFlow with two logical CPUs (``core.backend.use_devices``, before TensorFlow starts).
Each backend runs in a child process with a timeout, so a hang on the split CPU fails as one
clear message instead of freezing the suite. The child trains five runs one after the
other (one start-up, not five): both kinds on one and on two devices, and the attention
model on two devices from streamed films (``core.train.feed``), which must equal it in
memory on one.

The configuration is tiny (32 px, two attention steps) and chosen so that equality is the
right expectation: 16 balanced training samples in batches of 8 (each epoch's batches divide
between the devices, so none is left out),
dropout 0 (TensorFlow draws each replica's dropout mask for its half of the batch, so masks,
not the arithmetic, would differ), no patch pretraining and no fine-tuning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import REPO
from core import backend
from core.errors import BadConfigError
from core.evaluate.predict import predict_films
from core.runs.config import TrainConfig
from core.train.batches import Batches
from core.train.feed import feed
from core.train.fit import train
from factories import TINY

#: Equal training, for the multi-device comparison (see the module's docstring).
EQUAL = {**TINY, "image_size": 32, "steps": 2, "batch_size": 8, "dropout": 0.0,
         "balance": "augment", "augment_target": 16}
#: How far ahead of the next class a prediction must be to count as confident.
CONFIDENT = 0.25
#: Seconds a child may take for its five tiny runs (about two minutes on two busy cores).
CHILD_TIMEOUT_S = 420

CHILD = """
import json, sys
from pathlib import Path
import keras, numpy as np
from core import backend
from core.runs.config import TrainConfig
from core.train.fit import train

backend.use_devices(2)  # before the first run starts TensorFlow: its CPU splits only then
root, out, settings = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
found = {}
for model, devices, streaming in (("attention", 1, "off"), ("attention", 2, "off"),
                                  ("transfer", 1, "off"), ("transfer", 2, "off"),
                                  ("attention", 2, "on")):
    config = TrainConfig(dataset="mias", root=root).with_overrides(
        **settings, model=model, devices=devices, streaming=streaming)
    run = train(config, out)
    saved = keras.models.load_model(run.path / "model.keras", safe_mode=True)
    name = f"{model}-{devices}" + ("-streamed" if streaming == "on" else "")
    np.savez(out / f"{name}.npz", *[np.asarray(w) for w in saved.weights])
    found[name] = {
        "status": run.manifest["status"], "error": run.manifest.get("error"),
        "hardware": run.manifest["hardware"], "backend": run.manifest["versions"]["backend"],
        "losses": [e["loss"] for e in run.events() if e["event"] == "epoch"]}
print(json.dumps(found))
"""


def _train_in_child(backend_name: str, root: Path, out: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend_name, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if backend_name == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    try:
        result = subprocess.run([sys.executable, "-c", CHILD, str(root), str(out),
                                 json.dumps(EQUAL)], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as stopped:
        pytest.fail(f"{backend_name}: five tiny runs took over {CHILD_TIMEOUT_S} s (a hang on "
                    f"the split CPU?); last output: {str(stopped.stderr)[-1500:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_two_devices_train_the_weights_one_device_trains(backend_name: str,
                                                         synthetic_root: Path,
                                                         tmp_path: Path) -> None:
    found = _train_in_child(backend_name, synthetic_root, tmp_path)
    for model, two_name in (("attention", "attention-2"), ("transfer", "transfer-2"),
                            ("attention", "attention-2-streamed")):
        one, two = found[f"{model}-1"], found[two_name]
        for run in (one, two):
            assert run["status"] == "done", run["error"]
            assert run["backend"] == backend_name
        assert one["hardware"]["devices"] == ["default"]
        assert len(two["hardware"]["devices"]) == 2, two["hardware"]
        assert len(set(two["hardware"]["devices"])) == 2  # two devices, not one named twice
        np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
        weights = [np.load(tmp_path / f"{name}.npz") for name in (f"{model}-1", two_name)]
        assert len(weights[0].files) == len(weights[1].files) > 0
        for name in weights[0].files:
            np.testing.assert_allclose(weights[1][name], weights[0][name], atol=1e-5,
                                       err_msg=f"{backend_name} {two_name} weight {name}")
        assert one["losses"][0] != one["losses"][-1]  # it trained: not two untouched copies


def test_batches_divide_among_devices_in_memory_and_streamed() -> None:
    """Every batch, the last one too, splits evenly; an epoch leaves out its last few
    samples in its order, and the streamed feed leaves out the very same ones."""
    inputs = np.arange(23 * 4, dtype=np.float32).reshape(23, 2, 2)
    targets = np.arange(23)
    memory = Batches(inputs, targets, 6, seed=5, replicas=2)
    memory.on_epoch_end()  # Keras's adapter ends an epoch before the first
    sizes = [len(memory[i][1]) for i in range(len(memory))]
    assert sizes == [6, 6, 6, 4] and all(size % 2 == 0 for size in sizes)
    seen = np.concatenate([memory[i][1] for i in range(len(memory))])
    assert len(set(seen.tolist())) == 22

    class Store:  # a FeatureStore's face: shape, length, read
        shape = inputs.shape

        def __len__(self) -> int:
            return len(inputs)

        def read(self, index: int) -> np.ndarray:
            return inputs[index]

    streamed = feed(Store(), targets, 6, seed=5, replicas=2)
    batches = [y for _, y in streamed.as_numpy_iterator()]
    assert [len(y) for y in batches] == sizes
    np.testing.assert_array_equal(np.concatenate(batches), seen)
    with pytest.raises(BadConfigError, match="does not divide"):
        Batches(inputs, targets, 5, replicas=2)
    with pytest.raises(BadConfigError, match="does not divide among 2 devices"):
        TrainConfig().with_overrides(devices=2, batch_size=15)


def test_too_many_devices_or_float16_on_a_cpu_is_one_clear_error() -> None:
    with pytest.raises(BadConfigError, match="devices 64: only"):
        backend.use_devices(64)
    with pytest.raises(BadConfigError, match="float16 needs a GPU"):
        backend.set_mixed_precision("float16")


def test_tensorflow_across_machines_is_refused_naming_the_keras_issue(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(BadConfigError, match="keras/issues/20585"):
        backend.join_cluster()


def test_older_runs_keep_their_precision_and_one_device() -> None:
    saved = TrainConfig().to_dict()
    del saved["devices"]
    for old, now in ((False, "off"), (True, "float16")):
        config = TrainConfig.from_manifest({**saved, "mixed_precision": old})
        assert (config.mixed_precision, config.devices) == (now, 1)


@pytest.fixture
def float32_afterwards() -> Iterator[None]:
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_bfloat16_trains_and_predicts_the_classes_float32_does(
        keras_home: Path, synthetic_root: Path, tmp_path: Path,
        float32_afterwards: None) -> None:
    """The transfer model in bfloat16 (outputs and loss in float32): it trains, saves, loads
    and predicts the class float32 predicts, on every film both are confident about (the top
    class ahead of the next by ``CONFIDENT``). Trained apart, the two drift a little, so a
    film either is unsure about may flip. ImageNet's MobileNet (the shared file) gives
    features a head can learn from in seconds; the untrained one gives every film the same
    probabilities, which would make the comparison empty."""
    settings = {**TINY, "model": "transfer", "weights": "imagenet", "epochs": 30,
                "learning_rate": 1e-2, "dropout": 0.0}
    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**settings)
    runs = {precision: train(config.with_overrides(mixed_precision=precision),
                             tmp_path / precision) for precision in ("off", "bfloat16")}
    for precision, run in runs.items():
        assert run.manifest["status"] == "done", run.manifest.get("error")
        assert run.manifest["config"]["mixed_precision"] == precision
    assert runs["bfloat16"].manifest["hardware"]["policy"] == "mixed_bfloat16"
    model = keras.models.load_model(runs["bfloat16"].path / "model.keras", safe_mode=True)
    policies = {layer.dtype_policy.name for layer in _layers(model)}
    assert "mixed_bfloat16" in policies and model.outputs[0].dtype == "float32"
    films = sorted(synthetic_root.glob("mdb*.pgm"))
    keras.mixed_precision.set_global_policy("float32")  # prediction reads each saved policy
    entries = {precision: predict_films(run, films, tmp_path / f"p-{precision}")
               for precision, run in runs.items()}
    confident = 0
    for full, half in zip(entries["off"], entries["bfloat16"], strict=True):
        margins = [_margin(entry["probabilities"]) for entry in (full, half)]
        if min(margins) > CONFIDENT:
            confident += 1
            assert half["label"] == full["label"], (full["file"], full, half)
    assert confident >= len(films) // 2, f"only {confident} confident films: the test says little"


def _layers(model: keras.Model) -> Iterator[keras.Layer]:
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def _margin(probabilities: dict[str, float]) -> float:
    top = sorted(probabilities.values(), reverse=True)
    return top[0] - top[1]
