"""Calibration: whether a score read as a probability means what it says.

A model can rank films well (a high AUC) and still say "0.95" of films that are positive
half the time; a reader who takes the number at its word is then misled. The reliability
diagram bins the films by score and sets each bin's mean score against how often its films
are positive; the expected calibration error (ECE) is the gap between the two, averaged over
the films; the Brier score is the mean squared gap between score and truth (0 is perfect,
0.25 is a constant 0.5).

The bins are scikit-learn's ``calibration_curve(strategy="uniform")`` bins (equal widths on
[0, 1], a score on an inner edge in the lower bin), so the diagram can be checked against it.
Intervals are percentile bootstraps over patients (``scores.bootstrap_ci``), as every other
interval of an evaluation, since a woman's films are not independent draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.metrics.positive import BinaryQuestion
from core.metrics.scores import bootstrap_ci

#: Equal-width bins of the reliability diagram: ten, as usual, so a bin of a test set of a
#: few hundred films still holds a few dozen.
N_BINS = 10
#: What each figure is called where a person reads it.
FIGURE_LABELS: dict[str, str] = {
    "ece": "expected calibration error (ECE)",
    "brier": "Brier score",
}


def _binary(positive: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if positive.ndim != 1 or positive.shape != score.shape or len(score) == 0:
        raise ValueError(f"{positive.shape} labels but {score.shape} scores (need one per "
                         "film, and at least one film)")
    if not np.isfinite(score).all() or score.min() < 0 or score.max() > 1:
        raise ValueError("a calibrated score must be a probability in [0, 1]")
    return positive, score


def _bin_sums(positive: np.ndarray, score: np.ndarray, n_bins: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin edges, and per bin: its films, the sum of their scores, and its positives."""
    if n_bins < 1:
        raise ValueError(f"need at least one bin, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], score)
    counts = np.bincount(bins, minlength=n_bins)
    return (edges, counts, np.bincount(bins, weights=score, minlength=n_bins),
            np.bincount(bins, weights=positive, minlength=n_bins))


def reliability_bins(positive: Any, score: Any, n_bins: int = N_BINS) -> list[dict[str, Any]]:
    """Every bin: its edges ``low`` and ``high``, its film ``count``, and, where it holds a
    film, ``mean_predicted`` (its films' mean score) and ``observed`` (the share of them
    that are positive); None in an empty bin."""
    edges, counts, score_sums, positives = _bin_sums(*_binary(positive, score), n_bins)
    return [{"low": float(edges[i]), "high": float(edges[i + 1]), "count": int(counts[i]),
             "mean_predicted": float(score_sums[i] / counts[i]) if counts[i] else None,
             "observed": float(positives[i] / counts[i]) if counts[i] else None}
            for i in range(n_bins)]


def expected_calibration_error(positive: Any, score: Any, n_bins: int = N_BINS) -> float:
    """The gap between each bin's mean score and its share of positives, weighted by the
    share of the films in the bin."""
    positive, score = _binary(positive, score)
    _, _, score_sums, positives = _bin_sums(positive, score, n_bins)
    return float(np.abs(score_sums - positives).sum() / len(score))


def brier_score(positive: Any, score: Any) -> float:
    """The mean squared difference between score and truth (1 positive, 0 negative)."""
    positive, score = _binary(positive, score)
    return float(np.mean((score - positive) ** 2))


def calibration(positive: Any, score: Any, question: BinaryQuestion, groups: Any = None,
                n_bins: int = N_BINS, n_resamples: int = 1000,
                seed: int = 0) -> dict[str, Any]:
    """The question's names, the films, the reliability ``bins``, ``ece`` and ``brier``,
    and their 95% bootstrap ``confidence_intervals`` (over patients given ``groups``, one
    id per film; over films otherwise)."""
    positive, score = _binary(positive, score)
    truth = positive.astype(np.int64)
    metrics = {"ece": lambda y, s: expected_calibration_error(y == 1, s, n_bins),
               "brier": lambda y, s: brier_score(y == 1, s)}
    intervals = {name: bootstrap_ci(truth, score, fn, n=n_resamples, seed=seed, groups=groups)
                 for name, fn in metrics.items()}
    return {**question.describe(), "question": question.key, "n": len(score),
            "n_positive": int(positive.sum()), "n_bins": n_bins,
            "bins": reliability_bins(positive, score, n_bins),
            "ece": expected_calibration_error(positive, score, n_bins),
            "brier": brier_score(positive, score),
            "confidence_intervals": intervals}
