"""Heatmaps: attention maps and Grad-CAM(++) on models whose right answer is known by
construction, mapped back through real preprocessing onto the original film.

The models are tiny and hand-weighted: an "attention" that is a sharpened softmax of each
cell's brightness, and an encoder whose two channels each light up on one kind of blob,
read by the project's own transfer head with a chosen kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from conftest import REPO
from core.data.records import Lesion
from core.errors import BadConfigError
from core.evaluate.heatmaps import display_film, grad_cam, heat_view, scores_and_maps, to_film
from core.geometry import Transform
from core.models.attention import attach_encoder, build_attention_head
from core.models.backbones import build_backbone, film_encoder
from core.models.kinds import MODEL_KINDS, named_outputs
from core.models.transfer import build_transfer_head
from core.prep.preprocess import PrepConfig, preprocess
from core.render.film_view import shrink
from core.render.overlay import display_grey, save_png, viridis_overlay

S, POOL = 64, 4
G = S // POOL  # the feature grid's side
BRIGHT_CELLS = {(r, c) for r in (2, 3) for c in (2, 3)}  # film pixels 8:16, 8:16
DIM_CELLS = {(r, c) for r in (10, 11) for c in (11, 12)}  # film pixels 40:48, 44:52
BRIGHT_LEVEL, DIM_LEVEL = 250.0 - 128.0, 100.0 - 50.0  # channel values the encoder gives
FILM_SHAPE, LESION = (240, 200), Lesion(center=(110.0, 140.0), radius=14.0)


# -- models and films ---------------------------------------------------------------------------
def _two_blobs() -> np.ndarray:
    films = np.zeros((1, S, S, 1), np.float32)
    films[0, 8:16, 8:16] = 250.0
    films[0, 40:48, 44:52] = 100.0
    return films


def _channel_model(score_kernel: np.ndarray, ending: str = "dense-softmax") -> keras.Model:
    """Channel 0 lights up (122) on bright cells only, channel 1 (50) on dim cells only:
    ``levels`` gives relu(x - 50) and relu(x - 128), ``channels`` gives the second and the
    first minus twice the second. The encoder nests an inner model, like film_encoder.
    The head is the project's transfer head, or the same scores ending another way."""
    inner_in = keras.Input((G, G, 1), name="pooled")
    levels = keras.layers.Conv2D(2, 1, activation="relu", name="levels")
    channels = keras.layers.Conv2D(2, 1, activation="relu", name="channels")
    inner = keras.Model(inner_in, channels(levels(inner_in)), name="inner")
    film = keras.Input((S, S, 1), name="film")
    encoder = keras.Model(film, inner(keras.layers.AveragePooling2D(POOL, name="pool")(film)),
                          name="channel_encoder")
    levels.set_weights([np.ones((1, 1, 1, 2), np.float32), np.array([-50.0, -128.0], np.float32)])
    channels.set_weights([np.array([[[[0.0, 1.0], [1.0, -2.0]]]], np.float32),
                          np.zeros(2, np.float32)])
    if ending == "dense-softmax":
        head = build_transfer_head((G, G, 2), 2, l2_factor=0.0)
    else:
        features = keras.Input((G, G, 2))
        scores = keras.layers.Dense(2, name="head")(
            keras.layers.GlobalAveragePooling2D()(features))
        if ending == "softmax-layer":
            scores = keras.layers.Softmax()(scores)
        head = keras.Model(features, scores, name=f"{ending}_head")
    head.get_layer("head").set_weights([score_kernel.astype(np.float32), np.zeros(2, np.float32)])
    return attach_encoder(encoder, head, "channel_model")


def _brightness_model(class_kernel: tuple[float, float] = (-1.0, 1.0),
                      sharpness: float = 20.0) -> keras.Model:
    """Attention = softmax of cell brightness (x sharpness); class 1's score = mean brightness."""
    film = keras.Input((S, S, 1), name="film")
    cells = keras.layers.AveragePooling2D(POOL)(film)
    encoder = keras.Model(film, keras.layers.Rescaling(1.0 / 255.0)(cells), name="brightness")
    features = keras.Input((G, G, 1), name="features")
    energy = keras.layers.Rescaling(sharpness)(keras.layers.Flatten()(features))
    alpha = keras.layers.Reshape((1, G * G), name="attention")(keras.layers.Softmax()(energy))
    probs = keras.layers.Dense(2, activation="softmax", name="class")(
        keras.layers.GlobalAveragePooling2D()(features))
    head = keras.Model(features, {"class": probs, "attention": alpha}, name="brightness_head")
    head.get_layer("class").set_weights([np.array([class_kernel], np.float32),
                                         np.zeros(2, np.float32)])
    return attach_encoder(encoder, head, "brightness_model")


