"""The second paper's knobs: MATLAB-style learn-rate factors on chosen variables.

MATLAB's ``WeightLearnRateFactor`` and ``BiasLearnRateFactor`` multiply the global learning
rate for one layer's weights and biases. They are *not* gradient scaling: Adam divides the
gradient by its own running magnitude, so a scaled gradient moves a variable exactly as far
as the unscaled one, and a true factor must act on the step size itself.

How it hooks in: Keras calls ``update_step(gradient, variable, learning_rate)`` once per
variable on every backend -- from ``BaseOptimizer._backend_update_step`` (JAX, also inside
``stateless_apply``, which the JAX trainer uses) and from the TensorFlow optimizer's
``_distributed_tf_update_step``. We override it to multiply ``learning_rate`` by the
variable's factor before the stock SGD/Adam/AdamW update runs. On TensorFlow that method
receives the raw ``tf.Variable`` rather than the Keras variable, so factors are looked up by
the optimizer's own variable index (``_get_variable_index`` handles both), resolved once in
``build`` from each Keras variable's ``path`` (e.g. ``"head/kernel"``).

Decoupled weight decay (AdamW, or ``weight_decay`` on SGD/Adam) uses the same effective rate,
so a factor of 0 freezes a variable completely: it is neither stepped nor decayed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from core.errors import BadConfigError

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")


def _validated(factors: Mapping[str, float] | None) -> tuple[tuple[str, float], ...]:
    items = []
    for pattern, value in dict(factors or {}).items():
        if not isinstance(pattern, str):
            raise BadConfigError(f"learn-rate factor keys must be variable path patterns, "
                                 f"got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as error:
            raise BadConfigError(f"learn-rate factor pattern {pattern!r} is not a valid regular "
                                 f"expression: {error}") from error
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise BadConfigError(f"learn-rate factor for {pattern!r} must be a finite number "
                                 f">= 0, got {value!r}")
        items.append((pattern, number))
    return tuple(items)


class _LearnRateFactors:
    """Mixin for a Keras optimizer: per-variable multipliers of its learning rate.

    ``factors`` maps variable path patterns (regular expressions matched against the whole
    ``variable.path``, as Keras's own ``OptimizerMap`` does; a plain path such as
    ``"head/kernel"`` matches itself) to factors; unmatched variables get 1.0. A variable
    matched by patterns with different factors, or a pattern that matches no trainable
    variable (a typo, or a frozen layer), is a configuration error raised at ``build``.
    """

    def _set_factors(self, factors: Mapping[str, float] | None) -> None:
        self._factor_items = _validated(factors)
        self._factor_by_index: tuple[float, ...] | None = None

    @property
    def factors(self) -> dict[str, float]:
        return dict(self._factor_items)

    def build(self, variables: list[Any]) -> None:
        super().build(variables)
        if self._factor_by_index is None:
            self._factor_by_index = self._resolve(variables)

    def _resolve(self, variables: list[Any]) -> tuple[float, ...]:
        used: set[str] = set()
        resolved = []
        for variable in variables:
            hits = {pattern: value for pattern, value in self._factor_items
                    if re.fullmatch(pattern, variable.path)}
            if len(set(hits.values())) > 1:
                raise BadConfigError(f"variable {variable.path!r} matches learn-rate factor "
                                     f"patterns with different factors: {hits}")
            used.update(hits)
            resolved.append(next(iter(hits.values()), 1.0))
        unused = [pattern for pattern, _ in self._factor_items if pattern not in used]
        if unused:
            paths = ", ".join(v.path for v in variables[:12])
            raise BadConfigError(f"learn-rate factor pattern(s) {unused} match no trainable "
                                 f"variable (trainable paths include: {paths})")
        return tuple(resolved)

    def factor_of(self, variable: Any) -> float:
        """The factor applied to ``variable`` (once the optimizer is built)."""
        if self._factor_by_index is None:
            raise BadConfigError("the optimizer is not built yet: factors are resolved against "
                                 "the variables it is built with")
        return self._factor_by_index[self._get_variable_index(variable)]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        factor = self.factor_of(variable)
        if factor == 0.0:
            return  # frozen: no step, and no optimizer state (momentum, moments) accrues
        if factor != 1.0:
            learning_rate = ops.multiply(ops.cast(learning_rate, variable.dtype),
                                         ops.cast(factor, variable.dtype))
        super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables: list[Any]) -> None:
        # Backend-neutral replacement of Keras's version (the TensorFlow one routes through
        # tf.distribute, which we do not use) so that decay follows the factor too.
        if self.weight_decay is None:
            return
        for variable in variables:
            factor = self.factor_of(variable)
            if factor == 0.0 or not self._use_weight_decay(variable):
                continue
            rate = ops.cast(self.learning_rate, variable.dtype) * ops.cast(
                self.weight_decay * factor, variable.dtype)
            variable.assign(variable - variable * rate)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["factors"] = self.factors
        return config


@keras.saving.register_keras_serializable(package="mammo")
class FactorSGD(_LearnRateFactors, keras.optimizers.SGD):
    """SGD (with momentum: MATLAB's ``sgdm``) with per-variable learn-rate factors."""

    def __init__(self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 factors: Mapping[str, float] | None = None, name: str = "factor_sgd",
                 **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, momentum=float(momentum),
                         nesterov=nesterov, name=name, **kwargs)
        self._set_factors(factors)


@keras.saving.register_keras_serializable(package="mammo")
class FactorAdam(_LearnRateFactors, keras.optimizers.Adam):
    """Adam with per-variable learn-rate factors."""

    def __init__(self, learning_rate: Any = 0.001, factors: Mapping[str, float] | None = None,
                 name: str = "factor_adam", **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_factors(factors)


@keras.saving.register_keras_serializable(package="mammo")
class FactorAdamW(_LearnRateFactors, keras.optimizers.AdamW):
    """AdamW with per-variable learn-rate factors (the decay follows the factor too)."""

    def __init__(self, learning_rate: Any = 0.001, factors: Mapping[str, float] | None = None,
                 name: str = "factor_adamw", **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_factors(factors)


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.9,
                   factors: Mapping[str, float] | None = None,
                   weight_decay: float | None = None) -> keras.optimizers.Optimizer:
    """``"sgd"`` (momentum 0.9 by default, MATLAB's ``sgdm`` default), ``"adam"`` or
    ``"adamw"`` (Keras's default betas and epsilon; ``momentum`` is not used) with
    learn-rate ``factors`` such as ``transfer.head_factors(20, 30)``.

    ``weight_decay`` is Keras's decoupled decay (AdamW's default when None); it is not
    MATLAB's L2 regularisation, which lives on the layers (see ``transfer``).
    """
    lr = float(learning_rate)
    if not math.isfinite(lr) or lr <= 0:
        raise BadConfigError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if name == "sgd":
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise BadConfigError(f"momentum must be in [0, 1), got {momentum}")
        return FactorSGD(lr, momentum=momentum, factors=factors, weight_decay=weight_decay)
    if name == "adam":
        return FactorAdam(lr, factors=factors, weight_decay=weight_decay)
    if name == "adamw":
        if weight_decay is None:
            return FactorAdamW(lr, factors=factors)
        return FactorAdamW(lr, factors=factors, weight_decay=weight_decay)
    raise BadConfigError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
