"""The two model families behind one interface: what training, evaluation, prediction and
heatmaps need to know about a model kind, answered in one place per kind.

Why: before this module, "is it the attention model?" was asked by string comparisons on
the config in training and by sniffing a model's outputs (``isinstance(output, dict)``,
``"attention" in output``) in evaluation, prediction and heatmaps, and "outputs ->
probabilities and maps" was written three times. A new model family is now one subclass
registered in ``MODEL_KINDS``; nothing else branches on the family.

A kind reads its settings from any object with the config's field names (``HeadSettings``):
``core.runs.config.TrainConfig`` is one, but this layer sits below the runs layer and never
imports it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import keras
import numpy as np

from core.errors import BadConfigError
from core.models.attention import (
    attention_maps,
    build_attention_head,
    compile_attention_model,
    lesion_target,
)
from core.models.optimizers import make_optimizer
from core.models.transfer import build_transfer_head, head_factors

#: How a kind's heatmap is made, as evaluation records it.
OWN_ATTENTION = "attention"
GRAD_CAM = "grad_cam"


class HeadSettings(Protocol):
    """The config fields a model kind reads (``TrainConfig`` has them all)."""

    model: str
    cell: str
    steps: int
    units: int
    attention_units: int
    dropout: float
    l2_factor: float
    optimizer: str
    momentum: float
    weight_lr_factor: float
    bias_lr_factor: float
    class_loss: str
    attention_supervision: float
    attention_regularization: float
    image_size: int


class ModelKind(ABC):
    """One model family: its head, its compilation, its training targets, and how its
    outputs read as class probabilities and (where it has them) its own heatmaps."""

    #: The config's ``model`` value, and the word a run's name and manifest carry.
    name: str
    #: How its heatmaps are made: its own attention, or Grad-CAM for a model without one.
    heatmap: str

    @abstractmethod
    def build_head(self, settings: HeadSettings, feature_shape: Sequence[int],
                   n_classes: int) -> keras.Model:
        """The trainable part on the encoder's features ``(H', W', D)``."""

    @abstractmethod
    def compile(self, model: keras.Model, settings: HeadSettings, learning_rate: float) -> None:
        """Compile ``model`` (the head, or encoder + head) with the settings' loss and
        optimizer at ``learning_rate``."""

    @abstractmethod
    def targets(self, settings: HeadSettings, labels: np.ndarray,
                lesions: Sequence[np.ndarray], n_classes: int,
                grid: tuple[int, int]) -> Any:
        """What ``fit`` is given for films of these ``labels`` and ``lesions`` (rows of
        ``(row, col, radius)`` on the model-input grid), for a feature grid ``grid``."""

    @abstractmethod
    def probabilities(self, output: Any) -> np.ndarray:
        """Class probabilities ``(B, C)`` from one call of the model."""

    def grid_maps(self, output: Any) -> np.ndarray | None:
        """The model's own heatmaps ``(B, H', W')`` from the same call, or None where it has
        none (Grad-CAM then makes them: ``core.evaluate.heatmaps.scores_and_maps``)."""
        return None

    def run_label(self, settings: HeadSettings) -> str:
        """The model part of a run's folder name."""
        return self.name

    def check_outputs(self, outputs: Mapping[str, Any], n_classes: int, source: str) -> None:
        """Refuse a loaded model whose outputs are not this kind's for ``n_classes``
        classes: a swapped or foreign model file must not be scored as this run's."""
        scores = outputs.get("class")
        if not hasattr(scores, "shape") or len(scores.shape) != 2:
            raise BadConfigError(f"{source}: the model has no class output (outputs: "
                                 f"{', '.join(map(str, outputs))})")
        if scores.shape[-1] != n_classes:
            raise BadConfigError(f"{source}: the model has {scores.shape[-1]} classes, the "
                                 f"manifest {n_classes}")


def named_outputs(model: keras.Model) -> dict[str, Any]:
    """A model's outputs by name: a one-output model's output is called ``"class"``. A loaded
    ``Sequential`` model defines ``outputs`` but not ``output`` (Keras raises
    ``AttributeError`` for it), so that list stands in; a model with neither still raises."""
    try:
        output = model.output
    except AttributeError:
        outputs = list(model.outputs)
        output = outputs[0] if len(outputs) == 1 else outputs
    return dict(output) if isinstance(output, Mapping) else {"class": output}


