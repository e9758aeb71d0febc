"""The transfer-learning classifier: its head, MATLAB's L2 factor, factors, saving, unfreezing."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import BadConfigError
from core.models.attention import attach_encoder, encoder_io_shapes
from core.models.optimizers import make_optimizer
from core.models.transfer import (
    MATLAB_L2,
    build_transfer_head,
    head_factors,
    unfreeze_top,
)


def tiny_encoder() -> keras.Model:
    """conv, BN, conv, BN, then a nested block (conv, BN): (32, 32, 3) -> (8, 8, 6)."""
    block_in = keras.Input((8, 8, 6))
    y = keras.layers.Conv2D(6, 1, name="block_conv")(block_in)
    y = keras.layers.BatchNormalization(name="block_bn")(y)
    block = keras.Model(block_in, y, name="block")
    image = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv1")(image)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Activation("relu", name="relu1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    return keras.Model(image, block(x), name="tiny_encoder")


def build_transfer_model(encoder: keras.Model, n_classes: int, **head: object) -> keras.Model:
    """Images -> encoder -> transfer head, composed as training composes them."""
    _, feature_shape = encoder_io_shapes(encoder)
    return attach_encoder(encoder, build_transfer_head(feature_shape, n_classes, **head),
                          name="transfer_model")


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 32, 32, 3), dtype=np.float32)


def test_transfer_model_ends_in_a_softmax_head_with_matlabs_l2() -> None:
    model = build_transfer_model(tiny_encoder(), n_classes=2, dropout=0.5, l2_factor=10)
    probs = keras.ops.convert_to_numpy(model(images(3), training=False))
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    head = model.get_layer("transfer_head").get_layer("head")
    # MATLAB adds L2Regularization * L2Factor * (1/2) * sum(w^2); Keras's L2(c) adds c * sum(w^2)
    assert head.kernel_regularizer.l2 == pytest.approx(10 * MATLAB_L2 / 2)
    assert head.bias_regularizer is None
    assert [v.path for v in head.trainable_variables] == ["head/kernel", "head/bias"]


def test_l2_factor_scales_the_regularisation_loss_proportionally() -> None:
    losses = {}
    for factor in (1.0, 5.0, 0.0):
        keras.utils.set_random_seed(0)
        head = build_transfer_head((8, 8, 6), n_classes=2, l2_factor=factor)
        kernel = head.get_layer("head").kernel.numpy()
        losses[factor] = float(sum(keras.ops.convert_to_numpy(loss) for loss in head.losses))
        assert losses[factor] == pytest.approx(factor * MATLAB_L2 / 2 * np.sum(kernel**2),
                                               rel=1e-5)
    assert losses[1.0] > 0
    assert losses[5.0] == pytest.approx(5 * losses[1.0], rel=1e-5)
    assert losses[0.0] == 0.0


def test_head_works_on_pooled_features_too() -> None:
    head = build_transfer_head((6,), n_classes=3)
    assert keras.ops.convert_to_numpy(head(np.ones((2, 6), np.float32))).shape == (2, 3)
    with pytest.raises(BadConfigError, match="feature_shape"):
        build_transfer_head((4, 6), n_classes=3)
    with pytest.raises(BadConfigError, match="n_classes"):
        build_transfer_head((6,), n_classes=1)


def test_head_factors_name_the_head_variables_for_the_optimizer() -> None:
    assert head_factors(15, 20) == {"head/kernel": 15.0, "head/bias": 20.0}
    model = build_transfer_model(tiny_encoder(), n_classes=2, head_name="fc.new")
    optimizer = make_optimizer("sgd", 1e-4, factors=head_factors(15, 20, head_name="fc.new"))
    optimizer.build(model.trainable_variables)
    head = model.get_layer("transfer_head").get_layer("fc.new")
    assert optimizer.factor_of(head.kernel) == 15.0
    assert optimizer.factor_of(head.bias) == 20.0
    conv = model.get_layer("tiny_encoder").get_layer("conv1")
    assert optimizer.factor_of(conv.kernel) == 1.0


def test_save_and_load_gives_identical_predictions(tmp_path) -> None:
    model = build_transfer_model(tiny_encoder(), n_classes=2, dropout=0.2, l2_factor=5)
    model.compile(make_optimizer("sgd", 0.01, factors=head_factors(20, 30)),
                  loss="categorical_crossentropy", jit_compile=False)
    x = images(4, seed=1)
    model.fit(x, np.eye(2, dtype=np.float32)[[0, 1, 1, 0]], epochs=1, verbose=0)
    path = tmp_path / "transfer.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.factors == head_factors(20, 30)
    head = loaded.get_layer("transfer_head").get_layer("head")
    assert head.kernel_regularizer.l2 == pytest.approx(5 * MATLAB_L2 / 2)


def _trainable_layers(model: keras.Model) -> set[str]:
    return {v.path.split("/")[0] for v in model.trainable_variables}


def test_unfreeze_top_trains_only_the_top_layers_and_never_batchnorm() -> None:
    encoder = tiny_encoder()
    assert unfreeze_top(encoder, n_layers=2) == ["conv2", "block_conv"]
    assert _trainable_layers(encoder) == {"conv2", "block_conv"}
    assert unfreeze_top(encoder, from_layer="relu1") == ["conv2", "block_conv"]
    assert unfreeze_top(encoder, n_layers=3) == ["conv1", "conv2", "block_conv"]
    assert not encoder.get_layer("bn1").trainable
    assert unfreeze_top(encoder, n_layers=0) == []
    assert encoder.trainable_variables == []
    with pytest.raises(BadConfigError, match="n_layers"):
        unfreeze_top(encoder, n_layers=4)
    with pytest.raises(BadConfigError, match="no layer"):
        unfreeze_top(encoder, from_layer="conv9")
    with pytest.raises(BadConfigError, match="exactly one"):
        unfreeze_top(encoder)


def test_frozen_batchnorm_runs_in_inference_mode_while_fine_tuning() -> None:
    encoder = tiny_encoder()
    unfreeze_top(encoder, n_layers=3)
    x = images(4) * 5.0 + 3.0  # far from the BN's initial moving statistics
    bn = encoder.get_layer("bn1")
    mean_before = bn.moving_mean.numpy().copy()
    training = keras.ops.convert_to_numpy(encoder(x, training=True))
    inference = keras.ops.convert_to_numpy(encoder(x, training=False))
    np.testing.assert_array_equal(bn.moving_mean.numpy(), mean_before)
    np.testing.assert_allclose(training, inference, rtol=1e-6, atol=1e-6)
    # and the same call with BN left trainable would have used batch statistics
    encoder.get_layer("bn1").trainable = True
    encoder.get_layer("bn2").trainable = True
    encoder.get_layer("block").get_layer("block_bn").trainable = True
    batch_stats = keras.ops.convert_to_numpy(encoder(x, training=True))
    assert not np.allclose(batch_stats, inference, atol=1e-3)


def test_a_registry_backbone_feeds_both_heads() -> None:
    """One integration check against the real registry: MobileNet (width 0.25, random
    weights) at 64 px gives a 2 x 2 map that the attention decoder and the transfer head
    both take, and its BatchNorm layers stay frozen when the top is unfrozen."""
    from core.models.attention import build_attention_head
    from core.models.backbones import build_backbone

    backbone = build_backbone("mobilenet_025", image_size=64, weights="none")
    rows, cols = backbone.model.output.shape[1:3]
    x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32) * 255
    _, feature_shape = encoder_io_shapes(backbone.model)
    decoder = build_attention_head(feature_shape, n_classes=7, steps=2, units=8,
                                   attention_units=4)
    attention = attach_encoder(backbone.model, decoder, "attention")(backbone.preprocess(x))
    assert tuple(attention["attention"].shape) == (2, 2, rows * cols)
    transfer = build_transfer_model(backbone.model, n_classes=2)
    assert tuple(transfer(backbone.preprocess(x)).shape) == (2, 2)
    unfrozen = unfreeze_top(backbone.model, n_layers=2)
    assert unfrozen == ["conv_dw_13", "conv_pw_13"]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
                   for layer in backbone.model.layers)
