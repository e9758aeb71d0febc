"""GoogLeNet (Inception v1; Szegedy et al. 2014) as Caffe's ``bvlc_googlenet`` lays it out.

Filter counts are the paper's table 1; names are Caffe's with ``/`` written as ``_`` (Keras
forbids ``/`` in layer names), so a converted weights file loads by layer name. Every
convolution has its ReLU fused in, as in the prototxt's in-place ReLUs.

The two auxiliary classifiers (after 4a and 4d) are left out: the paper uses them only as a
training-time regulariser and discards them at inference, and Sharma and Mukherjee (2020)
replace only the final classifier. Without them the network has 6,998,552 parameters with a
1000-way classifier (5,973,552 without it), counted
by ``build_googlenet(include_top=True).count_params()``.

Padding: ``conv1`` pads 3 on every side as Caffe does (Keras's ``same`` would pad 2 before
and 3 after at 224 px). The stride-2 max pools use Keras ``same`` padding, which equals
Caffe's ceil-mode pooling whenever the map has an even size, as every pooled map does at
224 px (112, 56, 28, 14).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from core.models.alexnet import preprocess_input
from core.models.layers import LocalResponseNormalization

__all__ = [
    "FEATURE_LAYER", "INCEPTION_FILTERS", "INPUT_SIZE", "build_googlenet", "preprocess_input",
]

INPUT_SIZE = 224
#: Where an attention decoder reads the image: 7 x 7 x 1024 at 224 px.
FEATURE_LAYER = "inception_5b_output"

#: Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_FILTERS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _conv(x: Any, filters: int, size: int, name: str) -> Any:
    return layers.Conv2D(filters, size, padding="same", activation="relu", name=name)(x)


def _inception(x: Any, block: str) -> Any:
    n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj = INCEPTION_FILTERS[block]
    prefix = f"inception_{block}"
    branch1 = _conv(x, n1x1, 1, f"{prefix}_1x1")
    branch3 = _conv(x, n3x3_reduce, 1, f"{prefix}_3x3_reduce")
    branch3 = _conv(branch3, n3x3, 3, f"{prefix}_3x3")
    branch5 = _conv(x, n5x5_reduce, 1, f"{prefix}_5x5_reduce")
    branch5 = _conv(branch5, n5x5, 5, f"{prefix}_5x5")
    pool = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{prefix}_pool")(x)
    pool = _conv(pool, pool_proj, 1, f"{prefix}_pool_proj")
    return layers.Concatenate(name=f"{prefix}_output")([branch1, branch3, branch5, pool])


def _max_pool(x: Any, name: str) -> Any:
    return layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)


def build_googlenet(
    input_shape: tuple[int | None, int | None, int] = (INPUT_SIZE, INPUT_SIZE, 3),
    include_top: bool = False,
    classes: int = 1000,
    *,
    classifier_activation: str | None = "softmax",
    name: str = "googlenet",
) -> keras.Model:
    """Build GoogLeNet; without the top it ends at ``inception_5b_output``.

    With ``include_top``: global average pooling (Caffe's 7 x 7 ``pool5`` at 224 px),
    dropout 0.4 and ``loss3_classifier`` with ``classes`` outputs, the layer the paper
    replaces.
    """
    inputs = keras.Input(shape=input_shape, name="data")
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = layers.Conv2D(64, 7, strides=2, activation="relu", name="conv1_7x7_s2")(x)
    x = _max_pool(x, "pool1_3x3_s2")
    x = LocalResponseNormalization(name="pool1_norm1")(x)
    x = _conv(x, 64, 1, "conv2_3x3_reduce")
    x = _conv(x, 192, 3, "conv2_3x3")
    x = LocalResponseNormalization(name="conv2_norm2")(x)
    x = _max_pool(x, "pool2_3x3_s2")
    x = _inception(x, "3a")
    x = _inception(x, "3b")
    x = _max_pool(x, "pool3_3x3_s2")
    for block in ("4a", "4b", "4c", "4d", "4e"):
        x = _inception(x, block)
    x = _max_pool(x, "pool4_3x3_s2")
    x = _inception(x, "5a")
    x = _inception(x, "5b")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="pool5_7x7_s1")(x)
        x = layers.Dropout(0.4, name="pool5_drop_7x7_s1")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="loss3_classifier")(x)
    return keras.Model(inputs, x, name=name)
