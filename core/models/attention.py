"""The first paper's method, done properly: an RNN that glimpses at an encoder's feature map.

The paper describes six recurrent steps of weighted sums over VGG16 features and a squared-error
loss. We implement that as Show-Attend-Tell soft attention (Xu et al., 2015) with an image
label instead of a caption:

* the feature map ``F`` (B, H', W', D) is flattened row-major to ``L = H' * W'`` locations;
* the initial state comes from the mean feature through small dense layers (``init_h``, and
  ``init_c`` for an LSTM);
* each of ``T`` steps scores every location with additive (Bahdanau) attention
  ``e_l = v^T tanh(W_f f_l + W_h h_{t-1})``, takes ``alpha = softmax_l(e)`` and feeds the
  context ``sum_l alpha_l f_l`` to the recurrent cell (no caption words, so the context is
  the cell's only input);
* the class probabilities come from the final state (after optional dropout).

The model has two named outputs: ``"class"`` (B, C) probabilities and ``"attention"``
(B, T, L), each step's distribution over the flattened grid (``attention_maps`` reshapes it
to (B, T, H', W')).

Because encoders are usually frozen, the decoder is built first as a *head* on feature
tensors (``build_attention_head``): features are cached once and only the head trains. The
image model (``attach_encoder``) is the encoder followed by that same head, so a head
trained on cached features drops into it unchanged (``attach_encoder``).

Our addition is lesion supervision: where a film's lesion is located, the mean attention is
pulled towards a target distribution on the grid (``lesion_target``), so the heatmap is
trained to point at the lesion rather than hoped to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from core.errors import BadConfigError
from core.geometry import Transform

CELLS: dict[str, type[keras.layers.Layer]] = {
    "lstm": keras.layers.LSTMCell,
    "gru": keras.layers.GRUCell,
    "simple": keras.layers.SimpleRNNCell,
}
#: "mse" is the paper's squared error on the class probabilities (for the reproduction).
CLASS_LOSSES: tuple[str, ...] = ("categorical", "sparse", "mse")
DIVERGENCES: tuple[str, ...] = ("kl", "cross_entropy")
TARGET_KINDS: tuple[str, ...] = ("gaussian", "disk")
_EPS = 1e-7


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BadConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative(name: str, value: Any) -> float:
    number = float(value)
    if not np.isfinite(number) or number < 0:
        raise BadConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


@keras.saving.register_keras_serializable(package="mammo")
class GlimpseDecoder(keras.layers.Layer):
    """Soft attention unrolled over ``steps`` glimpses; returns (final state, attention).

    The cell is stepped by hand rather than wrapped in ``keras.layers.RNN`` because each
    step's input (the context) depends on the previous state through the attention.
    """

    def __init__(self, steps: int = 6, cell: str = "lstm", units: int = 256,
                 attention_units: int = 128, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise BadConfigError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.steps = _positive_int("steps", steps)
        self.cell_type = cell
        self.units = _positive_int("units", units)
        self.attention_units = _positive_int("attention_units", attention_units)
        dense = keras.layers.Dense
        self.init_h = dense(self.units, activation="tanh", name="init_h")
        self.init_c = dense(self.units, activation="tanh", name="init_c") if cell == "lstm" else None
        self.feature_proj = dense(self.attention_units, name="feature_proj")
        self.state_proj = dense(self.attention_units, use_bias=False, name="state_proj")
        # No bias: a constant added to every location's score cancels in the softmax.
        self.score = dense(1, use_bias=False, name="score")
        self.cell = CELLS[cell](self.units, name="cell")

    def build(self, input_shape: Sequence[int | None]) -> None:
        if len(input_shape) not in (3, 4) or input_shape[-1] is None:
            raise BadConfigError("the attention decoder needs features shaped (batch, H', W', D) "
                                 f"or (batch, L, D) with a known depth D, got {tuple(input_shape)}")
        depth = input_shape[-1]
        self.init_h.build((None, depth))
        if self.init_c is not None:
            self.init_c.build((None, depth))
        self.feature_proj.build((None, None, depth))
        self.state_proj.build((None, self.units))
        self.score.build((None, None, self.attention_units))
        self.cell.build((None, depth))

    def call(self, features: Any, training: bool | None = None) -> tuple[Any, Any]:
        shape = ops.shape(features)
        flat = ops.reshape(features, (shape[0], -1, shape[-1]))  # (B, L, D), row-major
        mean = ops.mean(flat, axis=1)
        states = [self.init_h(mean)]
        if self.init_c is not None:
            states.append(self.init_c(mean))
        keys = self.feature_proj(flat)  # W_f f_l, computed once for all steps
        alphas = []
        for _ in range(self.steps):
            query = ops.expand_dims(self.state_proj(states[0]), 1)  # W_h h_{t-1}
            energy = ops.squeeze(self.score(ops.tanh(keys + query)), -1)  # (B, L)
            alpha = ops.softmax(energy, axis=-1)
            context = ops.sum(ops.expand_dims(alpha, -1) * flat, axis=1)  # (B, D)
            output, states = self.cell(context, states, training=training)
            states = list(states) if isinstance(states, (list, tuple)) else [states]
            alphas.append(alpha)
        return output, ops.stack(alphas, axis=1)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[tuple, tuple]:
        spatial = input_shape[1:-1]
        locations = None if any(d is None for d in spatial) else int(np.prod(spatial))
        return (input_shape[0], self.units), (input_shape[0], self.steps, locations)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(steps=self.steps, cell=self.cell_type, units=self.units,
                      attention_units=self.attention_units)
        return config


def build_attention_head(feature_shape: Sequence[int], n_classes: int, steps: int = 6,
                         cell: str = "lstm", units: int = 256, attention_units: int = 128,
                         dropout: float = 0.0, name: str = "attention_head") -> keras.Model:
    """The decoder on precomputed features (H', W', D): the fast path for frozen encoders.

    Outputs ``{"class": (B, n_classes) probabilities, "attention": (B, steps, H'*W')}``.
    """
    feature_shape = tuple(int(d) for d in feature_shape)
    if len(feature_shape) != 3:
        raise BadConfigError(f"feature_shape must be (H', W', D), got {feature_shape}")
    if _positive_int("n_classes", n_classes) < 2:
        raise BadConfigError(f"n_classes must be at least 2, got {n_classes}")
    dropout = _non_negative("dropout", dropout)
    if dropout >= 1:
        raise BadConfigError(f"dropout must be below 1, got {dropout}")
    features = keras.Input(shape=feature_shape, name="features")
    state, alpha = GlimpseDecoder(steps, cell, units, attention_units,
                                  name="glimpse_decoder")(features)
    if dropout:
        state = keras.layers.Dropout(dropout, name="dropout")(state)
    # Outputs in float32 whatever the policy: a softmax and its loss in 16 bits lose
    # small probabilities (Keras's mixed-precision guide).
    probs = keras.layers.Dense(n_classes, activation="softmax", name="class",
                               dtype="float32")(state)
    alpha = keras.layers.Identity(name="attention", dtype="float32")(alpha)
    return keras.Model(features, {"class": probs, "attention": alpha}, name=name)


def encoder_io_shapes(encoder: keras.Model) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The encoder's image shape (S, S, 3) and feature shape (H', W', D), both fully known."""
    try:
        image_shape = tuple(encoder.inputs[0].shape[1:])
        feature_shape = tuple(encoder.outputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError) as error:
        raise BadConfigError(f"encoder {encoder.name!r} has no defined input and output "
                             "(build it as a functional model)") from error
    if len(feature_shape) != 3 or None in image_shape or None in feature_shape:
        raise BadConfigError(f"encoder {encoder.name!r} must map a fixed image shape to a "
                             f"feature map (H', W', D); it maps {image_shape} to {feature_shape}")
    return image_shape, feature_shape


