"""Where a model looks: attention maps and Grad-CAM(++) on its feature grid, and the way back
onto the original film.

The heatmap functions are pure, ``(model, films) -> array``, as in the keras-io Grad-CAM
example; drawing and saving live in ``overlay``. Models are the project's
``attach_encoder(encoder, head)``: films -> encoder (a feature map) -> head (probabilities,
plus attention for the attention model). Films are what the saved model takes: float32
``(B, S, S, 1)`` in [0, 255], as ``core.prep.preprocess`` makes them.

Grad-CAM differentiates the *pre-softmax* class score. The probability saturates (a
confident film has almost no gradient) and the log-probability ``z_c - logsumexp(z)``
subtracts every other class's evidence from the gradient; the score ``z_c`` itself is the
heads' last Dense layer before its softmax. It is recomputed from that layer's own kernel
and bias (``_PreSoftmax``), so no model is copied or edited. The one backend-specific step,
the gradient, is ``core.backend.gradients``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import keras
import numpy as np
from keras import ops

from core import backend
from core.errors import BadConfigError
from core.geometry import Lesion, Transform
from core.models.cut import compose, split_at
from core.models.kinds import ModelKind
from core.render.film_view import FilmView, shrink
from core.render.overlay import display_grey

FILM_RANGE = (0.0, 255.0)


# -- the heatmap of a model kind --------------------------------------------------------------
def scores_and_maps(model: keras.Model, kind: ModelKind, films: np.ndarray,
                    batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``(B, C)`` and one grid heatmap per film ``(B, h, w)``: the kind's
    own maps from the same pass (the attention model's glimpses, averaged), or Grad-CAM of
    the predicted class for a kind without maps of its own. What evaluation and prediction
    both score a model with."""
    probabilities, maps = [], []
    for start in range(0, len(films), batch_size):
        # float32 a batch at a time: a uint8 stack of a whole dataset stays a quarter the size
        batch = np.asarray(films[start:start + batch_size], dtype=np.float32)
        output = model.predict_on_batch(batch)
        scores = kind.probabilities(output)
        own = kind.grid_maps(output)
        probabilities.append(scores)
        maps.append(own if own is not None else grad_cam(model, batch, scores.argmax(axis=1)))
    return np.concatenate(probabilities), np.concatenate(maps)


