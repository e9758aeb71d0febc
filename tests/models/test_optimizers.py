"""Learn-rate factors are true multipliers of the step size, on TensorFlow and on JAX."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import REPO
from core.errors import BadConfigError
from core.models.optimizers import FactorAdam, FactorAdamW, FactorSGD, make_optimizer

# One step of a tiny two-layer model with head factors (weight W, bias B) against the same
# step with factor 1: the head must move W (resp. B) times as far and the body identically.
# Written as a script so that the very same check runs in a JAX subprocess.
STEP_CHECK = r'''
import json
import keras
import numpy as np
from core.models.optimizers import make_optimizer

def one_step(name, momentum, factors):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, activation="tanh", name="body")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(hidden))
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    model.compile(make_optimizer(name, 0.01, momentum, factors=factors), loss="mse",
                  jit_compile=False)
    x = np.random.default_rng(0).random((8, 4), dtype=np.float32)
    y = np.random.default_rng(1).random((8, 2), dtype=np.float32)
    model.train_on_batch(x, y)
    return {v.path: v.numpy() - before[v.path]
            for v in model.trainable_variables}

def ratios(name, momentum, weight, bias):
    base = one_step(name, momentum, None)
    scaled = one_step(name, momentum, {"head/kernel": weight, "head/bias": bias})
    return {path: float(np.abs(scaled[path]).sum() / np.abs(base[path]).sum())
            for path in base} | {"max_abs_body_difference": float(max(
                np.abs(scaled[p] - base[p]).max() for p in ("body/kernel", "body/bias")))}

CASES = [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.9), ("adamw", 0.9)]
'''


CHECK: dict = {}
exec(STEP_CHECK, CHECK)  # noqa: S102 - our own constant, the same text the JAX run executes


def _assert_factor_ratios(result: dict, weight: float, bias: float) -> None:
    assert result["head/kernel"] == pytest.approx(weight, rel=1e-4)
    assert result["head/bias"] == pytest.approx(bias, rel=1e-4)
    assert result["body/kernel"] == pytest.approx(1.0, rel=1e-6)
    assert result["body/bias"] == pytest.approx(1.0, rel=1e-6)
    assert result["max_abs_body_difference"] < 1e-7


@pytest.mark.parametrize("name, momentum", [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.9),
                                            ("adamw", 0.9)])
def test_head_factors_multiply_the_heads_step_and_leave_the_rest_alone(name: str,
                                                                       momentum: float) -> None:
    result = CHECK["ratios"](name, momentum, 5.0, 7.0)
    _assert_factor_ratios(result, 5.0, 7.0)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_factor_zero_freezes_a_variable(name: str) -> None:
    result = CHECK["ratios"](name, 0.9, 0.0, 0.0)
    assert result["head/kernel"] == 0.0 and result["head/bias"] == 0.0
    assert result["body/kernel"] == pytest.approx(1.0, rel=1e-6)


@pytest.mark.slow
def test_the_same_ratios_hold_under_jax() -> None:
    script = STEP_CHECK + (
        "print(json.dumps({f'{n}{m}': ratios(n, m, 5.0, 7.0) for n, m in CASES}"
        " | {'frozen': ratios('adam', 0.9, 0.0, 0.0), 'backend': keras.backend.backend()}))")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.pop("backend") == "jax"
    frozen = result.pop("frozen")
    assert frozen["head/kernel"] == 0.0 and frozen["body/kernel"] == pytest.approx(1.0)
    assert set(result) == {"sgd0.0", "sgd0.9", "adam0.9", "adamw0.9"}
    for ratios in result.values():
        _assert_factor_ratios(ratios, 5.0, 7.0)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_factors_hold_over_several_steps_of_momentum_and_moments(name: str) -> None:
    """With constant gradients every step is linear in the learning rate, so a variable with
    factor 0.5 has moved exactly half as far after each of several steps. Gradient scaling
    would fail this for Adam, whose step does not depend on the gradient's scale."""
    slow, fast = keras.Variable(np.zeros(3, np.float32), name="slow"), \
        keras.Variable(np.zeros(3, np.float32), name="fast")
    optimizer = make_optimizer(name, 0.1, 0.9, factors={slow.path: 0.5})
    gradients = [np.array([1.0, -2.0, 0.5], np.float32)] * 2
    for _ in range(4):
        optimizer.apply(gradients, [slow, fast])
        np.testing.assert_allclose(slow.numpy(),
                                   0.5 * fast.numpy(), rtol=1e-5)
    assert optimizer.factor_of(slow) == 0.5 and optimizer.factor_of(fast) == 1.0
    assert np.abs(fast.numpy()).min() > 0


@pytest.mark.parametrize("name, cls", [("sgd", FactorSGD), ("adam", FactorAdam),
                                       ("adamw", FactorAdamW)])
def test_optimizer_with_factors_round_trips_through_its_config(name: str, cls: type) -> None:
    factors = {"head/kernel": 20.0, "head/bias": 30.0}
    optimizer = make_optimizer(name, 0.003, 0.8, factors=factors)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is cls
    assert restored.factors == factors
    assert restored.get_config() == optimizer.get_config()
    if name == "sgd":
        assert restored.momentum == 0.8


def test_factor_mistakes_are_config_errors() -> None:
    with pytest.raises(BadConfigError, match="finite number >= 0"):
        make_optimizer("sgd", 0.01, factors={"head/kernel": -1})
    with pytest.raises(BadConfigError, match="regular expression"):
        make_optimizer("sgd", 0.01, factors={"head/(kernel": 2})
    with pytest.raises(BadConfigError, match="optimizer must be one of"):
        make_optimizer("rmsprop", 0.01)
    with pytest.raises(BadConfigError, match="learning_rate"):
        make_optimizer("adam", 0.0)
    variable = keras.Variable(np.zeros(2, np.float32), name="kernel")
    typo = make_optimizer("sgd", 0.01, factors={"haed/kernel": 2.0})
    with pytest.raises(BadConfigError, match="match no trainable variable"):
        typo.build([variable])
    clash = make_optimizer("sgd", 0.01, factors={variable.path: 2.0, ".*": 3.0})
    with pytest.raises(BadConfigError, match="different factors"):
        clash.build([variable])