def attach_encoder(encoder: keras.Model, head: keras.Model, name: str) -> keras.Model:
    """Image -> encoder -> head, keeping the head's outputs (and their names) as they are.

    Sharing the head object means weights trained on cached features are the weights of the
    image model: no copying, no second definition that could drift.
    """
    image_shape, _ = encoder_io_shapes(encoder)
    image = keras.Input(shape=image_shape, name="image")
    return keras.Model(image, head(encoder(image)), name=name)


def attention_maps(alpha: Any, grid_shape: Sequence[int]) -> np.ndarray:
    """(B, T, L) attention -> (B, T, H', W') maps, undoing the row-major flattening."""
    alpha = np.asarray(alpha)
    rows, cols = int(grid_shape[0]), int(grid_shape[1])
    if alpha.ndim != 3 or alpha.shape[-1] != rows * cols:
        raise BadConfigError(f"attention of shape {alpha.shape} does not fit a {rows} x {cols} grid")
    return alpha.reshape(alpha.shape[0], alpha.shape[1], rows, cols)


# -- lesion targets -------------------------------------------------------------------------
def lesion_target(centers_rc: Any, radii: Any, image_shape: Sequence[int],
                  grid_shape: Sequence[int], kind: str = "gaussian") -> np.ndarray:
    """A target attention distribution on the feature grid for the lesions of one film.

    ``centers_rc`` are (row, col) in model-input pixels (the film after every preprocessing
    step), ``radii`` in the same pixels (one per centre, or one for all; ``None``/NaN means
    unknown extent). The grid is taken to cover the input like a resize, so centres and radii
    go through ``Transform.resize(image_shape, grid_shape)``.

    ``"gaussian"``: ``exp(-d^2 / 2 sigma^2)`` with ``sigma = radius / 2`` on the grid, so
    about 86 % of a lesion's mass lies inside its circle; ``"disk"``: the cells whose centre
    lies within the radius. Sigma and the disk radius are at least half a cell, and a disk
    always holds the cell nearest the centre, so a lesion smaller than a cell (most MIAS
    lesions on a 7 x 7 grid) still marks its own cell. Each lesion carries equal mass; the
    result sums to 1. Lesions whose centre falls outside the image (an augmentation shift can
    push one out) are left out, and a film with none left gets all zeros, which the
    supervision loss reads as "no located lesion".
    """
    if kind not in TARGET_KINDS:
        raise BadConfigError(f"kind must be one of {TARGET_KINDS}, got {kind!r}")
    rows, cols = int(grid_shape[0]), int(grid_shape[1])
    target = np.zeros((rows, cols), dtype=np.float64)
    centers = np.asarray(centers_rc, dtype=float).reshape(-1, 2)
    if len(centers) == 0:
        return target.astype(np.float32)
    radii = _radii(radii, len(centers))
    transform = Transform.resize(tuple(image_shape)[:2], (rows, cols))
    grid_centers = transform.forward(centers)
    grid_r, grid_c = np.mgrid[0:rows, 0:cols].astype(float)
    placed = 0
    for (row, col), radius in zip(grid_centers, radii):
        if not (-0.5 <= row < rows - 0.5 and -0.5 <= col < cols - 0.5):
            continue
        grid_radius = transform.forward_radius(radius)
        dist2 = (grid_r - row) ** 2 + (grid_c - col) ** 2
        if kind == "gaussian":
            sigma = max(grid_radius / 2.0, 0.5)
            mass = np.exp(-dist2 / (2.0 * sigma**2))
        else:
            mass = (dist2 <= max(grid_radius, 0.5) ** 2).astype(float)
            mass[round(row), round(col)] = 1.0
        target += mass / mass.sum()
        placed += 1
    if placed:
        target /= placed
    return target.astype(np.float32)


