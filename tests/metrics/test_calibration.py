"""Calibration of the yes/no score: reliability bins, ECE and Brier by hand and against
scikit-learn, with patient intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from core.data.records import RSNA_CLASSES
from core.metrics.calibration import (
    brier_score,
    calibration,
    expected_calibration_error,
    reliability_bins,
)
from core.metrics.positive import screening_question

QUESTION = screening_question(RSNA_CLASSES)


def _scored(n: int, seed: int, sharpen: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Films positive with probability ``p``; the score says ``p`` sharpened (over-confident
    for ``sharpen`` > 1), so its calibration is known in advance."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    positive = rng.random(n) < p
    logit = np.log(p / (1 - p)) * sharpen
    return positive, 1 / (1 + np.exp(-logit))


def test_bins_ece_and_brier_by_hand() -> None:
    positive = np.array([0, 0, 1, 1, 1, 0], dtype=bool)
    score = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 0.85])
    bins = reliability_bins(positive, score, n_bins=2)
    assert [b["count"] for b in bins] == [3, 3]
    assert bins[0]["mean_predicted"] == pytest.approx(0.2)
    assert bins[0]["observed"] == pytest.approx(1 / 3)
    assert bins[1]["mean_predicted"] == pytest.approx(0.85)
    assert bins[1]["observed"] == pytest.approx(2 / 3)
    # half the films in each bin: 0.5 * |0.2 - 1/3| + 0.5 * |0.85 - 2/3|
    assert expected_calibration_error(positive, score, 2) == \
        pytest.approx(0.5 * (1 / 3 - 0.2) + 0.5 * (0.85 - 2 / 3))
    assert brier_score(positive, score) == pytest.approx(
        np.mean([0.01, 0.04, 0.49, 0.04, 0.01, 0.7225]))


@pytest.mark.parametrize(("seed", "n_bins"), [(0, 10), (1, 5), (2, 15)])
def test_bins_and_brier_agree_with_scikit_learn(seed: int, n_bins: int) -> None:
    positive, score = _scored(400, seed, sharpen=2.0)
    score[:3] = [0.0, 1.0, 0.2]  # the ends and an inner edge (scikit-learn: the lower bin)
    observed, predicted = calibration_curve(positive, score, n_bins=n_bins, strategy="uniform")
    filled = [b for b in reliability_bins(positive, score, n_bins) if b["count"]]
    assert [b["observed"] for b in filled] == pytest.approx(observed.tolist())
    assert [b["mean_predicted"] for b in filled] == pytest.approx(predicted.tolist())
    assert brier_score(positive, score) == pytest.approx(brier_score_loss(positive, score))
    counts = np.array([b["count"] for b in filled])
    assert expected_calibration_error(positive, score, n_bins) == pytest.approx(
        float((counts / counts.sum() * np.abs(observed - predicted)).sum()))


def test_empty_bins_say_so_rather_than_zero() -> None:
    bins = reliability_bins(np.array([True, False]), np.array([0.95, 0.91]), n_bins=10)
    assert len(bins) == 10 and bins[0]["low"] == 0.0 and bins[-1]["high"] == 1.0
    assert all(b["observed"] is None and b["mean_predicted"] is None
               for b in bins[:-1])
    assert bins[-1]["count"] == 2


def test_an_over_confident_score_has_the_larger_ece() -> None:
    positive, honest = _scored(3000, 3)
    _, sharp = _scored(3000, 3, sharpen=4.0)
    assert expected_calibration_error(positive, honest) < 0.05
    assert expected_calibration_error(positive, sharp) > 2 * \
        expected_calibration_error(positive, honest)


def test_calibration_has_patient_intervals_around_its_figures() -> None:
    positive, score = _scored(240, 4, sharpen=2.0)
    patients = np.repeat(np.arange(120), 2)  # two films per woman
    result = calibration(positive, score, QUESTION, groups=patients, n_resamples=200)
    assert result["ece"] == pytest.approx(expected_calibration_error(positive, score))
    assert result["brier"] == pytest.approx(brier_score_loss(positive, score))
    assert (result["positive"], result["score"], result["n"]) == ("cancer", "p(cancer)", 240)
    for name in ("ece", "brier"):
        interval = result["confidence_intervals"][name]
        assert interval["unit"] == "patient" and interval["n_resamples"] == 200
        assert interval["low"] <= result[name] <= interval["high"]
        assert interval["low"] < interval["high"]
    json.dumps(result)


def test_a_score_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score(np.array([True]), np.array([1.5]))
