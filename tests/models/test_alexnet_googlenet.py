"""AlexNet and GoogLeNet: published layout, the LRN layer, training, saving, and JAX.

Expected numbers and where they come from:
- AlexNet shapes are Caffe's ``bvlc_alexnet`` at 227 px (55, 27, 13, 6); parameter counts
  are k*k*(c_in/groups)*c_out + c_out for its five conv layers (2,334,080 in all) and
  in*out + out for fc6-fc8 (60,965,224 in all with the 1000-way fc8).
- GoogLeNet shapes are the "output size" column of table 1 in Szegedy et al. (2014); the
  parameter counts are recomputed from the filter counts in that table (with biases), not
  from its rounded "params" column: 6,998,552 with the 1000-way classifier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import REPO
from core.models.alexnet import build_alexnet
from core.models.backbones import build_backbone
from core.models.googlenet import INCEPTION_FILTERS, build_googlenet
from core.models.layers import LocalResponseNormalization


def _lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """Caffe's across-channel LRN written as the formula, one channel at a time."""
    out = np.empty_like(x)
    channels = x.shape[-1]
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels, c + size // 2 + 1)
        total = np.sum(x[..., lo:hi] ** 2, axis=-1)
        out[..., c] = x[..., c] / (k + alpha / size * total) ** beta
    return out


@pytest.mark.parametrize(
    "params", [{"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0},
               {"size": 3, "alpha": 2.0, "beta": 0.5, "k": 2.0}]
)
def test_lrn_matches_the_caffe_formula(params: dict) -> None:
    x = np.random.default_rng(0).normal(0, 20, (2, 3, 3, 7)).astype(np.float32)
    got = keras.ops.convert_to_numpy(LocalResponseNormalization(**params)(x))
    np.testing.assert_allclose(got, _lrn_reference(x.astype(np.float64), **params), rtol=1e-5)


def test_lrn_config_round_trip_and_bad_size() -> None:
    layer = LocalResponseNormalization(size=3, alpha=0.5, beta=0.6, k=2.0, name="n")
    clone = LocalResponseNormalization.from_config(layer.get_config())
    assert (clone.size, clone.alpha, clone.beta, clone.k, clone.name) == (3, 0.5, 0.6, 2.0, "n")
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNormalization(size=4)


def test_grouped_conv_splits_channels_as_caffe_does() -> None:
    """Group g reads input channels g*C/2.. and writes output channels g*F/2.., as in Caffe."""
    x = np.random.default_rng(1).normal(size=(1, 5, 5, 4)).astype(np.float32)
    conv = keras.layers.Conv2D(6, 3, padding="same", groups=2)
    got = keras.ops.convert_to_numpy(conv(x))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (conv.kernel, conv.bias))
    assert kernel.shape == (3, 3, 2, 6)
    for g in range(2):
        half = keras.ops.conv(x[..., 2 * g : 2 * g + 2], kernel[..., 3 * g : 3 * g + 3],
                              padding="same")
        np.testing.assert_allclose(
            got[..., 3 * g : 3 * g + 3], keras.ops.convert_to_numpy(half) + bias[3 * g : 3 * g + 3],
            rtol=1e-5, atol=1e-5,
        )


ALEXNET_SHAPES = {
    "conv1": (55, 55, 96), "pool1": (27, 27, 96), "conv2": (27, 27, 256), "pool2": (13, 13, 256),
    "conv3": (13, 13, 384), "conv4": (13, 13, 384), "conv5": (13, 13, 256),
    "pool5": (6, 6, 256), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,),
}
# (kernel, input channels, output channels, groups) from bvlc_alexnet's prototxt.
ALEXNET_CONVS = {
    "conv1": (11, 3, 96, 1), "conv2": (5, 96, 256, 2), "conv3": (3, 256, 384, 1),
    "conv4": (3, 384, 384, 2), "conv5": (3, 384, 256, 2),
}


