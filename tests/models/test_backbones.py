"""The backbone registry: shapes and strides per network, preprocessing, and offline weights.

Every network is built with random weights at a small input (64 px, or the smallest it
accepts), so the whole file stays well under a minute on two cores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from core.errors import BadConfigError
from core.models.backbones import (
    BACKBONES,
    build_backbone,
    imagenet_weights_file,
    keras_cache_dir,
    list_backbones,
    measure_stride,
)

V2_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
V1_025_FILE = "mobilenet_2_5_224_tf_no_top.h5"
V1_025_TOP_FILE = "mobilenet_2_5_224_tf.h5"

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])
TORCH_MEAN = np.array([0.485, 0.456, 0.406])
TORCH_STD = np.array([0.229, 0.224, 0.225])

# name: (input px, feature map side, channels, stride, preprocessing family). The map sides
# follow from each network's padding: "same" nets give ceil(size / stride); InceptionV3
# (valid convolutions) gives 1 at 75 px; AlexNet conv5 gives 3 at 67 px (67 -> 15 -> 7 -> 3).
EXPECTED = {
    "vgg16": (64, 4, 512, 16, "caffe"),
    "vgg19": (64, 4, 512, 16, "caffe"),
    "resnet50": (64, 2, 2048, 32, "caffe"),
    "inception_v3": (75, 1, 2048, 32, "tf"),
    "densenet121": (64, 2, 1024, 32, "torch"),
    "mobilenet": (64, 2, 1024, 32, "tf"),
    "mobilenet_025": (64, 2, 256, 32, "tf"),
    "mobilenet_v2": (64, 4, 576, 16, "tf"),
    "efficientnet_b0": (64, 2, 1280, 32, "identity"),
    "alexnet": (67, 3, 256, 16, "caffe"),
    "googlenet": (64, 2, 1024, 32, "caffe"),
    "efficientnet_lite0": (64, 4, 672, 16, "tf"),
    "efficientnet_lite2": (64, 4, 720, 16, "tf"),
}


def _expected_pixels(family: str, value: float) -> np.ndarray:
    """What a pixel of ``value`` in all three RGB channels becomes, channel by channel."""
    rgb = np.full(3, value)
    if family == "caffe":
        return rgb[::-1] - CAFFE_MEAN_BGR
    if family == "tf":
        return rgb / 127.5 - 1.0
    if family == "torch":
        return (rgb / 255.0 - TORCH_MEAN) / TORCH_STD
    return rgb


def test_registry_names() -> None:
    assert list_backbones() == list(EXPECTED)
    assert set(BACKBONES) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_feature_map_stride_channels_and_preprocess(name: str) -> None:
    size, side, channels, stride, family = EXPECTED[name]
    backbone = build_backbone(name, size, weights=None)

    assert backbone.name == name
    assert backbone.weights == "none"
    assert tuple(backbone.model.input.shape) == (None, size, size, 3)
    assert tuple(backbone.model.output.shape) == (None, side, side, channels)
    assert backbone.stride == stride
    assert backbone.channels == channels

    black, white = np.zeros((size, size, 3)), np.full((size, size, 3), 255.0)
    pixels = np.stack([black, white]).astype(np.float32)
    original = pixels.copy()
    prepared = np.asarray(backbone.preprocess(pixels))
    np.testing.assert_array_equal(pixels, original)  # Keras edits NumPy input in place
    np.testing.assert_allclose(prepared[0, 0, 0], _expected_pixels(family, 0.0), atol=1e-4)
    np.testing.assert_allclose(prepared[1, 0, 0], _expected_pixels(family, 255.0), atol=1e-4)

    features = keras.ops.convert_to_numpy(backbone.model(prepared, training=False))
    assert features.shape == (2, side, side, channels)
    assert np.isfinite(features).all()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_registered_stride_is_the_measured_one(name: str) -> None:
    assert measure_stride(name) == EXPECTED[name][3]


def test_other_feature_layer_gets_its_own_stride() -> None:
    backbone = build_backbone("vgg16", 64, weights=None, feature_layer="block4_conv3")
    assert backbone.stride == 8
    assert tuple(backbone.model.output.shape) == (None, 8, 8, 512)


@pytest.mark.parametrize(
    "args, fault",
    [
        (("resnet18",), "unknown backbone 'resnet18'"),
        (("vgg16", 16, None), "at least 32 px"),
        (("inception_v3", 64, None), "at least 75 px"),
        (("vgg16", 64, None, "fc1"), "'fc1' is not a layer of vgg16"),
        (("vgg16", 64, None, "block5_pool"), None),
    ],
)
def test_bad_requests_are_one_line_config_errors(args: tuple, fault: str | None) -> None:
    if fault is None:  # a legal layer: the pooled map, stride 32
        assert build_backbone(*args).stride == 32
        return
    with pytest.raises(BadConfigError, match=fault) as caught:
        build_backbone(*args)
    assert "\n" not in str(caught.value)


def test_alpha_only_for_the_mobilenet_family() -> None:
    with pytest.raises(BadConfigError, match="no alpha"):
        build_backbone("vgg16", 64, weights=None, alpha=0.5)
    assert build_backbone("mobilenet", 64, weights=None, alpha=0.5).channels == 512


class _Asked(Exception):
    """Raised by the fake download so a test sees which file Keras asks for, and nothing else."""


@pytest.mark.parametrize(
    "name, size",
    [
        ("vgg16", 64), ("vgg19", 64), ("resnet50", 64), ("inception_v3", 75),
        ("densenet121", 64), ("efficientnet_b0", 64),
        ("mobilenet", 128), ("mobilenet", 64), ("mobilenet_025", 224),
        ("mobilenet_v2", 96), ("mobilenet_v2", 100), ("mobilenet_v2", 224),
    ],
)
def test_file_names_are_the_ones_keras_asks_for(
    name: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_get_file(fname: str, *args: object, **kwargs: object) -> str:
        raise _Asked(fname)

    # keras.applications look get_file up on this module at call time.
    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", fake_get_file)
    spec = BACKBONES[name]
    with pytest.raises(_Asked) as asked:
        spec.build(input_shape=(size, size, 3), include_top=False, weights="imagenet",
                   **spec.options)
    assert str(asked.value) == imagenet_weights_file(name, size)


def test_widths_without_keras_imagenet_weights_are_refused() -> None:
    with pytest.raises(BadConfigError, match="alpha in"):
        imagenet_weights_file("mobilenet", 224, alpha=0.3)
    with pytest.raises(BadConfigError, match="alpha in"):
        imagenet_weights_file("mobilenet_v2", 224, alpha=0.25)


def test_alexnet_and_googlenet_have_no_keras_imagenet_weights() -> None:
    for name in ("alexnet", "googlenet"):
        with pytest.raises(BadConfigError, match=f"{name} has no Keras ImageNet weights.*path"):
            build_backbone(name, 224, weights="imagenet")


def test_cache_dir_follows_keras_home_at_call_time(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_cache_dir() == tmp_path / "models"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "missing"))  # not writable: Keras's /tmp
    assert keras_cache_dir() == Path("/tmp/.keras/models")


def _no_download(*args: object, **kwargs: object) -> str:
    raise AssertionError("Keras was asked to download")


@pytest.mark.parametrize("opt_in", [None, "0"])
def test_missing_imagenet_file_is_one_line_naming_file_and_folder(
    tmp_path, monkeypatch, opt_in: str | None
) -> None:
    """Offline by default: no download is attempted, and the line names the opt-in."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", _no_download)
    if opt_in is None:
        monkeypatch.delenv("MAMMO_DOWNLOAD_WEIGHTS", raising=False)
    else:
        monkeypatch.setenv("MAMMO_DOWNLOAD_WEIGHTS", opt_in)
    for name, file_name in (("mobilenet_v2", V2_FILE),
                            ("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")):
        with pytest.raises(BadConfigError) as caught:
            build_backbone(name, 224, weights="imagenet")
        message = str(caught.value)
        assert "\n" not in message
        assert f"place {file_name} in {tmp_path / 'models'}/" in message
        assert "not downloaded unless MAMMO_DOWNLOAD_WEIGHTS=1" in message