class AttentionKind(ModelKind):
    """The first paper's method: an RNN decoder attending over the feature map; its
    attention over the grid, averaged over its glimpses, is its heatmap."""

    name = "attention"
    heatmap = OWN_ATTENTION

    def build_head(self, settings: HeadSettings, feature_shape: Sequence[int],
                   n_classes: int) -> keras.Model:
        return build_attention_head(feature_shape, n_classes, steps=settings.steps,
                                    cell=settings.cell, units=settings.units,
                                    attention_units=settings.attention_units,
                                    dropout=settings.dropout)

    def compile(self, model: keras.Model, settings: HeadSettings, learning_rate: float) -> None:
        optimizer = make_optimizer(settings.optimizer, learning_rate, momentum=settings.momentum)
        compile_attention_model(model, optimizer, class_loss=settings.class_loss,
                                supervision=settings.attention_supervision,
                                regularization=settings.attention_regularization,
                                jit_compile=False)

    def targets(self, settings: HeadSettings, labels: np.ndarray,
                lesions: Sequence[np.ndarray], n_classes: int,
                grid: tuple[int, int]) -> dict[str, np.ndarray]:
        size = (settings.image_size, settings.image_size)
        attention = np.zeros((len(lesions), *grid), np.float32)
        for i, rows in enumerate(lesions):
            if len(rows):
                attention[i] = lesion_target(rows[:, :2], rows[:, 2], size, grid)
        return {"class": _one_hot(labels, n_classes), "attention": attention}

    def probabilities(self, output: Any) -> np.ndarray:
        return np.asarray(output["class"], dtype=np.float64)

    def grid_maps(self, output: Any) -> np.ndarray:
        alpha = np.asarray(output["attention"])
        side = _square_side(alpha.shape[-1])
        return attention_maps(alpha, (side, side)).mean(axis=1)

    def run_label(self, settings: HeadSettings) -> str:
        return f"{self.name}-{settings.cell}"

    def check_outputs(self, outputs: Mapping[str, Any], n_classes: int, source: str) -> None:
        super().check_outputs(outputs, n_classes, source)
        attention = outputs.get("attention")
        if attention is None or len(attention.shape) != 3 or not _is_square(attention.shape[-1]):
            shape = None if attention is None else tuple(attention.shape)
            raise BadConfigError(f"{source}: an attention model needs an attention output over "
                                 f"a square grid, this one has {shape}")


class TransferKind(ModelKind):
    """The second paper's method: a new softmax head on the encoder, with learn-rate factors
    for its weights and biases and an L2 factor; Grad-CAM shows where it looked."""

    name = "transfer"
    heatmap = GRAD_CAM

    def build_head(self, settings: HeadSettings, feature_shape: Sequence[int],
                   n_classes: int) -> keras.Model:
        return build_transfer_head(feature_shape, n_classes, dropout=settings.dropout,
                                   l2_factor=settings.l2_factor)

    def compile(self, model: keras.Model, settings: HeadSettings, learning_rate: float) -> None:
        factors = None
        if (settings.weight_lr_factor, settings.bias_lr_factor) != (1, 1):
            factors = head_factors(settings.weight_lr_factor, settings.bias_lr_factor)
        optimizer = make_optimizer(settings.optimizer, learning_rate, momentum=settings.momentum,
                                   factors=factors)
        loss = ("categorical_crossentropy" if settings.class_loss == "categorical"
                else "mean_squared_error")
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=False)

    def targets(self, settings: HeadSettings, labels: np.ndarray,
                lesions: Sequence[np.ndarray], n_classes: int,
                grid: tuple[int, int]) -> np.ndarray:
        return _one_hot(labels, n_classes)

    def probabilities(self, output: Any) -> np.ndarray:
        if isinstance(output, Mapping):
            output = output["class"]
        return np.asarray(output, dtype=np.float64)


#: Every model family, by the config's ``model`` value.
MODEL_KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (AttentionKind(),
                                                                   TransferKind())}


def model_kind(name: str) -> ModelKind:
    """The kind a config or manifest names; an unknown name is one clear error."""
    try:
        return MODEL_KINDS[name]
    except (KeyError, TypeError):
        raise BadConfigError(f"unknown model {name!r}; choose one of "
                             f"{', '.join(MODEL_KINDS)}") from None


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[labels]


def _is_square(cells: int) -> bool:
    return math.isqrt(int(cells)) ** 2 == int(cells)


def _square_side(cells: int) -> int:
    """The side of the square feature grid (square films) that ``cells`` flatten."""
    if not _is_square(cells):
        raise BadConfigError(f"attention over {cells} cells is not a square grid")
    return math.isqrt(int(cells))
