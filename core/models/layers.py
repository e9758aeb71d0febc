"""Layers that Keras does not ship but the 2012-2014 networks need.

AlexNet and GoogLeNet normalise their early feature maps with local response normalisation
(LRN). Keras has no LRN layer, and ``tf.nn.local_response_normalization`` is TensorFlow-only
and uses another convention (``alpha`` not divided by the window), so weights converted from
Caffe or MATLAB would see different activations. This one is written in ``keras.ops`` only,
so it runs unchanged on the TensorFlow and JAX backends, and saves in the ``.keras`` format.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mammo")
class LocalResponseNormalization(keras.layers.Layer):
    """Caffe's ``LRN`` (``ACROSS_CHANNELS``) on channels-last maps.

    ``b[c] = a[c] / (k + alpha / size * sum(a[c'] ** 2 for c' within size // 2 of c)) ** beta``,
    with channels beyond either end counted as zero. Caffe and MATLAB's
    ``crossChannelNormalizationLayer`` both divide ``alpha`` by ``size``; the defaults are
    the values in Caffe's ``bvlc_alexnet`` and ``bvlc_googlenet`` prototxts (size 5,
    alpha 1e-4, beta 0.75, k 1). Krizhevsky et al. (2012) wrote k = 2 with an undivided
    alpha; the Caffe values are kept because converted ImageNet weights were trained with them.
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd number, got {size}")
        self.size = int(size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def call(self, inputs: Any) -> Any:
        channels = inputs.shape[-1]
        half = self.size // 2
        squares = ops.square(inputs)
        # Zero-pad the channel axis, then add the ``size`` shifted copies: the window sum.
        padding = [[0, 0]] * (len(inputs.shape) - 1) + [[half, half]]
        padded = ops.pad(squares, padding)
        window = padded[..., 0:channels]
        for offset in range(1, self.size):
            window = window + padded[..., offset : offset + channels]
        scale = self.k + (self.alpha / self.size) * window
        return inputs / ops.power(scale, self.beta)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(size=self.size, alpha=self.alpha, beta=self.beta, k=self.k)
        return config