def test_the_download_opt_in_hands_a_missing_file_to_keras(
    weights_root, tmp_path, monkeypatch
) -> None:
    """With ``MAMMO_DOWNLOAD_WEIGHTS=1`` Keras's own loader fetches the file (here a fake
    ``get_file`` that hands it the shared one: no network) and its weights are used."""
    asked: list[str] = []

    def fake_get_file(fname: str, *args: object, **kwargs: object) -> str:
        asked.append(fname)
        return str(weights_root / V2_FILE)

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setenv("MAMMO_DOWNLOAD_WEIGHTS", "1")
    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", fake_get_file)
    backbone = build_backbone("mobilenet_v2", 224, weights="imagenet")
    assert asked == [V2_FILE] and backbone.weights == "imagenet"
    kernel = keras.ops.convert_to_numpy(backbone.model.get_layer("Conv1").kernel)
    np.testing.assert_array_equal(kernel, _stored(weights_root / V2_FILE, "Conv1"))
    assert backbone.model.layers[-1].name == "block_13_expand_relu"


class _FetchFailure(Exception):
    """Keras's ``get_file`` raises a bare ``Exception`` when a download fails."""


def test_a_failed_download_is_one_line(tmp_path, monkeypatch) -> None:
    def offline(fname: str, *args: object, **kwargs: object) -> str:
        raise _FetchFailure(f"URL fetch failure on https://example/{fname}: None -- no network")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("MAMMO_DOWNLOAD_WEIGHTS", "1")
    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    with pytest.raises(BadConfigError) as caught:
        build_backbone("mobilenet_v2", 224, weights="imagenet")
    message = str(caught.value)
    assert message.startswith("ImageNet weights for mobilenet_v2: Keras's download failed "
                              "(URL fetch failure") and "\n" not in message
    assert f"place {V2_FILE} in {tmp_path / 'models'}/" in message


