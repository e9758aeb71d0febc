"""Both breasts in one model (core.models.pairs): the stacking convention, the fusion the
decoder reads, and the film model saved and loaded safely."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from core.errors import BadConfigError
from core.models.attention import attach_encoder, build_attention_head
from core.models.pairs import (
    fused_shape,
    head_of,
    pair_model,
    pair_parts,
    reads_pairs,
    stack_pair,
)


def test_stack_pair_puts_the_film_first() -> None:
    own, other = np.zeros((3, 8, 8), np.uint8), np.full((3, 8, 8), 7, np.uint8)
    films = stack_pair(own, other, films=True)
    assert films.shape == (3, 8, 8, 2) and films[..., 0].max() == 0 and films[..., 1].min() == 7
    features = stack_pair(np.ones((2, 4, 4, 5)), np.zeros((2, 4, 4, 5)), films=False)
    assert features.shape == (2, 4, 4, 10) and features[..., :5].min() == 1
    with pytest.raises(BadConfigError, match="cannot be paired"):
        stack_pair(own, other[:2], films=True)


def test_the_head_reads_the_film_beside_its_difference_from_the_other_breast() -> None:
    head = build_attention_head(fused_shape((4, 4, 3)), n_classes=2, steps=2, units=8,
                                attention_units=4)
    trainer = pair_model(None, head, name="pairs")
    assert head_of(trainer) is head
    rng = np.random.default_rng(0)
    own, other = rng.random((2, 4, 4, 3), np.float32), rng.random((2, 4, 4, 3), np.float32)
    got = trainer.predict_on_batch(stack_pair(own, other, films=False))
    fused = np.concatenate([own, own - other], axis=-1)
    expected = head.predict_on_batch(fused)
    np.testing.assert_allclose(got["class"], expected["class"], atol=1e-6)
    assert got["attention"].shape == (2, 2, 16)  # on the film's own 4 x 4 grid


def _encoder() -> keras.Model:
    """A small film encoder with random weights that keep its features alive (an untrained
    MobileNet's are all zero here, which no pairing could change)."""
    films = keras.Input(shape=(64, 64, 1), name="film")
    features = keras.layers.Conv2D(6, 8, strides=8, activation="tanh",
                                   kernel_initializer=keras.initializers.RandomNormal(0, 0.05,
                                                                                       seed=0),
                                   name="conv")(films)
    return keras.Model(films, features, name="tiny_encoder")


def _film_model() -> keras.Model:
    encoder = _encoder()
    head = build_attention_head(fused_shape(tuple(encoder.output.shape[1:])), n_classes=3,
                                steps=2, units=8, attention_units=4)
    return pair_model(encoder, head, name="attention_pairs")


def test_the_film_model_takes_pairs_and_the_other_breast_changes_the_answer(
        tmp_path: Path) -> None:
    model = _film_model()
    assert reads_pairs(model) and tuple(model.inputs[0].shape[1:]) == (64, 64, 2)
    encoder, _ = pair_parts(model)
    assert encoder.name == "tiny_encoder"
    rng = np.random.default_rng(1)
    films = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    others = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    alone = model.predict_on_batch(stack_pair(films, films, films=True).astype(np.float32))
    paired = model.predict_on_batch(stack_pair(films, others, films=True).astype(np.float32))
    assert not np.allclose(alone["class"], paired["class"])
    path = tmp_path / "pairs.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    again = loaded.predict_on_batch(stack_pair(films, others, films=True).astype(np.float32))
    np.testing.assert_allclose(again["class"], paired["class"], atol=1e-5)
    np.testing.assert_allclose(again["attention"], paired["attention"], atol=1e-5)


def test_a_single_film_model_is_no_pair_model() -> None:
    encoder = _encoder()
    head = build_attention_head(tuple(encoder.output.shape[1:]), n_classes=3, steps=2,
                                units=8, attention_units=4)
    single = attach_encoder(encoder, head, name="single")
    assert not reads_pairs(single)
    with pytest.raises(BadConfigError, match="not a pair"):
        pair_parts(single)
