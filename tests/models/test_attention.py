"""The attention decoder: distributions, cells, lesion targets, losses, learning, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import BadConfigError
from core.models.attention import (
    AttentionLoss,
    GlimpseDecoder,
    attach_encoder,
    attention_maps,
    build_attention_head,
    compile_attention_model,
    doubly_stochastic_penalty,
    encoder_io_shapes,
    lesion_divergence,
    lesion_target,
)
from core.models.optimizers import make_optimizer


def tiny_encoder(size: int = 32, depth: int = 8) -> keras.Model:
    """A stand-in for a pretrained backbone: (size, size, 3) -> (size/4, size/4, depth)."""
    image = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(depth, 3, strides=2, padding="same", activation="relu",
                            name="enc_conv1")(image)
    x = keras.layers.Conv2D(depth, 3, strides=2, padding="same", name="enc_conv2")(x)
    return keras.Model(image, x, name="tiny_encoder")


def build_attention_model(encoder: keras.Model, n_classes: int, **head: object) -> keras.Model:
    """Images -> encoder -> attention head, composed as training composes them."""
    _, feature_shape = encoder_io_shapes(encoder)
    return attach_encoder(encoder, build_attention_head(feature_shape, n_classes, **head),
                          name="attention_model")


def images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def run(model: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Inference without tracing a predict function (much faster for one tiny batch)."""
    return {k: keras.ops.convert_to_numpy(v) for k, v in model(x, training=False).items()}


