"""Temperature scaling: one number, fitted after training, that softens (or sharpens) a
model's probabilities until they match how often it is right.

Networks trained with cross-entropy tend to be over-confident: "0.99" of films they get
wrong a fifth of the time (Guo et al., 2017, "On calibration of modern neural networks").
Dividing the logits by one temperature T > 1 fixes most of that without changing a single
prediction: the order of the classes of each film, hence the argmax, the accuracy and the F1
figures, stays as it was. T is fitted by minimising the negative log-likelihood of the
validation films (never the test films, whose figures would then be fitted to them).

The model's logits are not kept, so they are recovered from its probabilities: the log of a
softmax is the logits up to a constant per film, which a softmax ignores. Everything here is
NumPy and SciPy on probabilities, so it is the same on every Keras backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from core.metrics.calibration import expected_calibration_error

#: The temperatures a fit may choose from: wide enough for any network seen here (fitted
#: values are usually 1 to 3), bounded so a degenerate validation set cannot send it off.
LOWEST, HIGHEST = 0.05, 20.0
#: Probabilities are clipped here before their log: a softmax in float32 rounds to exact 0.
SMALLEST_PROBABILITY = 1e-12


def _checked(probabilities: Any) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or len(p) == 0:
        raise ValueError(f"need probabilities of shape (films, classes >= 2), got {p.shape}")
    if not np.isfinite(p).all() or p.min() < 0:
        raise ValueError("probabilities must be finite and not negative")
    return p


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, SMALLEST_PROBABILITY, None))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def apply_temperature(probabilities: Any, temperature: float) -> np.ndarray:
    """The probabilities the same logits give divided by ``temperature``: 1 changes
    nothing, more than 1 softens, less than 1 sharpens. The argmax of a film never changes."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"a temperature must be a positive number, got {temperature}")
    return _softmax(_log_probabilities(_checked(probabilities)) / temperature)


def negative_log_likelihood(probabilities: Any, labels: Any) -> float:
    """Mean ``-log p(true class)`` over the films: what cross-entropy training minimises."""
    p = _checked(probabilities)
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (len(p),) or y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"{y.shape} labels for {len(p)} films of {p.shape[1]} classes")
    return float(-_log_probabilities(p)[np.arange(len(y)), y].mean())


def fit_temperature(probabilities: Any, labels: Any) -> float:
    """The temperature in [``LOWEST``, ``HIGHEST``] that minimises the negative
    log-likelihood of ``labels``. The likelihood is convex in 1/T, so a bounded
    one-dimensional search finds its minimum; should it ever land worse than T = 1 (no
    scaling), 1 is returned, so fitting never makes the validation films' fit worse."""
    p = _checked(probabilities)
    y = np.asarray(labels, dtype=np.int64)
    logits = _log_probabilities(p)
    rows = np.arange(len(p))

    def nll(inverse: float) -> float:
        scaled = logits * inverse
        top = scaled.max(axis=1)
        log_sum = top + np.log(np.exp(scaled - top[:, None]).sum(axis=1))
        return float((log_sum - scaled[rows, y]).mean())

    found = minimize_scalar(nll, bounds=(1.0 / HIGHEST, 1.0 / LOWEST), method="bounded",
                            options={"xatol": 1e-6})
    if not found.success or nll(float(found.x)) > nll(1.0):
        return 1.0
    return float(1.0 / found.x)


def top_label_ece(probabilities: Any, labels: Any) -> float:
    """The expected calibration error of the most probable class: each film's top probability
    against whether that class is right (Guo et al.'s ECE), for any number of classes."""
    p = _checked(probabilities)
    correct = p.argmax(axis=1) == np.asarray(labels, dtype=np.int64)
    return expected_calibration_error(correct, np.clip(p.max(axis=1), 0.0, 1.0))


def fitted_temperature(probabilities: Any, labels: Any) -> dict[str, Any]:
    """What a run keeps of a fit: the ``temperature``, the films it was fitted on, and their
    negative log-likelihood and top-label ECE before and after (the fit's own evidence)."""
    temperature = fit_temperature(probabilities, labels)
    scaled = apply_temperature(probabilities, temperature)
    return {"temperature": temperature, "fitted_on": "validation films",
            "n_films": len(np.asarray(labels)),
            "nll_before": negative_log_likelihood(probabilities, labels),
            "nll_after": negative_log_likelihood(scaled, labels),
            "ece_before": top_label_ece(probabilities, labels),
            "ece_after": top_label_ece(scaled, labels)}
