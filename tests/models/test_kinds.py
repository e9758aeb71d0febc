"""Model kinds: each family builds, compiles, makes its targets and reads its outputs through
one interface, and refuses a model that is not of its kind."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import BadConfigError
from core.models.attention import attach_encoder, lesion_target
from core.models.kinds import (
    GRAD_CAM,
    MODEL_KINDS,
    OWN_ATTENTION,
    AttentionKind,
    TransferKind,
    model_kind,
    named_outputs,
)
from core.runs.config import MODELS, TrainConfig

FEATURES = (4, 4, 8)
SETTINGS = TrainConfig(dataset="mias", image_size=32, units=8, attention_units=4, steps=2,
                       patch_epochs=0)


def _head_and_model(kind_name: str) -> tuple[keras.Model, keras.Model]:
    image = keras.Input((32, 32, 3))
    encoder = keras.Model(image, keras.layers.Conv2D(8, 8, strides=8)(image), name="enc")
    head = MODEL_KINDS[kind_name].build_head(SETTINGS, FEATURES, 3)
    return head, attach_encoder(encoder, head, name=kind_name)


def test_every_configurable_model_has_a_kind_and_nothing_else_does() -> None:
    assert set(MODEL_KINDS) == set(MODELS)
    assert model_kind("attention").heatmap == OWN_ATTENTION
    assert model_kind("transfer").heatmap == GRAD_CAM
    with pytest.raises(BadConfigError, match="unknown model 'capsule'"):
        model_kind("capsule")


@pytest.mark.parametrize("kind_name", sorted(MODEL_KINDS))
def test_a_kind_trains_on_its_own_targets_and_reads_its_own_outputs(kind_name: str) -> None:
    kind = MODEL_KINDS[kind_name]
    head, model = _head_and_model(kind_name)
    labels = np.array([0, 2, 1, 2])
    lesions = [np.array([[16.0, 16.0, 4.0]], np.float32), *[np.zeros((0, 3), np.float32)] * 3]
    targets = kind.targets(SETTINGS, labels, lesions, 3, FEATURES[:2])
    kind.compile(head, SETTINGS, 1e-3)
    features = np.random.default_rng(0).random((4, *FEATURES), dtype=np.float32)
    head.fit(features, targets, epochs=1, verbose=0)

    output = model.predict_on_batch(np.zeros((4, 32, 32, 3), np.float32))
    probabilities = kind.probabilities(output)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    maps = kind.grid_maps(output)
    if kind_name == "attention":
        assert maps.shape == (4, *FEATURES[:2])
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)
        np.testing.assert_allclose(targets["class"], np.eye(3)[labels])
        np.testing.assert_allclose(targets["attention"][0], lesion_target(
            [[16.0, 16.0]], [4.0], (32, 32), FEATURES[:2]))
        assert not targets["attention"][1:].any()
    else:
        assert maps is None
        np.testing.assert_allclose(targets, np.eye(3)[labels])
    kind.check_outputs(named_outputs(model), 3, "model.keras")


def test_a_kind_refuses_a_model_of_another_kind_or_class_count() -> None:
    _, attention = _head_and_model("attention")
    _, transfer = _head_and_model("transfer")
    with pytest.raises(BadConfigError, match="model.keras: the model has 3 classes, the "
                                             "manifest 7"):
        TransferKind().check_outputs(named_outputs(transfer), 7, "model.keras")
    with pytest.raises(BadConfigError, match="needs an attention output"):
        AttentionKind().check_outputs(named_outputs(transfer), 3, "model.keras")
    TransferKind().check_outputs(named_outputs(attention), 3, "model.keras")  # its class output


def test_the_transfer_kind_applies_the_papers_learn_rate_factors() -> None:
    head, _ = _head_and_model("transfer")
    factored = SETTINGS.with_overrides(model="transfer", weight_lr_factor=10.0,
                                       bias_lr_factor=20.0)
    TransferKind().compile(head, factored, 1e-3)
    assert sorted(head.optimizer.factors.values()) == [10.0, 20.0]


def test_run_names_say_the_decoder_cell_of_an_attention_model() -> None:
    assert AttentionKind().run_label(SETTINGS.with_overrides(cell="gru")) == "attention-gru"
    assert TransferKind().run_label(SETTINGS) == "transfer"