# -- the decoder ------------------------------------------------------------------------------
def test_attention_is_a_distribution_over_locations_at_every_step() -> None:
    head = build_attention_head((3, 4, 5), n_classes=3, steps=4, units=8, attention_units=6)
    features = np.random.default_rng(1).normal(size=(2, 3, 4, 5)).astype(np.float32)
    out = run(head, features)
    assert out["attention"].shape == (2, 4, 12)
    assert np.all(out["attention"] >= 0)
    np.testing.assert_allclose(out["attention"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["class"].sum(-1), 1.0, atol=1e-5)
    # the steps differ because the state moves on between glimpses
    assert not np.allclose(out["attention"][:, 0], out["attention"][:, 1])
    assert attention_maps(out["attention"], (3, 4)).shape == (2, 4, 3, 4)


@pytest.mark.parametrize("cell, cell_class", [("lstm", keras.layers.LSTMCell),
                                               ("gru", keras.layers.GRUCell),
                                               ("simple", keras.layers.SimpleRNNCell)])
@pytest.mark.parametrize("steps", [1, 3])
def test_each_cell_builds_and_runs_for_any_number_of_steps(cell: str, cell_class: type,
                                                           steps: int) -> None:
    model = build_attention_model(tiny_encoder(), n_classes=4, steps=steps, cell=cell, units=8,
                                  attention_units=4)
    out = run(model, images(3))
    assert out["class"].shape == (3, 4)
    assert out["attention"].shape == (3, steps, 64)
    decoder = next(layer for layer in model.get_layer("attention_head").layers
                   if isinstance(layer, GlimpseDecoder))
    assert isinstance(decoder.cell, cell_class)


def test_bad_decoder_settings_are_config_errors() -> None:
    with pytest.raises(BadConfigError, match="cell"):
        build_attention_head((2, 2, 4), 2, cell="transformer")
    with pytest.raises(BadConfigError, match="steps"):
        build_attention_head((2, 2, 4), 2, steps=0)
    with pytest.raises(BadConfigError, match="feature_shape"):
        build_attention_head((4, 4), 2)


def test_a_head_trained_on_cached_features_is_the_image_models_head() -> None:
    encoder = tiny_encoder()
    head = build_attention_head((8, 8, 8), n_classes=2, steps=2, units=8, attention_units=4)
    model = attach_encoder(encoder, head, name="joined")
    x = images(2)
    via_head, via_model = run(head, keras.ops.convert_to_numpy(encoder(x))), run(model, x)
    for key in ("class", "attention"):
        np.testing.assert_allclose(via_model[key], via_head[key], rtol=1e-5, atol=1e-6)


# -- lesion targets ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gaussian", "disk"])
def test_lesion_target_puts_its_mass_on_the_lesions_grid_cell(kind: str) -> None:
    # 64 px input, 4 x 4 grid: each cell is 16 px, so pixel (8, 40) lies in cell (0, 2)
    target = lesion_target([(8, 40)], [6], (64, 64), (4, 4), kind=kind)
    assert target.shape == (4, 4)
    assert target.sum() == pytest.approx(1.0)
    assert np.unravel_index(target.argmax(), target.shape) == (0, 2)
    assert target[0, 2] > 0.5


def test_lesion_target_spreads_with_the_radius_and_shares_mass_between_lesions() -> None:
    small = lesion_target([(32, 32)], [2], (64, 64), (8, 8))
    large = lesion_target([(32, 32)], [24], (64, 64), (8, 8))
    assert large.max() < small.max()
    assert (large > 1e-3).sum() > (small > 1e-3).sum()
    two = lesion_target([(4, 4), (60, 60)], 2, (64, 64), (8, 8))
    assert two[:4, :4].sum() == pytest.approx(0.5, abs=1e-3)
    assert two[4:, 4:].sum() == pytest.approx(0.5, abs=1e-3)


def test_lesion_target_is_zero_without_a_lesion_in_view() -> None:
    assert not lesion_target(np.empty((0, 2)), [], (64, 64), (4, 4)).any()
    assert not lesion_target([(-30, 10)], [5], (64, 64), (4, 4)).any()  # shifted out of view
    with pytest.raises(BadConfigError, match="radii"):
        lesion_target([(1, 1), (2, 2)], [1, 2, 3], (64, 64), (4, 4))
    with pytest.raises(BadConfigError, match="kind"):
        lesion_target([(1, 1)], [1], (64, 64), (4, 4), kind="square")


def test_lesion_target_accepts_an_unknown_radius() -> None:
    target = lesion_target([(40, 8)], [None], (64, 64), (4, 4), kind="disk")
    assert target[2, 0] == pytest.approx(1.0)


# -- losses -----------------------------------------------------------------------------------
def _alpha(batch: int = 3, steps: int = 2, locations: int = 16, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(batch, steps, locations))
    return (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)


def test_supervision_is_zero_for_an_all_zero_target_and_positive_otherwise() -> None:
    alpha = _alpha()
    target = np.zeros((3, 4, 4), np.float32)
    target[1, 2, 3] = 1.0
    per_film = keras.ops.convert_to_numpy(lesion_divergence(target, alpha))
    assert per_film[0] == 0.0 and per_film[2] == 0.0
    assert per_film[1] > 0.0
    loss = AttentionLoss(supervision=2.0)
    assert float(loss(np.zeros_like(target), alpha)) == 0.0
    assert float(loss(target, alpha)) == pytest.approx(2.0 * per_film[1] / 3, rel=1e-5)


def test_kl_vanishes_when_attention_matches_the_target_and_cross_entropy_adds_its_entropy() -> None:
    target = lesion_target([(20, 20)], [16], (64, 64), (4, 4))[None]
    alpha = np.repeat(target.reshape(1, 1, 16), 3, axis=1)
    kl = keras.ops.convert_to_numpy(lesion_divergence(target, alpha, "kl"))
    ce = keras.ops.convert_to_numpy(lesion_divergence(target, alpha, "cross_entropy"))
    p = target.ravel()[target.ravel() > 0]
    assert kl[0] == pytest.approx(0.0, abs=1e-5)
    assert ce[0] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-4)


def test_doubly_stochastic_penalty_is_zero_when_every_location_gets_attention_once() -> None:
    covered = np.eye(4, dtype=np.float32)[None]  # T = L = 4, step t looks at location t
    stuck = np.tile(np.eye(4, dtype=np.float32)[:1], (4, 1))[None]  # every step on location 0
    assert float(doubly_stochastic_penalty(covered)[0]) == pytest.approx(0.0)
    assert float(doubly_stochastic_penalty(stuck)[0]) == pytest.approx(((1 - 4) ** 2 + 3) / 4)
    loss = AttentionLoss(supervision=0.0, regularization=0.5)
    assert float(loss(np.zeros((1, 2, 2)), stuck)) == pytest.approx(0.5 * 3.0)


def test_a_film_without_a_lesion_adds_nothing_to_the_attention_loss_in_training() -> None:
    head = build_attention_head((4, 4, 8), 2, steps=2, units=8, attention_units=4)
    compile_attention_model(head, "sgd", supervision=1.0, jit_compile=False)
    features = np.random.default_rng(0).normal(size=(4, 4, 4, 8)).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    logs = head.evaluate(features, {"class": labels, "attention": np.zeros((4, 4, 4))},
                         verbose=0, return_dict=True)
    assert logs["attention_loss"] == 0.0
    assert logs["class_loss"] > 0.0


