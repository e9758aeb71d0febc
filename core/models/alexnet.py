"""AlexNet (Krizhevsky, Sutskever and Hinton 2012) as Caffe's ``bvlc_alexnet`` lays it out.

Sharma and Mukherjee (2020) fine-tune MATLAB's ``alexnet``, which is the Caffe model imported
into MATLAB, so the layout, layer names and LRN constants follow ``bvlc_alexnet``'s
prototxt: a converted weights file can be loaded by layer name (``conv1`` ... ``fc8``).

Grouped convolutions (conv2, conv4, conv5 with two groups, the two-GPU split of the paper)
use ``Conv2D(groups=2)``. That keeps Caffe's parameter count (2,334,080 in the five conv
layers) and its channel split (group g reads input channels g*C/2..(g+1)*C/2 and writes
output channels g*F/2..(g+1)*F/2). It was checked to train (``model.fit``) on Keras 3.15 with
the TensorFlow 2.21 CPU backend with and without ``jit_compile``, and on JAX 0.10 under jit.

Keras has no Caffe ceil-mode pooling; at the published 227 px input every pooled map has an
odd size (55, 27, 13), where floor and ceil agree, so ``valid`` pooling gives Caffe's shapes.
A converted ``fc6`` kernel must be reordered from Caffe's (C, H, W) flattening to Keras's
(H, W, C); that is the converter's job, not this module's.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers

from core.models.layers import LocalResponseNormalization

#: Caffe's input size: the paper's figure says 224, but only 227 makes conv1 (11 x 11, stride 4)
#: give the published 55 x 55 map.
INPUT_SIZE = 227
#: Where an attention decoder reads the image: conv5 after its ReLU, 13 x 13 x 256 at 227.
FEATURE_LAYER = "conv5"


def build_alexnet(
    input_shape: tuple[int | None, int | None, int] = (INPUT_SIZE, INPUT_SIZE, 3),
    include_top: bool = False,
    classes: int = 1000,
    *,
    classifier_activation: str | None = "softmax",
    name: str = "alexnet",
) -> keras.Model:
    """Build AlexNet; without the top it ends at ``pool5`` (6 x 6 x 256 at 227 px).

    With ``include_top`` the flattened ``pool5`` feeds ``fc6`` and ``fc7`` (4096, ReLU,
    dropout 0.5) and ``fc8`` with ``classes`` outputs: the layer the paper replaces.
    """
    inputs = keras.Input(shape=input_shape, name="data")
    x = layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1")(inputs)
    x = LocalResponseNormalization(name="norm1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.Conv2D(256, 5, padding="same", groups=2, activation="relu", name="conv2")(x)
    x = LocalResponseNormalization(name="norm2")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(384, 3, padding="same", groups=2, activation="relu", name="conv4")(x)
    x = layers.Conv2D(256, 3, padding="same", groups=2, activation="relu", name="conv5")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc6")(x)
        x = layers.Dropout(0.5, name="drop6")(x)
        x = layers.Dense(4096, activation="relu", name="fc7")(x)
        x = layers.Dropout(0.5, name="drop7")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="fc8")(x)
    return keras.Model(inputs, x, name=name)


def preprocess_input(x: Any) -> Any:
    """Caffe-style input: RGB to BGR, minus the ImageNet channel means, no scaling.

    Both BVLC models were trained this way: ``bvlc_alexnet`` subtracted a mean image whose
    channel means are Keras's ``caffe`` values to within about one grey level, and
    ``bvlc_googlenet`` the per-channel means (104, 117, 123). Keras's function is used so that
    arrays and tensors on any backend get the same arithmetic. Takes float pixels in [0, 255];
    a NumPy array is copied first, because Keras edits NumPy input in place.
    """
    if isinstance(x, np.ndarray):
        x = x.astype(np.float32)
    return keras.applications.imagenet_utils.preprocess_input(x, mode="caffe")
