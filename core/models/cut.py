"""Cutting an encoder in two at a layer, sharing its layers (no copies).

Two users: Grad-CAM reads the activations of a chosen layer (``core.evaluate.heatmaps``),
and fine-tuning runs the frozen bottom of the encoder once per film and trains the top on
what it gave (``frozen_bottom``). Both need the pieces to be the encoder's own layers, so
that what is trained or read is the model that gets saved.
"""

from __future__ import annotations

from typing import Any

import keras

from core.errors import BadConfigError
from core.models.transfer import leaves

#: Layers that compute something else in training than in inference, whether or not they
#: have weights (frozen BatchNormalization runs in inference mode in Keras 3, so it is not
#: one of them).
_RANDOM_IN_TRAINING = (keras.layers.Dropout, keras.layers.GaussianNoise,
                       keras.layers.GaussianDropout, keras.layers.AlphaDropout)


def compose(pieces: list[Any], input_shape: tuple[int, ...], name: str) -> keras.Model:
    """One model applying Keras callables in turn (the single piece itself when it is one)."""
    if len(pieces) == 1 and isinstance(pieces[0], keras.Model):
        return pieces[0]
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    for piece in pieces:
        x = piece(x)
    return keras.Model(inputs, x, name=name)


def split_at(container: keras.Model, name: str) -> tuple[list[Any], list[Any]]:
    """Keras callables before and after layer ``name`` somewhere inside ``container``.

    Where the layer is one of the container's own, Keras cuts the graph at its output (and
    refuses when a skip connection goes around it). Where it is inside a nested model, the
    container must pass one tensor from layer to layer, as ``film_encoder`` does
    (``FilmToBackbone`` then the backbone): a model with one input and one output whose
    layers each take one tensor is a chain, since every layer lies on the one path to the
    output, so its layers can be applied in order.
    """
    layers = [lay for lay in container.layers if not isinstance(lay, keras.layers.InputLayer)]
    for layer in layers:
        if layer.name != name:
            continue
        if layer.output is container.outputs[0]:
            return [container], []
        inputs, outputs = _single(container.inputs), _single(container.outputs)
        try:
            front = keras.Model(inputs, layer.output)
            back = keras.Model(layer.output, outputs)
        except ValueError as error:
            raise BadConfigError(f"cannot cut {container.name!r} at {name!r}: another path "
                                 "(a skip connection) goes around it; choose a layer "
                                 "between blocks") from error
        return [front], [back]
    for index, child in enumerate(layers):
        if isinstance(child, keras.Model) and _contains(child, name):
            if not _is_chain(container, layers):
                raise BadConfigError(f"cannot reach {name!r}: {container.name!r} is not a "
                                     "chain of single-input layers")
            front, back = split_at(child, name)
            return [*layers[:index], *front], [*back, *layers[index + 1:]]
    raise BadConfigError(f"no layer {name!r} in the encoder")


def frozen_bottom(encoder: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """``(bottom, top)`` with ``top(bottom(x)) == encoder(x)``, cut as high as the graph
    allows below the first trainable layer, or None when no such cut exists.

    Fine-tuning the top ten layers of a 512 px MobileNetV2 spends nearly all its time and
    memory in the frozen layers below them, recomputing the same activations every epoch.
    With frozen BatchNorm (inference mode) and no dropout or noise down there (else None),
    the bottom is a fixed function of the film: running it once and training the top on its output is the same
    training, several times faster and without the full-resolution activations in memory.
    The cut lies between blocks, since a skip connection around it would need a second
    tensor.
    """
    own = [layer for layer in leaves(encoder) if not isinstance(layer, keras.layers.InputLayer)]
    first = next((i for i, layer in enumerate(own) if layer.trainable_weights), None)
    if not first:  # nothing to train, or everything from the first layer on
        return None
    if any(isinstance(layer, _RANDOM_IN_TRAINING) for layer in own[:first]):
        return None  # a bottom that draws noise while training is no fixed function
    for layer in reversed(own[:first]):
        try:
            front, back = split_at(encoder, layer.name)
        except BadConfigError:
            continue
        if not back:  # the cut is the encoder's output: no top
            return None
        bottom = compose(front, tuple(encoder.inputs[0].shape[1:]), f"{encoder.name}_bottom")
        top = compose(back, tuple(bottom.outputs[0].shape[1:]), f"{encoder.name}_top")
        if len(top.trainable_weights) != len(encoder.trainable_weights):
            return None
        return bottom, top
    return None


def _single(tensors: list[Any]) -> Any:
    """A lone tensor rather than a list of one: a model built on a list wants a list when
    called, and Keras warns at every call that gets a tensor."""
    return tensors[0] if len(tensors) == 1 else tensors


def _contains(model: keras.Model, name: str) -> bool:
    return any(lay.name == name or (isinstance(lay, keras.Model) and _contains(lay, name))
               for lay in model.layers)


def _is_chain(container: keras.Model, layers: list[Any]) -> bool:
    def single(layer: Any) -> bool:
        if isinstance(layer, keras.Model):
            return len(layer.inputs) == 1 and len(layer.outputs) == 1
        return isinstance(layer.input, keras.KerasTensor) and \
            isinstance(layer.output, keras.KerasTensor)

    return len(container.inputs) == 1 and len(container.outputs) == 1 and \
        all(single(layer) for layer in layers)