def test_alexnet_layout_and_parameter_counts() -> None:
    model = build_alexnet(include_top=True)
    assert tuple(model.input.shape) == (None, 227, 227, 3)
    for name, shape in ALEXNET_SHAPES.items():
        assert tuple(model.get_layer(name).output.shape[1:]) == shape, name
    conv_total = 0
    for name, (k, c_in, c_out, groups) in ALEXNET_CONVS.items():
        expected = k * k * (c_in // groups) * c_out + c_out
        assert model.get_layer(name).count_params() == expected, name
        conv_total += expected
    assert conv_total == 2_334_080
    assert build_alexnet().count_params() == conv_total
    fc = (6 * 6 * 256 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert model.count_params() == conv_total + fc == 60_965_224


GOOGLENET_SHAPES = {
    "conv1_7x7_s2": (112, 112, 64), "pool1_3x3_s2": (56, 56, 64), "conv2_3x3": (56, 56, 192),
    "pool2_3x3_s2": (28, 28, 192), "inception_3a_output": (28, 28, 256),
    "inception_3b_output": (28, 28, 480), "pool3_3x3_s2": (14, 14, 480),
    "inception_4a_output": (14, 14, 512), "inception_4b_output": (14, 14, 512),
    "inception_4c_output": (14, 14, 512), "inception_4d_output": (14, 14, 528),
    "inception_4e_output": (14, 14, 832), "pool4_3x3_s2": (7, 7, 832),
    "inception_5a_output": (7, 7, 832), "inception_5b_output": (7, 7, 1024),
    "pool5_7x7_s1": (1024,), "loss3_classifier": (1000,),
}


def _inception_params(c_in: int, filters: tuple[int, ...]) -> int:
    n1, r3, n3, r5, n5, proj = filters
    return ((c_in + 1) * n1 + (c_in + 1) * r3 + (9 * r3 + 1) * n3 + (c_in + 1) * r5
            + (25 * r5 + 1) * n5 + (c_in + 1) * proj)


def test_googlenet_layout_and_parameter_counts() -> None:
    model = build_googlenet(include_top=True)
    assert tuple(model.input.shape) == (None, 224, 224, 3)
    for name, shape in GOOGLENET_SHAPES.items():
        assert tuple(model.get_layer(name).output.shape[1:]) == shape, name
    stem = (7 * 7 * 3 + 1) * 64 + (64 + 1) * 64 + (9 * 64 + 1) * 192
    total, c_in = stem, 192
    for block, filters in INCEPTION_FILTERS.items():
        weighted = [l for l in model.layers if l.name.startswith(f"inception_{block}_")]
        assert sum(l.count_params() for l in weighted) == _inception_params(c_in, filters), block
        total += _inception_params(c_in, filters)
        c_in = filters[0] + filters[2] + filters[4] + filters[5]
    assert build_googlenet().count_params() == total == 5_973_552
    assert model.count_params() == total + (1024 + 1) * 1000 == 6_998_552
    assert not any("aux" in layer.name or layer.name.startswith("loss1") for layer in model.layers)


@pytest.mark.parametrize("name, size", [("alexnet", 227), ("googlenet", 224)])
def test_registry_cuts_at_the_attention_layer(name: str, size: int) -> None:
    backbone = build_backbone(name, size, weights=None)
    side, channels = (13, 256) if name == "alexnet" else (7, 1024)
    assert tuple(backbone.model.output.shape) == (None, side, side, channels)


@pytest.mark.slow
@pytest.mark.parametrize(
    "build, size, jit",
    [(build_alexnet, 67, True), (build_alexnet, 67, False), (build_googlenet, 64, False)],
)
def test_a_fit_step_trains_the_whole_network(build, size: int, jit: bool) -> None:
    """Two random images, one step. AlexNet's grouped convolutions also under XLA (jit)."""
    model = build((size, size, 3), include_top=True, classes=2)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy",
                  jit_compile=jit)
    first = next(layer for layer in model.layers if layer.weights)  # conv1: furthest from loss
    before = keras.ops.convert_to_numpy(first.kernel).copy()
    images = np.random.default_rng(2).uniform(-100, 150, (2, size, size, 3)).astype(np.float32)
    history = model.fit(images, np.array([0, 1]), epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = keras.ops.convert_to_numpy(first.kernel)
    assert not np.array_equal(before, after)


@pytest.mark.parametrize("name, size", [("alexnet", 67), ("googlenet", 64)])
def test_backbone_saves_and_loads_in_keras_format_safely(name: str, size: int, tmp_path) -> None:
    backbone = build_backbone(name, size, weights=None)
    path = tmp_path / f"{name}.keras"
    backbone.model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = np.random.default_rng(3).uniform(-100, 150, (1, size, size, 3)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images)),
                               keras.ops.convert_to_numpy(backbone.model(images)), rtol=1e-5)


# Runs under KERAS_BACKEND=jax: loads the TensorFlow side's weights by path, predicts on the
# same images, trains one step, and reports shapes; also whether TensorFlow was imported.
_JAX_SCRIPT = """
import json, sys
import keras
import numpy as np
from core.models.backbones import build_backbone
cases, folder = json.loads(sys.argv[1]), sys.argv[2]
report = {"backend": keras.backend.backend()}
for name, size in cases:
    backbone = build_backbone(name, size, weights=f"{folder}/{name}.weights.h5")
    images = np.load(f"{folder}/{name}_images.npy")
    np.save(f"{folder}/{name}_jax.npy", keras.ops.convert_to_numpy(backbone.model(images)))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone.model.output)
    head = keras.Model(backbone.model.input, keras.layers.Dense(2, activation="softmax")(pooled))
    head.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    loss = head.fit(images, np.array([0, 1]), epochs=1, verbose=0).history["loss"][0]
    report[name] = {"shape": list(backbone.model.output.shape[1:]), "loss": float(loss)}
report["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(report))
"""


@pytest.mark.slow
def test_jax_backend_gives_the_same_networks(tmp_path) -> None:
    cases = [("alexnet", 67), ("googlenet", 64), ("mobilenet_v2", 64)]
    expected = {}
    for name, size in cases:
        backbone = build_backbone(name, size, weights=None)
        backbone.model.save_weights(tmp_path / f"{name}.weights.h5")
        rng = np.random.default_rng(4)
        images = backbone.preprocess(rng.uniform(0, 255, (2, size, size, 3)))
        np.save(tmp_path / f"{name}_images.npy", np.asarray(images))
        expected[name] = keras.ops.convert_to_numpy(backbone.model(images))

    # Lower XLA optimisation only to cut JAX's per-shape compile time; results are the same.
    flags = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
               XLA_FLAGS=flags)
    result = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, json.dumps(cases), str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert report["tensorflow_imported"] is False
    for name, _ in cases:
        assert tuple(report[name]["shape"]) == expected[name].shape[1:], name
        assert np.isfinite(report[name]["loss"]), name
        features = np.load(tmp_path / f"{name}_jax.npy")
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(features, expected[name], rtol=1e-3, atol=1e-4 * scale)
