"""Temperature scaling: fitted on an over-confident model's validation films it softens the
probabilities, lowers their NLL and ECE, and never changes a prediction."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.records import MIAS_CLASSES
from core.metrics.calibration import expected_calibration_error
from core.metrics.positive import screening_question
from core.metrics.temperature import (
    apply_temperature,
    fit_temperature,
    fitted_temperature,
    negative_log_likelihood,
)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _over_confident(n: int, seed: int, factor: float) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Films of 7 classes drawn from calibrated probabilities, and what a model ``factor``
    times too sure of itself says of them (its logits multiplied by ``factor``)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (n, len(MIAS_CLASSES)))
    honest = _softmax(logits)
    labels = np.array([rng.choice(len(MIAS_CLASSES), p=row) for row in honest])
    return labels, honest, _softmax(logits * factor)


def test_the_fit_undoes_over_confidence_and_lowers_nll_and_ece() -> None:
    labels, _, sure = _over_confident(2000, 0, factor=3.0)
    temperature = fit_temperature(sure, labels)
    assert temperature == pytest.approx(3.0, rel=0.15)
    softened = apply_temperature(sure, temperature)
    assert negative_log_likelihood(softened, labels) < negative_log_likelihood(sure, labels)
    abnormal = screening_question(MIAS_CLASSES)
    truth = abnormal.truth(labels)
    before = expected_calibration_error(truth, abnormal.scores(sure))
    after = expected_calibration_error(truth, abnormal.scores(softened))
    assert after < before / 2
    assert (softened.argmax(axis=1) == sure.argmax(axis=1)).all()


def test_a_calibrated_model_is_left_about_as_it_is() -> None:
    labels, honest, _ = _over_confident(2000, 1, factor=1.0)
    assert fit_temperature(honest, labels) == pytest.approx(1.0, abs=0.1)


def test_an_under_confident_model_is_sharpened() -> None:
    labels, _, timid = _over_confident(2000, 2, factor=0.4)
    assert fit_temperature(timid, labels) < 0.6


def test_applying_a_temperature() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    assert apply_temperature(p, 1.0) == pytest.approx(np.where(p == 0, 1e-12, p), abs=1e-9)
    soft = apply_temperature(p, 2.0)  # p ** (1/2), renormalised
    expected = np.sqrt(p[0]) / np.sqrt(p[0]).sum()
    assert soft[0] == pytest.approx(expected)
    assert soft.sum(axis=1) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(p, 0.0)


def test_what_a_run_keeps_of_the_fit() -> None:
    labels, _, sure = _over_confident(500, 3, factor=2.5)
    kept = fitted_temperature(sure, labels)
    assert kept["n_films"] == 500 and kept["fitted_on"] == "validation films"
    assert kept["nll_after"] < kept["nll_before"]
    assert kept["ece_after"] < kept["ece_before"]
    assert kept["temperature"] == fit_temperature(sure, labels)