@pytest.mark.parametrize("class_loss", ["categorical", "sparse", "mse"])
def test_each_class_loss_trains(class_loss: str) -> None:
    head = build_attention_head((2, 2, 4), 3, steps=2, units=4, attention_units=4)
    compile_attention_model(head, "adam", class_loss=class_loss, regularization=0.1,
                            jit_compile=False)
    ids = np.array([0, 1, 2, 1])
    labels = ids if class_loss == "sparse" else np.eye(3, dtype=np.float32)[ids]
    features = np.random.default_rng(0).normal(size=(4, 2, 2, 4)).astype(np.float32)
    history = head.fit(features, {"class": labels, "attention": np.zeros((4, 2, 2))}, epochs=2,
                       verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    with pytest.raises(BadConfigError, match="class_loss"):
        compile_attention_model(head, "adam", class_loss="hinge")


# -- learning ---------------------------------------------------------------------------------
GRID, DEPTH = (4, 4), 8


def _two_pattern_films(n: int, rng: np.random.Generator, lesion: np.ndarray,
                       distractor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise features with a lesion pattern at one location and a distractor at another."""
    locations = GRID[0] * GRID[1]
    features = rng.normal(0.0, 0.3, (n, locations, DEPTH)).astype(np.float32)
    where = rng.integers(0, locations, n)
    other = (where + rng.integers(1, locations, n)) % locations
    features[np.arange(n), where] += lesion
    features[np.arange(n), other] += distractor
    targets = np.zeros((n, locations), np.float32)
    targets[np.arange(n), where] = 1.0
    labels = np.eye(2, dtype=np.float32)[(where < locations // 2).astype(int)]
    return features.reshape(n, *GRID, DEPTH), labels, targets.reshape(n, *GRID)


def _hit_rate(head: keras.Model, films: np.ndarray, truth: np.ndarray) -> float:
    """How often the mean attention over steps peaks on the lesion's cell."""
    attention = head.predict(films, verbose=0)["attention"].mean(axis=1)
    return float(np.mean(attention.argmax(-1) == truth))


@pytest.mark.slow
def test_lesion_supervision_teaches_attention_to_find_the_lesion() -> None:
    """Two equally strong patterns per film; the targets name one of them. Run once with
    each pattern as "the lesion" from the same initial weights: an untrained decoder can
    prefer at most one of them, so at least one run starts far off, and both must end on
    the lesion for held-out films."""
    rng = np.random.default_rng(0)
    a, b = (v * 2.0 / np.linalg.norm(v) for v in rng.normal(size=(2, DEPTH)).astype(np.float32))
    results = []
    for lesion, distractor in ((a, b), (b, a)):
        data_rng = np.random.default_rng(1)
        features, labels, targets = _two_pattern_films(128, data_rng, lesion, distractor)
        test_x, _, test_t = _two_pattern_films(64, data_rng, lesion, distractor)
        truth = test_t.reshape(64, -1).argmax(-1)
        keras.utils.set_random_seed(0)
        head = build_attention_head((*GRID, DEPTH), 2, steps=2, units=16, attention_units=16)
        before = _hit_rate(head, test_x, truth)
        compile_attention_model(head, make_optimizer("adam", 0.01), supervision=1.0,
                                jit_compile=False)
        head.fit(features, {"class": labels, "attention": targets}, batch_size=32, epochs=15,
                 verbose=0)
        results.append((before, _hit_rate(head, test_x, truth)))
    assert min(before for before, _ in results) <= 0.5, results
    assert all(after >= 0.9 for _, after in results), results


# -- saving -----------------------------------------------------------------------------------
def test_save_and_load_gives_identical_predictions_for_both_outputs(tmp_path) -> None:
    model = build_attention_model(tiny_encoder(), n_classes=3, steps=3, cell="lstm", units=8,
                                  attention_units=4, dropout=0.3)
    compile_attention_model(model, make_optimizer("adam", 1e-3, factors={"class/kernel": 2.0}),
                            regularization=0.01, jit_compile=False)
    x = images(4, seed=3)
    targets = np.stack([lesion_target([(10, 20)], [4], (32, 32), (8, 8))] * 4)
    model.fit(x, {"class": np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], "attention": targets},
              epochs=1, verbose=0)
    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    before, after = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for key in ("class", "attention"):
        np.testing.assert_array_equal(after[key], before[key])
    assert loaded.optimizer.factors == {"class/kernel": 2.0}
    assert loaded.loss["attention"].get_config()["regularization"] == 0.01