def _random_attention_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    film = keras.Input((32, 32, 1), name="film")
    x = keras.layers.Rescaling(1.0 / 255.0)(film)
    x = keras.layers.Conv2D(4, 3, strides=4, padding="same", activation="relu")(x)
    encoder = keras.Model(film, x, name="tiny_encoder")
    head = build_attention_head((8, 8, 4), 3, steps=2, units=8, attention_units=4)
    return attach_encoder(encoder, head, "tiny_attention")


def _film_with_lesion() -> np.ndarray:
    """A breast on the right edge (so preprocessing crops, shrinks and flips it), a bright
    lesion, and a brighter label in the top-left corner that the crop must cut away."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:FILM_SHAPE[0], :FILM_SHAPE[1]]
    film = np.zeros(FILM_SHAPE, np.uint8)
    ellipse = ((rows - 120) / 105.0) ** 2 + ((cols - 199) / 120.0) ** 2
    breast = ellipse <= 1.0
    tissue = 50.0 + 70.0 * (1.0 - ellipse) + rng.normal(0.0, 4.0, FILM_SHAPE)  # thicker inward
    film[breast] = np.clip(tissue[breast], 1, 200).astype(np.uint8)
    (row, col), radius = LESION.center, LESION.radius
    film[(rows - row) ** 2 + (cols - col) ** 2 <= radius**2] = 230
    film[12:28, 10:46] = 255
    return film


def _cells(cam: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in np.argwhere(cam > 0)}


def _peak_distance(heatmap: np.ndarray) -> float:
    peak = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    return float(np.hypot(peak[0] - LESION.center[0], peak[1] - LESION.center[1]))


# -- the acceptance test -------------------------------------------------------------------------
def test_planted_lesion_is_found_on_the_original_film(tmp_path: Path) -> None:
    """Through a real crop (the label goes), shrink, flip and pad, both the attention map
    and Grad-CAM peak inside the lesion on the original film, and the overlay PNG has the
    film's own size."""
    film = _film_with_lesion()
    prepared = preprocess(film, PrepConfig(size=S))
    transform = prepared.transform
    assert transform.forward(LESION.center)[1] < S / 2  # flipped: the lesion is now left
    assert transform.scale < 0.5  # cropped and shrunk
    films = prepared.image[None, ..., None].astype(np.float32)
    model = _brightness_model()

    _, combined = scores_and_maps(model, MODEL_KINDS["attention"], films, batch_size=4)
    assert combined.shape == (1, G, G)
    np.testing.assert_allclose(combined.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    on_film = to_film(combined[0], transform, input_size=S)
    assert on_film.shape == FILM_SHAPE and on_film.max() == pytest.approx(1.0)
    assert _peak_distance(on_film) <= LESION.radius
    # The label was cropped away; the padding that now covers it was black to the model.
    assert on_film[12:28, 10:46].max() < 1e-6

    cam = to_film(grad_cam(model, films, class_index=1)[0], transform)
    assert _peak_distance(cam) <= LESION.radius

    overlay = viridis_overlay(film, on_film, lesions=[LESION])
    path = save_png(overlay, tmp_path / "film.png")
    written = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert written.shape == (*FILM_SHAPE, 3)
    np.testing.assert_array_equal(written[..., ::-1], overlay)


# -- Grad-CAM -------------------------------------------------------------------------------------
@pytest.mark.parametrize("plus", [False, True])
def test_grad_cam_highlights_the_region_that_drives_the_class(plus: bool) -> None:
    model = _channel_model(np.eye(2))
    films = _two_blobs()
    bright = grad_cam(model, films, class_index=0, plus=plus)
    dim = grad_cam(model, films, class_index=1, plus=plus)
    assert bright.shape == dim.shape == (1, G, G)
    assert _cells(bright[0]) == BRIGHT_CELLS and _cells(dim[0]) == DIM_CELLS
    np.testing.assert_allclose(bright[0][bright[0] > 0], 1.0)
    # Unasked, the predicted class is used: the bright channel's score (mean 122 * 4 / 256)
    # beats the dim one's (50 * 4 / 256).
    np.testing.assert_array_equal(grad_cam(model, films, plus=plus), bright)


def test_grad_cam_plus_plus_weighs_channels_by_its_alpha() -> None:
    """Class 0's score is the mean of both channels, so every gradient is 1/L. Grad-CAM
    weighs both channels alike; Grad-CAM++ weighs channel k by 1 / (2 + sum(A_k) / L)."""
    model = _channel_model(np.array([[1.0, 0.0], [1.0, 0.0]]))
    films = _two_blobs()
    cells = G * G
    plain = grad_cam(model, films, class_index=0)[0]
    plus = grad_cam(model, films, class_index=0, plus=True)[0]
    assert plain[10, 11] == pytest.approx(DIM_LEVEL / BRIGHT_LEVEL, rel=1e-5)
    weight = [1.0 / (2.0 + level * 4 / cells) for level in (BRIGHT_LEVEL, DIM_LEVEL)]
    expected = DIM_LEVEL * weight[1] / (BRIGHT_LEVEL * weight[0])
    assert plus[10, 11] == pytest.approx(expected, rel=1e-5)
    assert plus[2, 2] == pytest.approx(1.0)


@pytest.mark.parametrize("ending", ["softmax-layer", "scores"])
def test_heads_ending_otherwise_give_the_same_scores(ending: str) -> None:
    """A separate softmax layer, or no softmax at all: the scores are found all the same
    (Grad-CAM++ depends on their scale, so equal maps mean equal scores)."""
    kernel = np.array([[1.0, 0.0], [1.0, 0.0]])
    expected = grad_cam(_channel_model(kernel), _two_blobs(), class_index=0, plus=True)
    found = grad_cam(_channel_model(kernel, ending), _two_blobs(), class_index=0, plus=True)
    np.testing.assert_allclose(found, expected, rtol=1e-6)


def test_a_layer_inside_a_nested_encoder(tmp_path: Path) -> None:
    """On ``levels`` (inside the inner model) class 0 flows only through relu(x - 128),
    which is non-zero only on the bright blob."""
    model = _channel_model(np.eye(2))
    cam = grad_cam(model, _two_blobs(), class_index=0, layer="levels")
    assert cam.shape == (1, G, G) and _cells(cam[0]) == BRIGHT_CELLS
    # The encoder's own name and the inner model's last layer are the default layer.
    default = grad_cam(model, _two_blobs(), class_index=1)
    np.testing.assert_allclose(grad_cam(model, _two_blobs(), class_index=1, layer="channels"),
                               default, atol=1e-6)
    np.testing.assert_array_equal(
        grad_cam(model, _two_blobs(), class_index=1, layer="channel_encoder"), default)
    # Cutting the model leaves it whole: it still saves, loads and predicts the same.
    model.save(tmp_path / "cut.keras")
    loaded = keras.models.load_model(tmp_path / "cut.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict_on_batch(_two_blobs()),
                               model.predict_on_batch(_two_blobs()), rtol=1e-6)


@pytest.mark.parametrize("plus", [False, True])
@pytest.mark.parametrize("class_kernel", [(-1.0, 1.0), (0.0, 0.0)],
                         ids=["negative-evidence", "zero-gradients"])
def test_no_positive_evidence_gives_an_all_zero_map(plus: bool,
                                                    class_kernel: tuple[float, float]) -> None:
    """Class 0's weight on brightness is negative (ReLU removes everything) or zero (every
    gradient is 0): either way the map is all zero, never NaN."""
    films = np.concatenate([_two_blobs(), np.zeros_like(_two_blobs())])
    cam = grad_cam(_brightness_model(class_kernel), films, class_index=0, plus=plus)
    assert cam.shape == (2, G, G) and np.all(cam == 0.0)


def test_grad_cam_on_a_real_film_encoder() -> None:
    """MobileNet (width 0.25) behind FilmToBackbone: the default layer is the encoder's
    output (2 x 2 at 64 px), an inner layer of the backbone gives its own grid, and naming
    the backbone's last layer is the same as the default."""
    keras.utils.set_random_seed(0)
    encoder = film_encoder(build_backbone("mobilenet_025", S, weights=None))
    model = attach_encoder(encoder, build_transfer_head((2, 2, 256), 3), "mobilenet_transfer")
    films = np.random.default_rng(1).uniform(0, 255, (2, S, S, 1)).astype(np.float32)
    default = grad_cam(model, films)
    inner = grad_cam(model, films, layer="conv_pw_11_relu", plus=True)
    assert default.shape == (2, 2, 2) and inner.shape == (2, 4, 4)
    for cam in (default, inner):
        assert np.all(np.isfinite(cam)) and cam.min() >= 0.0 and cam.max() <= 1.0
    np.testing.assert_allclose(grad_cam(model, films, layer="conv_pw_13_relu"), default,
                               atol=1e-6)


def test_a_layer_bypassed_by_a_skip_connection_is_refused() -> None:
    film = keras.Input((S, S, 1))
    pooled = keras.layers.AveragePooling2D(POOL)(film)
    branch = keras.layers.Conv2D(1, 1, name="branch")(pooled)
    encoder = keras.Model(film, keras.layers.Add()([pooled, branch]), name="residual")
    model = attach_encoder(encoder, build_transfer_head((G, G, 1), 2), "residual_model")
    with pytest.raises(BadConfigError, match="skip connection"):
        grad_cam(model, _two_blobs(), layer="branch")


def test_bad_requests_give_one_clear_error() -> None:
    model = _channel_model(np.eye(2))
    with pytest.raises(BadConfigError, match="no layer 'nowhere'"):
        grad_cam(model, _two_blobs(), layer="nowhere")
    with pytest.raises(BadConfigError, match="class_index"):
        grad_cam(model, _two_blobs(), class_index=2)
    with pytest.raises(BadConfigError, match="do not fit"):
        grad_cam(model, np.zeros((1, 32, 32, 1), np.float32))
    with pytest.raises(BadConfigError, match="do not fit"):
        grad_cam(model, np.zeros((0, S, S, 1), np.float32))
    with pytest.raises(BadConfigError, match=r"\[0.0, 255.0\]"):
        grad_cam(model, _two_blobs() / 255.0 - 0.5)
    with pytest.raises(BadConfigError, match="needs an attention output"):
        MODEL_KINDS["attention"].check_outputs(named_outputs(model), 2, "model.keras")
    bare = keras.Sequential([keras.Input((S, S, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(BadConfigError, match="attach_encoder"):
        grad_cam(bare, _two_blobs())


# -- back onto the film ---------------------------------------------------------------------------
def test_to_film_puts_a_grid_cell_where_the_transform_says() -> None:
    """One hot cell on an 8 x 8 grid of a 64 px input cropped from rows 20-179 and columns
    30-149 of a 200 x 160 film: its centre comes back where the transforms send it."""
    transform = Transform.crop((200, 160), 20, 30, 160, 120).then(
        Transform.resize((160, 120), (S, S)))
    grid = np.zeros((8, 8), np.float32)
    grid[5, 2] = 3.0
    on_film = to_film(grid, transform)
    expected = transform.inverse(Transform.resize((8, 8), (S, S)).forward((5.0, 2.0)))
    peak = np.unravel_index(np.argmax(on_film), on_film.shape)
    assert on_film.shape == (200, 160) and on_film.max() == pytest.approx(1.0)
    assert np.hypot(*(np.array(peak) - expected)) <= 1.5
    assert on_film[:19].max() == 0.0 and on_film[:, 151:].max() == 0.0  # outside the crop
    assert np.all(to_film(np.zeros((8, 8)), transform) == 0.0)
    with pytest.raises(BadConfigError, match="64 x 64"):
        to_film(grid, transform, input_size=32)


# -- the other backend ----------------------------------------------------------------------------
_JAX_SCRIPT = """
import json, sys
import keras
import numpy as np
import core.models.attention  # registers the decoder layer for loading
from core.evaluate.heatmaps import grad_cam, scores_and_maps
from core.models.kinds import MODEL_KINDS
folder = sys.argv[1]
channel = keras.models.load_model(f"{folder}/channel.keras", safe_mode=True)
attention = keras.models.load_model(f"{folder}/attention.keras", safe_mode=True)
blobs, noise = np.load(f"{folder}/blobs.npy"), np.load(f"{folder}/noise.npy")
np.savez(f"{folder}/jax.npz", **{
    "channel": grad_cam(channel, blobs), "channel_plus": grad_cam(channel, blobs, plus=True),
    "levels": grad_cam(channel, blobs, class_index=1, layer="levels"),
    "attention": grad_cam(attention, noise),
    "attention_plus": grad_cam(attention, noise, plus=True),
    "glimpses": scores_and_maps(attention, MODEL_KINDS["attention"], noise, 8)[1]})
print(json.dumps(keras.backend.backend()))
"""


def _all_maps(channel: keras.Model, attention: keras.Model, blobs: np.ndarray,
              noise: np.ndarray) -> dict[str, np.ndarray]:
    return {"channel": grad_cam(channel, blobs),
            "channel_plus": grad_cam(channel, blobs, plus=True),
            "levels": grad_cam(channel, blobs, class_index=1, layer="levels"),
            "attention": grad_cam(attention, noise),
            "attention_plus": grad_cam(attention, noise, plus=True),
            "glimpses": scores_and_maps(attention, MODEL_KINDS["attention"], noise, 8)[1]}


@pytest.mark.slow
def test_jax_gives_the_same_heatmaps(tmp_path: Path) -> None:
    channel = _channel_model(np.array([[1.0, 0.0], [1.0, 0.0]]))
    attention = _random_attention_model()
    blobs = _two_blobs()
    noise = np.random.default_rng(2).uniform(0, 255, (3, 32, 32, 1)).astype(np.float32)
    channel.save(tmp_path / "channel.keras")
    attention.save(tmp_path / "attention.keras")
    np.save(tmp_path / "blobs.npy", blobs)
    np.save(tmp_path / "noise.npy", noise)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", _JAX_SCRIPT, str(tmp_path)], env=env, cwd=REPO,
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == "jax"
    on_jax = np.load(tmp_path / "jax.npz")
    on_tf = _all_maps(channel, attention, blobs, noise)
    assert on_tf["attention"].max() > 0  # the comparison is not between two blank maps
    for name, expected in on_tf.items():
        np.testing.assert_allclose(on_jax[name], expected, atol=1e-4, err_msg=name)


def test_heat_view_draws_a_large_film_at_the_display_size() -> None:
    """A film within the display side is drawn exactly as at its own size; a larger one is
    shrunk once and its map taken straight onto the shrunken grid: the same picture as the
    full-size map shrunk, to within a few hundredths, its peak still 1, lesions moved along."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, (600, 400), dtype=np.uint16)
    transform = Transform.crop((600, 400), 100, 50, 400, 300).then(
        Transform.resize((400, 300), (64, 48)))
    grid = np.zeros((8, 6), np.float32)
    grid[2, 4] = 1.0
    lesion = Lesion((300.0, 200.0), 40.0)

    own = heat_view(display_film(pixels, None), grid, transform, [lesion])
    np.testing.assert_array_equal(own.film, display_grey(pixels))
    np.testing.assert_array_equal(own.heat, to_film(grid, transform))
    same = heat_view(display_film(pixels, 600), grid, transform, [lesion])
    np.testing.assert_array_equal(same.film, own.film)
    np.testing.assert_array_equal(same.heat, own.heat)
    assert same.lesions == own.lesions == (lesion,)

    small = heat_view(display_film(pixels, 150), grid, transform, [lesion])
    assert small.film.shape == small.heat.shape == (150, 100)
    np.testing.assert_array_equal(small.film, display_grey(shrink(pixels, 150)))
    assert small.heat.max() == pytest.approx(1.0)
    assert np.abs(small.heat - shrink(own.heat, 150)).max() < 0.05
    (moved,) = small.lesions
    assert moved.center == pytest.approx((74.625, 49.625)) and moved.radius == pytest.approx(10.0)


def test_mean_map_weighs_each_model_the_same_on_the_first_grid() -> None:
    """Maps of other grids are resized onto the first's, each scaled to a peak of 1."""
    from core.evaluate.heatmaps import mean_map

    first = np.zeros((1, 4, 4), np.float32)
    first[0, 0, 0] = 0.25  # a glimpse weight: small, but this model's whole attention
    second = np.zeros((1, 2, 2), np.float32)
    second[0, 1, 1] = 7.0  # Grad-CAM-like scale, on a coarser grid
    mean = mean_map([first, second])
    assert mean.shape == (1, 4, 4) and mean.dtype == np.float32
    assert mean[0, 0, 0] == pytest.approx(0.5)  # 1 from the first, 0 from the second
    assert mean[0, 3, 3] == pytest.approx(0.5)  # the second's corner, resized as to_film does
    assert mean.max() <= 1.0 + 1e-6
    empty = mean_map([np.zeros((1, 4, 4), np.float32), first])
    np.testing.assert_allclose(empty, first / 0.25 / 2)