def test_a_malformed_download_switch_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("MAMMO_DOWNLOAD_WEIGHTS", "yes")
    with pytest.raises(BadConfigError, match="MAMMO_DOWNLOAD_WEIGHTS must be 1 .* got 'yes'"):
        build_backbone("mobilenet_v2", 224, weights="imagenet")


def _stored(path, layer: str) -> np.ndarray:
    with h5py.File(path, "r") as file:
        return file[layer][f"{layer}/kernel"][()]


def test_imagenet_weights_load_from_the_keras_cache(weights_root, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    shutil.copy(weights_root / V2_FILE, tmp_path / "models" / V2_FILE)

    loaded = build_backbone("mobilenet_v2", 224, weights="imagenet")
    assert loaded.weights == "imagenet"
    kernel = keras.ops.convert_to_numpy(loaded.model.get_layer("Conv1").kernel)
    np.testing.assert_array_equal(kernel, _stored(weights_root / V2_FILE, "Conv1"))

    random = build_backbone("mobilenet_v2", 224, weights=None).model.get_layer("Conv1").kernel
    assert not np.allclose(kernel, keras.ops.convert_to_numpy(random))

    # Keras maps 96 px to a file trained at 96, which is not there: refused, not substituted.
    with pytest.raises(BadConfigError, match="1.0_96_no_top.h5"):
        build_backbone("mobilenet_v2", 96, weights="imagenet")


@pytest.mark.parametrize("file_name", [V1_025_FILE, V1_025_TOP_FILE])
def test_weights_by_path_for_mobilenet_025(weights_root, file_name: str) -> None:
    path = weights_root / file_name
    backbone = build_backbone("mobilenet_025", 96, weights=path)
    assert backbone.weights == str(path)
    kernel = keras.ops.convert_to_numpy(backbone.model.get_layer("conv_pw_13").kernel)
    np.testing.assert_array_equal(kernel, _stored(path, "conv_pw_13"))


def test_weights_by_path_for_mobilenet_v2_at_a_size_keras_maps_elsewhere(weights_root) -> None:
    backbone = build_backbone("mobilenet_v2", 96, weights=weights_root / V2_FILE)
    kernel = keras.ops.convert_to_numpy(backbone.model.get_layer("Conv1").kernel)
    np.testing.assert_array_equal(kernel, _stored(weights_root / V2_FILE, "Conv1"))


@pytest.mark.parametrize(
    "name, file_name, fault",
    [
        ("mobilenet", V1_025_FILE, "does not fit mobilenet: Shape mismatch"),
        ("mobilenet_025", V2_FILE, "no weights for 54 of the 54 weighted layers"),
        ("mobilenet_025", "README.md", "must be a .h5"),
        ("mobilenet_025", "absent.h5", "weights file not found"),
    ],
)
def test_a_weights_file_that_does_not_fit_is_named(
    weights_root, name: str, file_name: str, fault: str
) -> None:
    with pytest.raises(BadConfigError, match=fault) as caught:
        build_backbone(name, 64, weights=weights_root / file_name)
    message = str(caught.value)
    assert message.startswith(str(weights_root / file_name))
    assert "\n" not in message


def test_imagenet_efficientnet_is_the_network_keras_builds_for_imagenet(
    tmp_path, monkeypatch
) -> None:
    """Keras builds EfficientNet differently for ImageNet weights; ours must match it.

    No genuine EfficientNet file is available offline, so a stand-in with the real ImageNet
    normalisation statistics is written in Keras's format, handed to Keras's own
    ``weights="imagenet"`` build, and put in the cache for ours.
    """
    from keras.src.legacy.saving import legacy_h5_format

    size = 64
    donor = keras.applications.EfficientNetB0(include_top=False, weights=None,
                                              input_shape=(size, size, 3))
    norm = next(lay for lay in donor.layers if isinstance(lay, keras.layers.Normalization))
    norm.adapt_mean.assign(TORCH_MEAN.astype(np.float32))
    norm.adapt_variance.assign(np.square(TORCH_STD).astype(np.float32))
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / imagenet_weights_file("efficientnet_b0", size)
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, donor)

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", lambda *a, **k: str(path))
    reference = keras.applications.EfficientNetB0(include_top=False, weights="imagenet",
                                                  input_shape=(size, size, 3))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    ours = build_backbone("efficientnet_b0", size, weights="imagenet")

    images = ours.preprocess(np.random.default_rng(5).uniform(0, 255, (2, size, size, 3)))
    expected = keras.ops.convert_to_numpy(reference(images))
    got = keras.ops.convert_to_numpy(ours.model(images))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