def _radii(radii: Any, count: int) -> np.ndarray:
    values = np.asarray([np.nan if r is None else r for r in np.atleast_1d(
        np.asarray(radii, dtype=object))], dtype=float)
    if values.size == 1:
        values = np.repeat(values, count)
    if values.size != count:
        raise BadConfigError(f"{count} lesion centres but {values.size} radii")
    if np.any(values < 0):
        raise BadConfigError(f"lesion radii must be >= 0, got {values.tolist()}")
    return np.nan_to_num(values, nan=0.0)


# -- losses ---------------------------------------------------------------------------------
def lesion_divergence(target: Any, alpha: Any, divergence: str = "kl") -> Any:
    """Per-film divergence between the lesion target and the mean attention over steps.

    The target is renormalised to sum 1 (so a raw mask works too); an all-zero target gives
    exactly 0. ``"kl"`` is KL(target || mean_t alpha), zero when they agree; ``"cross_entropy"``
    adds the target's entropy, which has the same gradient.
    """
    batch = ops.shape(alpha)[0]
    p = ops.reshape(ops.cast(target, alpha.dtype), (batch, -1))
    p = p / ops.maximum(ops.sum(p, axis=-1, keepdims=True), _EPS)
    q = ops.clip(ops.mean(alpha, axis=1), _EPS, 1.0)
    loss = -ops.sum(p * ops.log(q), axis=-1)
    if divergence == "kl":
        loss = loss + ops.sum(p * ops.log(ops.maximum(p, _EPS)), axis=-1)
    return loss


