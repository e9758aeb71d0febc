"""Cutting an encoder below its trainable layers: the same function, the same training."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.models.attention import attach_encoder
from core.models.backbones import build_backbone, film_encoder
from core.models.cut import frozen_bottom
from core.models.transfer import build_transfer_head, unfreeze_top

SIZE = 64


def _encoder(name: str = "mobilenet_v2", seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return film_encoder(build_backbone(name, SIZE, "none"))


def _films(n: int = 6) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (n, SIZE, SIZE, 1)).astype(np.float32)


def test_the_two_pieces_compute_the_encoder_and_only_the_top_trains() -> None:
    encoder = _encoder()
    unfreeze_top(encoder, n_layers=2)  # block_13_expand and block_12_project
    # block_12 is a residual block: the skip from block_11_add goes around any cut inside it
    _assert_exact_cut(encoder, "block_11_add")


def _assert_exact_cut(encoder, cut: str) -> None:
    """The encoder is cut right after ``cut``: the bottom holds nothing trainable, the top
    holds all that trains, and the two pieces compute the encoder exactly."""
    bottom, top = frozen_bottom(encoder)
    assert bottom.layers[-1].layers[-1].name == cut
    assert not bottom.trainable_weights
    assert {v.path for v in top.trainable_weights} == \
        {v.path for v in encoder.trainable_weights}
    films = _films()
    np.testing.assert_array_equal(top.predict_on_batch(bottom.predict_on_batch(films)),
                                  encoder.predict_on_batch(films))


def test_no_cut_when_nothing_or_everything_trains() -> None:
    encoder = _encoder("mobilenet_025")
    unfreeze_top(encoder, n_layers=0)
    assert frozen_bottom(encoder) is None
    encoder.trainable = True
    for layer in encoder.layers:
        layer.trainable = True
    assert frozen_bottom(encoder) is None


@pytest.mark.parametrize("noise", [True, False])
def test_no_cut_below_a_layer_that_draws_noise_while_training(noise: bool) -> None:
    films = keras.Input(shape=(SIZE, SIZE, 1))
    x = keras.layers.Conv2D(4, 3, trainable=False)(films)
    if noise:
        x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Conv2D(4, 3, trainable=False)(x)
    encoder = keras.Model(films, keras.layers.Conv2D(4, 3, name="top")(x))
    assert (frozen_bottom(encoder) is None) == noise


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_025"])
def test_training_the_top_on_the_bottoms_output_trains_the_same_weights(name: str) -> None:
    films = _films(8)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 0, 1]]

    def model() -> tuple[keras.Model, keras.Model, keras.Model]:
        encoder = _encoder(name)
        keras.utils.set_random_seed(2)
        head = build_transfer_head(tuple(encoder.output.shape[1:]), 3)
        unfreeze_top(encoder, n_layers=3)
        return encoder, head, attach_encoder(encoder, head, "whole")

    _, _, whole = model()
    whole.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    whole.fit(films, labels, batch_size=4, epochs=2, shuffle=False, verbose=0)

    encoder, head, cut_model = model()
    bottom, top = frozen_bottom(encoder)
    activations = keras.Input(shape=tuple(bottom.output.shape[1:]))
    trainer = keras.Model(activations, head(top(activations)))
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    trainer.fit(bottom.predict_on_batch(films), labels, batch_size=4, epochs=2, shuffle=False,
                verbose=0)

    changed = [not np.allclose(a, b) for a, b in zip(whole.get_weights(), model()[2].get_weights())]
    assert any(changed)  # training moved the weights ...
    for trained, expected in zip(cut_model.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(trained, expected, rtol=1e-4, atol=1e-6)  # ... the same way


@pytest.mark.parametrize("name, n_layers, cut", [
    # block6a_expand_conv and block5c_project_conv train; block5c is residual, so the cut
    # goes below it, after block5b's skip connection has joined.
    ("efficientnet_lite0", 2, "block5b_add"),
    # block6a_expand_conv alone: the cut is right below it, the output of stage 5 (four
    # blocks in Lite2).
    ("efficientnet_lite2", 1, "block5d_add"),
])
def test_efficientnet_lite_encoders_cut_between_blocks(name: str, n_layers: int,
                                                        cut: str) -> None:
    encoder = _encoder(name)
    unfreeze_top(encoder, n_layers=n_layers)
    _assert_exact_cut(encoder, cut)