# -- Grad-CAM -----------------------------------------------------------------------------------
def grad_cam(model: keras.Model, films: Any, class_index: int | Sequence[int] | None = None,
             layer: str | None = None, plus: bool = False) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., 2017) or, with ``plus``, Grad-CAM++ (Chattopadhyay et al.,
    2018): ``(B, h, w)`` maps in [0, 1] on the grid of ``layer``'s output.

    ``class_index``: one class for every film, one per film, or ``None`` for each film's
    predicted class. ``layer``: the name of a layer inside the encoder (nested models are
    searched); ``None`` means the encoder's output, the feature map the head reads.

    Grad-CAM weighs each channel by its mean gradient; Grad-CAM++ by the positive gradients
    weighted with its closed-form ``alpha`` (the exponential-score form, which needs only
    first derivatives): ``alpha = g^2 / (2 g^2 + sum_ij(A) g^3)``, set to 0 where the
    denominator is 0. The map is ``relu(sum_k w_k A_k)`` divided by its maximum; a map with
    no positive evidence stays all zero rather than becoming NaN.
    """
    films = _check_films(model, films)
    graph = _graph(model, layer)
    activations = np.asarray(graph.front.predict_on_batch(films), dtype=np.float32)
    n_classes = int(graph.back.outputs[0].shape[-1])
    classes = _class_indices(class_index, len(films), n_classes)

    def pick(scores: np.ndarray) -> np.ndarray:
        chosen = scores.argmax(axis=-1) if classes is None else classes
        return np.eye(n_classes, dtype=np.float32)[chosen]

    _, grads = backend.gradients(graph.back, activations, pick)
    if plus:
        g2 = grads * grads
        denominator = 2.0 * g2 + activations.sum(axis=(1, 2), keepdims=True) * g2 * grads
        alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
        weights = (alpha * np.maximum(grads, 0.0)).sum(axis=(1, 2))
    else:
        weights = grads.mean(axis=(1, 2))
    cams = np.maximum(np.einsum("bhwk,bk->bhw", activations, weights), 0.0)
    if not np.all(np.isfinite(cams)):
        raise BadConfigError(f"model {model.name!r} gives non-finite activations or gradients: "
                             "no heatmap can be drawn")
    return np.stack([_unit(cam) for cam in cams])


# -- back onto the film ---------------------------------------------------------------------------
def to_film(map_on_grid: np.ndarray, transform: Transform,
            input_size: int | None = None) -> np.ndarray:
    """A map on a model grid -> the same map on the original film, in [0, 1].

    The grid covers the model input like a resize (as ``lesion_target`` assumes), so the map
    is first resized to the input grid (``transform.dst_shape``) with ``cv2.resize``, whose
    half-pixel convention is ``Transform.resize``'s and which repeats edge cells rather than
    fading them into a black border; ``transform.unapply`` then undoes padding, flip, resize
    and crop. Film pixels outside the input grid get 0; where the input was padded, the map
    shows what the model made of black padding. ``input_size``, when given, must agree with
    the transform (a check against mixing up runs).
    """
    grid_map = np.asarray(map_on_grid, dtype=np.float32)
    if grid_map.ndim != 2 or not np.all(np.isfinite(grid_map)):
        raise BadConfigError(f"a heatmap must be a finite 2-D map, got shape {grid_map.shape}")
    rows, cols = transform.dst_shape
    if input_size is not None and (rows, cols) != (input_size, input_size):
        raise BadConfigError(f"the film was prepared for a {rows} x {cols} input, not "
                             f"{input_size} x {input_size}")
    on_input = cv2.resize(grid_map, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return _unit(np.maximum(transform.unapply(on_input), 0.0))


def mean_map(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Several models' maps of the same films ``[(B, h_i, w_i), ...]`` -> their mean on the
    first's grid ``(B, h, w)``: each map resized onto it as ``to_film`` resizes (a grid
    covers the input like a resize) and scaled to a peak of 1, so every model weighs the
    same whatever its map's scale (glimpse weights, Grad-CAM)."""
    rows, cols = maps[0].shape[1:]
    return np.mean([[_unit(np.maximum(cv2.resize(np.asarray(film_map, np.float32),
                                                 (cols, rows),
                                                 interpolation=cv2.INTER_LINEAR), 0.0))
                     for film_map in grid] for grid in maps], axis=0, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class DisplayFilm:
    """A film at the size it is drawn (long side at most a display side) and the resize from
    the film's grid onto it (``None``: drawn at its own size). Made before the model runs,
    so a batch of full-field films waiting for the model holds their display copies only."""

    pixels: np.ndarray  # uint8 or uint16, as the film
    from_film: Transform | None


def display_film(pixels: np.ndarray, side: int | None) -> DisplayFilm:
    """The film with its long side at most ``side`` (``None``: as it is), shrunk once, on its
    own integer pixels (area averaging)."""
    from_film = Transform.fit_long_side(pixels.shape, side, enlarge=False) \
        if side is not None else None
    if from_film is None or from_film.dst_shape == from_film.src_shape:
        return DisplayFilm(pixels, None)
    return DisplayFilm(shrink(pixels, side), from_film)


def heat_view(film: DisplayFilm, map_on_grid: np.ndarray, transform: Transform,
              lesions: Sequence[Lesion] = ()) -> FilmView:
    """The display film (as ``display_grey`` shows it) with its heatmap (``to_film``) on the
    same grid, and ``lesions`` (on the film's grid) moved onto it.

    ``transform`` maps the original film onto the model input (``Prepared.transform``); the
    map is taken from the model's grid straight onto the display grid, so nothing is
    upsampled, stretched or blended at a full-field film's own size. A film drawn at its
    own size gets exactly ``to_film``'s map."""
    if film.from_film is None:
        return FilmView(display_grey(film.pixels), to_film(map_on_grid, transform),
                        tuple(lesions))
    # Built rather than inverted: a resize's own matrix is exact where an inverse may not be.
    back = Transform.resize(film.from_film.dst_shape, film.from_film.src_shape)
    return FilmView(display_grey(film.pixels), to_film(map_on_grid, back.then(transform)),
                    film.from_film.map_lesions(lesions))


def _unit(heatmap: np.ndarray) -> np.ndarray:
    """Divide a finite, non-negative map by its maximum; an all-zero map stays all zero."""
    peak = float(heatmap.max()) if heatmap.size else 0.0
    if peak > 0.0:
        return (heatmap / peak).astype(np.float32)
    return np.zeros(heatmap.shape, np.float32)


# -- model structure ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Graph:
    """The model cut at the chosen layer: ``front`` maps films to its activations, ``back``
    maps activations to pre-softmax class scores. ``front`` runs compiled
    (``predict_on_batch``: half the time of an eager call for MobileNetV2 at 512 px)."""

    front: keras.Model
    back: keras.Model


# Cutting a model builds small Keras models; building them again for every film would add
# graph nodes to the model's layers each time, so each model keeps its cuts while it lives
# (the app may ask from several threads at once, hence the lock).
_GRAPHS: weakref.WeakKeyDictionary[keras.Model, dict[str | None, _Graph]] = \
    weakref.WeakKeyDictionary()
_GRAPHS_LOCK = threading.Lock()


def _graph(model: keras.Model, layer: str | None) -> _Graph:
    with _GRAPHS_LOCK:
        cuts = _GRAPHS.setdefault(model, {})
        if layer not in cuts:
            cuts[layer] = _cut(model, layer)
        return cuts[layer]


def _cut(model: keras.Model, layer: str | None) -> _Graph:
    encoder, head = encoder_and_head(model)
    if layer is None or layer == encoder.name:
        front, back = [encoder], []
    else:
        front, back = split_at(encoder, layer)
    shape = tuple(front[-1].outputs[0].shape)  # the last front piece is always a Model
    if len(shape) != 4 or None in shape[1:]:
        raise BadConfigError(f"layer {layer or encoder.name!r} gives {shape}, not a fixed "
                             "(rows, cols, channels) map that Grad-CAM can weigh")
    return _Graph(compose(front, encoder.inputs[0].shape[1:], f"{model.name}_activations"),
                  compose([*back, *_scores(head)], shape[1:], f"{model.name}_class_scores"))


def encoder_and_head(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """The encoder and head of a model built by ``attach_encoder``; ``BadConfigError`` for
    any other model (a foreign file loaded from a run is refused by this, before scoring)."""
    parts = [lay for lay in model.layers if not isinstance(lay, keras.layers.InputLayer)]
    if (len(model.inputs) != 1 or len(parts) != 2
            or not all(isinstance(part, keras.Model) for part in parts)
            or len(model.outputs) != len(parts[1].outputs)):
        raise BadConfigError(f"model {model.name!r} is not films -> encoder -> head as "
                             "attach_encoder builds it; heatmaps cannot find its feature map")
    return parts[0], parts[1]


class _PreSoftmax(keras.layers.Layer):
    """A softmax Dense layer's pre-activation ``x @ kernel + bias``, read from the layer
    itself (its variables, not copies), so the scores always match the model's weights."""

    def __init__(self, dense: keras.layers.Dense, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = dense

    def call(self, x: Any) -> Any:
        scores = ops.matmul(x, self.dense.kernel)
        return scores + self.dense.bias if self.dense.use_bias else scores


def _scores(head: keras.Model) -> list[Any]:
    """Keras callables from features to the pre-softmax class scores of ``head``, whose class
    output (``"class"`` for the attention head, the only one for a transfer head) ends in a
    softmax Dense layer, a softmax activation layer, or a Dense layer without activation
    (already scores)."""
    output = head.output
    if isinstance(output, dict):
        output = output.get("class")
    last = next((lay for lay in head.layers if lay.output is output), None)
    softmax = keras.activations.get("softmax")
    if isinstance(last, keras.layers.Dense) and last.activation is softmax:
        return [keras.Model(head.inputs, last.input, name=f"{head.name}_body"),
                _PreSoftmax(last, name="pre_softmax")]
    if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.linear:
        return [keras.Model(head.inputs, output, name=f"{head.name}_scores")]
    if isinstance(last, keras.layers.Softmax) or (
            isinstance(last, keras.layers.Activation) and last.activation is softmax):
        return [keras.Model(head.inputs, last.input, name=f"{head.name}_scores")]
    raise BadConfigError(f"head {head.name!r}: cannot find the class scores before the softmax "
                         f"(its class output comes from {getattr(last, 'name', None)!r})")


# -- checks ---------------------------------------------------------------------------------------
def _check_films(model: keras.Model, films: Any) -> np.ndarray:
    films = np.asarray(films, dtype=np.float32)
    expected = tuple(model.inputs[0].shape[1:])
    if films.ndim != len(expected) + 1 or tuple(films.shape[1:]) != expected or not len(films):
        raise BadConfigError(f"films of shape {films.shape} do not fit model "
                             f"{model.name!r}, which takes a batch of {expected}")
    if not (np.all(np.isfinite(films)) and films.min() >= FILM_RANGE[0]
            and films.max() <= FILM_RANGE[1]):
        raise BadConfigError(f"film pixels must be finite and in {list(FILM_RANGE)} "
                             "(preprocessed films, as the model was trained on)")
    return films


def _class_indices(class_index: int | Sequence[int] | None, n_films: int,
                   n_classes: int) -> np.ndarray | None:
    if class_index is None:
        return None
    indices = np.broadcast_to(np.asarray(class_index), (n_films,)) \
        if np.ndim(class_index) == 0 else np.asarray(class_index)
    if (indices.shape != (n_films,) or not np.issubdtype(indices.dtype, np.integer)
            or indices.min(initial=0) < 0 or indices.max(initial=0) >= n_classes):
        raise BadConfigError(f"class_index must be a class from 0 to {n_classes - 1}, one or "
                             f"one per film, got {class_index!r}")
    return indices.astype(np.int64)