def doubly_stochastic_penalty(alpha: Any) -> Any:
    """Show-Attend-Tell's term per film: ``mean_l (1 - sum_t alpha_tl)^2``.

    The paper sums over locations; we average (divide by L) so the weight does not depend on
    the grid size. Since ``sum_l sum_t alpha_tl = T``, this differs from
    ``mean_l (T/L - sum_t alpha_tl)^2`` only by a constant: either way it pushes every location
    towards the same total attention T/L over the glimpses. With T < L that is a coverage
    prior that works *against* lesion supervision, so it is off by default.
    """
    return ops.mean(ops.square(1.0 - ops.sum(alpha, axis=1)), axis=-1)


@keras.saving.register_keras_serializable(package="mammo")
class AttentionLoss(keras.losses.Loss):
    """The loss on the ``"attention"`` output: ``supervision * lesion divergence +
    regularization * doubly stochastic penalty``, per film, averaged over the batch.

    Films without a located lesion (all-zero target) contribute zero supervision but still
    count in the batch mean, so a batch's supervision strength is proportional to how many of
    its films are located, as in any masked per-sample loss.
    """

    def __init__(self, supervision: float = 1.0, regularization: float = 0.0,
                 divergence: str = "kl", name: str = "attention_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if divergence not in DIVERGENCES:
            raise BadConfigError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
        self.supervision = _non_negative("supervision", supervision)
        self.regularization = _non_negative("regularization", regularization)
        self.divergence = divergence

    def call(self, y_true: Any, y_pred: Any) -> Any:
        loss = ops.zeros((ops.shape(y_pred)[0],), dtype=y_pred.dtype)
        if self.supervision:
            loss = loss + self.supervision * lesion_divergence(y_true, y_pred, self.divergence)
        if self.regularization:
            loss = loss + self.regularization * doubly_stochastic_penalty(y_pred)
        return loss

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(supervision=self.supervision, regularization=self.regularization,
                      divergence=self.divergence)
        return config


def compile_attention_model(model: keras.Model, optimizer: Any, class_loss: str = "categorical",
                            supervision: float = 1.0, regularization: float = 0.0,
                            divergence: str = "kl", class_weight: float = 1.0,
                            attention_weight: float = 1.0,
                            jit_compile: bool | str = "auto") -> keras.Model:
    """Compile a model with ``"class"`` and ``"attention"`` outputs.

    ``class_loss``: ``"categorical"`` (one-hot targets), ``"sparse"`` (integer targets) or
    ``"mse"`` (the paper's squared error, one-hot). The attention output gets an
    ``AttentionLoss`` unless both of its terms are zero, in which case it has no loss.
    ``class_weight`` and ``attention_weight`` are Keras loss weights. Targets for ``fit`` are
    always ``{"class": ..., "attention": (B, H', W') lesion targets}`` (Keras wants one target
    per output; the attention target is ignored when that output has no loss).
    ``jit_compile`` goes to Keras: XLA compilation of the unrolled decoder costs seconds,
    which pays off on real data but not on a handful of batches.
    """
    if class_loss not in CLASS_LOSSES:
        raise BadConfigError(f"class_loss must be one of {CLASS_LOSSES}, got {class_loss!r}")
    losses: dict[str, Any] = {
        "categorical": {"class": keras.losses.CategoricalCrossentropy()},
        "sparse": {"class": keras.losses.SparseCategoricalCrossentropy()},
        "mse": {"class": keras.losses.MeanSquaredError()},
    }[class_loss]
    weights = {"class": _non_negative("class_weight", class_weight)}
    if supervision or regularization:
        losses["attention"] = AttentionLoss(supervision, regularization, divergence)
        weights["attention"] = _non_negative("attention_weight", attention_weight)
    accuracy = (keras.metrics.SparseCategoricalAccuracy(name="accuracy") if class_loss == "sparse"
                else keras.metrics.CategoricalAccuracy(name="accuracy"))
    model.compile(optimizer=optimizer, loss=losses, loss_weights=weights,
                  metrics={"class": [accuracy]}, jit_compile=jit_compile)
    return model
