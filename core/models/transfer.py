"""The second paper's classifier: a pretrained encoder with its last layer replaced.

MATLAB's transfer-learning recipe, which the paper follows, swaps the final fully connected
layer for a new one (named ``head`` here) and trains it with learn-rate factors (see
``optimizers`` and ``head_factors``) and a weight L2 factor. MATLAB's regularised loss is
``E + L2Regularization * L2Factor * (1/2) * sum(w^2)`` with ``L2Regularization`` = 1e-4 by
default, and biases are not regularised (``BiasL2Factor`` 0). Keras's ``L2(c)`` adds
``c * sum(w^2)``, so the head's kernel gets ``L2(l2_factor * base_l2 / 2)``: the same loss
and the same gradient as MATLAB. MATLAB also applies the global 1e-4 to the pretrained
layers; here the encoder is not regularised (a frozen encoder makes that moot, a fine-tuned
one differs from MATLAB in this respect).

As for attention, the head exists on its own for cached features (``build_transfer_head``)
and the image model is the encoder followed by that same head.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from core.errors import BadConfigError

#: MATLAB's default ``L2Regularization`` (trainingOptions), multiplied by the L2 factor.
MATLAB_L2 = 1e-4


def build_transfer_head(feature_shape: Sequence[int], n_classes: int, dropout: float = 0.0,
                        l2_factor: float = 1.0, base_l2: float = MATLAB_L2,
                        head_name: str = "head", name: str = "transfer_head") -> keras.Model:
    """Features -> global average pooling -> (dropout) -> softmax Dense ``head_name``.

    ``feature_shape`` is a feature map (H', W', D), pooled here, or already pooled (D,), the
    cheapest thing to cache for a frozen encoder.
    """
    feature_shape = tuple(int(d) for d in feature_shape)
    if len(feature_shape) not in (1, 3):
        raise BadConfigError(f"feature_shape must be (H', W', D) or (D,), got {feature_shape}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise BadConfigError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    dropout, l2_factor, base_l2 = float(dropout), float(l2_factor), float(base_l2)
    if not 0.0 <= dropout < 1.0:
        raise BadConfigError(f"dropout must be in [0, 1), got {dropout}")
    if not (np.isfinite(l2_factor) and np.isfinite(base_l2)) or l2_factor < 0 or base_l2 < 0:
        raise BadConfigError(f"l2_factor and base_l2 must be finite and >= 0, got "
                             f"{l2_factor} and {base_l2}")
    features = keras.Input(shape=feature_shape, name="features")
    x = features
    if len(feature_shape) == 3:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    coefficient = l2_factor * base_l2 / 2.0
    regularizer = keras.regularizers.L2(coefficient) if coefficient > 0 else None
    probs = keras.layers.Dense(int(n_classes), activation="softmax", kernel_regularizer=regularizer,
                               name=head_name, dtype="float32")(x)  # float32 whatever the policy
    return keras.Model(features, probs, name=name)


def head_factors(weight_factor: float, bias_factor: float, head_name: str = "head"
                 ) -> dict[str, float]:
    """MATLAB's ``WeightLearnRateFactor`` / ``BiasLearnRateFactor`` on the new layer, in the
    form ``optimizers.make_optimizer(factors=...)`` takes (e.g. the paper's AL3: 15, 20)."""
    prefix = re.escape(head_name)
    return {f"{prefix}/kernel": float(weight_factor), f"{prefix}/bias": float(bias_factor)}


def leaves(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """The model's layers in order, nested models walked through (their own layers count,
    not the containers: trainability and cuts are decided layer by layer)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaves(layer)
        else:
            yield layer


def unfreeze_top(encoder: keras.Model, n_layers: int | None = None,
                 from_layer: str | None = None) -> list[str]:
    """Make only the top of ``encoder`` trainable, for a second, slower fine-tuning phase.

    Give either ``n_layers`` (the last n layers that have weights, BatchNorm not counted;
    0 freezes the whole encoder) or ``from_layer`` (the name of the first layer to train;
    everything above it trains too). Nested models are walked through. Returns the names
    made trainable. Recompile the model afterwards, with a new optimizer: Keras fixes the
    trainable variables at compile time, and an optimizer is built for one variable list.

    BatchNormalization layers stay frozen, which in Keras 3 also runs them in inference
    mode: their moving statistics were estimated on ImageNet's millions of images, and
    re-estimating them from small batches of mammograms would shift every activation the
    pretrained layers above them expect, undoing what fine-tuning is meant to keep.
    """
    if (n_layers is None) == (from_layer is None):
        raise BadConfigError("give exactly one of n_layers and from_layer")
    all_leaves = list(leaves(encoder))
    weighted = [layer for layer in all_leaves if layer.weights
                and not isinstance(layer, keras.layers.BatchNormalization)]
    if from_layer is not None:
        names = [layer.name for layer in all_leaves]
        if from_layer not in names:
            raise BadConfigError(f"encoder {encoder.name!r} has no layer {from_layer!r}")
        above = {id(layer) for layer in all_leaves[names.index(from_layer):]}
        chosen = [layer for layer in weighted if id(layer) in above]
    else:
        if isinstance(n_layers, bool) or not isinstance(n_layers, (int, np.integer)) \
                or not 0 <= n_layers <= len(weighted):
            raise BadConfigError(f"n_layers must be an integer from 0 to {len(weighted)} "
                                 f"(the encoder's layers with weights), got {n_layers!r}")
        chosen = weighted[len(weighted) - int(n_layers):]
    encoder.trainable = True  # containers must be trainable for their leaves to count
    for layer in all_leaves:
        layer.trainable = False
    for layer in chosen:
        layer.trainable = True
    return [layer.name for layer in chosen]
