"""Both breasts read together: a film and the other breast of the same view in one model.

How a pair travels, everywhere (one convention, here): stacked on the last axis, the film's
channels first and the other breast's after them: ``(S, S, 2)`` for grey films, ``(h, w,
2c)`` for activations and features (``stack_pair``). Preprocessing already turns every
film's chest wall to the same side (``PrepConfig.orient``), so the two breasts are mirror
images of each other's layout and a location on one grid faces the same location on the
other.

The model: one encoder, shared, runs over each film (``SplitPair`` takes them apart), and
the decoder reads ``[F, F - F']`` on the film's own grid: its features beside their
difference from the other breast's at the same place, so symmetric tissue cancels in the
second half and an asymmetry, a mass or a calcification cluster on one side only stands out
(``PairFusion``). The attention, and so the heatmap and the lesion supervision, stays on the
film's own grid: the other breast is a reference, never the answer.

The head trained on cached features, the fine-tuned top on cached activations and the film
model are the same pair head behind ``pair_model``, so weights trained in one phase are the
weights of the next, as for a single film (``attention.attach_encoder``).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from core.errors import BadConfigError


def stack_pair(own: np.ndarray, other: np.ndarray, films: bool) -> np.ndarray:
    """A film's input and its other breast's as one: the film's channels first. ``films``:
    grey films without a channel axis (``(..., S, S)``), which get one each; otherwise
    features or activations ``(..., h, w, c)``, joined on their channels."""
    own, other = np.asarray(own), np.asarray(other)
    if own.shape != other.shape:
        raise BadConfigError(f"a film of shape {own.shape} cannot be paired with one of "
                             f"shape {other.shape}")
    return np.stack([own, other], axis=-1) if films else np.concatenate([own, other], axis=-1)


@keras.saving.register_keras_serializable(package="mammo")
class SplitPair(keras.layers.Layer):
    """``stack_pair``'s input taken apart: (film, other breast), each half the channels."""

    def call(self, pair: Any) -> tuple[Any, Any]:
        half = pair.shape[-1] // 2
        return pair[..., :half], pair[..., half:]

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, Any]:
        half = tuple(input_shape[:-1]) + (input_shape[-1] // 2,)
        return half, half

    def build(self, input_shape: Any) -> None:
        if input_shape[-1] is None or input_shape[-1] % 2:
            raise BadConfigError("a pair input needs an even, known channel count (a film's "
                                 f"then its other breast's), got {tuple(input_shape)}")


@keras.saving.register_keras_serializable(package="mammo")
class PairFusion(keras.layers.Layer):
    """The film's features and the other breast's -> ``[F, F - F']`` on the film's grid."""

    def call(self, own: Any, other: Any) -> Any:
        return ops.concatenate([own, own - other], axis=-1)

    def compute_output_shape(self, own_shape: Any, other_shape: Any) -> Any:
        return tuple(own_shape[:-1]) + (2 * own_shape[-1],)


def pair_model(inner: keras.Model | None, head: keras.Model, name: str) -> keras.Model:
    """A pair input -> ``inner`` on each half (shared) -> ``PairFusion`` -> ``head``,
    keeping the head's outputs and their names.

    ``inner`` is the film encoder for the film model, the encoder's top for fine-tuning on
    cached activations, and None for the head's own training on cached features (the halves
    are features already). The head reads the fused map, ``fused_shape`` of the features.
    """
    if inner is None:  # the stacked features have the fused map's shape
        pair_shape = tuple(head.inputs[0].shape[1:])
    else:
        single = tuple(inner.inputs[0].shape[1:])
        pair_shape = single[:-1] + (2 * single[-1],)
    pair = keras.Input(shape=pair_shape, name="pair")
    own, other = SplitPair(name="split_pair")(pair)
    if inner is not None:
        own, other = inner(own), inner(other)
    return keras.Model(pair, head(PairFusion(name="pair_fusion")(own, other)), name=name)


def head_of(trainer: keras.Model) -> keras.Model:
    """The head inside ``pair_model(None, head)`` (a checkpoint of the head's phase)."""
    nested = [layer for layer in trainer.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise BadConfigError(f"{trainer.name}: not a pair head (it holds {len(nested)} models)")
    return nested[0]


def fused_shape(feature_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The map the pair head reads, for an encoder's feature map ``(h, w, D)``."""
    return tuple(feature_shape[:-1]) + (2 * int(feature_shape[-1]),)


def reads_pairs(model: keras.Model) -> bool:
    """Whether a film model takes pairs (``(S, S, 2)``) rather than films (``(S, S, 1)``)."""
    return int(model.inputs[0].shape[-1]) == 2


def pair_parts(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """The shared encoder and the head of a film model ``pair_model`` built; one
    ``BadConfigError`` for any other model (a foreign file in a run reading pairs)."""
    parts = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if (len(model.inputs) != 1 or len(parts) != 4 or not isinstance(parts[0], SplitPair)
            or not isinstance(parts[2], PairFusion)
            or not all(isinstance(part, keras.Model) for part in (parts[1], parts[3]))):
        raise BadConfigError(f"model {model.name!r} is not a pair -> encoder (shared) -> "
                             "fusion -> head as pair_model builds it")
    return parts[1], parts[3]
