"""Operating points: what a yes/no score does at one threshold, and the thresholds worth
looking at first.

An AUC says how well a score ranks films; a reader acts at one threshold, and what matters
there is how many positive films are found (sensitivity), how many negative ones are left
alone (specificity), and how often a call is right (PPV for a positive call, NPV for a
negative one). A film is called positive when its score is at or above the threshold: the
rule of scikit-learn's ``roc_curve`` and of ``scores.operating_point``.

``operating_points`` keeps, beside its presets, the ROC curve at every distinct score, so the
Evaluate page can move the threshold and show exact counts without scoring a film again
(``point_at``). A very large test set keeps ``MAX_CURVE_POINTS`` of them, always with the
presets' own points, so every preset stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.metrics.headline import SCREENING_SPECIFICITY, by_key
from core.metrics.positive import BinaryQuestion
from core.metrics.scores import binary_counts, downsample_indices, full_roc, operating_point

#: The most ROC points an evaluation keeps for moving the threshold (a test set of that many
#: distinct scores is already larger than any this project evaluates on).
MAX_CURVE_POINTS = 2000
#: The threshold a softmax model's label reads at for two classes, kept as a preset because
#: it is what "the model says positive" means to most people.
HALF = 0.5
#: What each figure of an operating point is called where a person reads it.
FIGURE_LABELS: dict[str, str] = {
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "ppv": "PPV (positive predictive value)",
    "npv": "NPV (negative predictive value)",
}


@dataclass(frozen=True)
class Preset:
    """A threshold worth looking at first: ``key`` in the JSON, ``label`` on the page."""

    key: str
    label: str
    why: str


SCREENING = Preset("sensitivity_at_90_specificity",
                   by_key("sensitivity_at_90_specificity").label,
                   f"the most positive films found while at least "
                   f"{SCREENING_SPECIFICITY:.0%} of the negative films are left alone")
YOUDEN = Preset("youden", "Youden point",
                "the threshold where sensitivity + specificity is highest")
AT_HALF = Preset("half", f"threshold {HALF:g}", "the score's midpoint")
#: In the order the page offers them.
PRESETS: tuple[Preset, ...] = (SCREENING, YOUDEN, AT_HALF)


def _binary(positive: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if positive.ndim != 1 or positive.shape != score.shape:
        raise ValueError(f"{positive.shape} labels but {score.shape} scores")
    if not np.isfinite(score).all():
        raise ValueError("scores must be finite numbers")
    return positive, score


def figures(threshold: float | None, tp: int, fp: int, tn: int, fn: int) -> dict[str, Any]:
    """One operating point from its four counts: sensitivity, specificity, PPV, NPV, its
    (FPR, TPR) point and the 2 x 2 confusion matrix (rows actual negative, positive;
    columns called negative, positive: ``confusion_heatmap``'s layout). A ratio whose
    denominator is zero is None (no positive call has no PPV). ``threshold`` None: above
    every score, nothing is called positive."""
    counts = binary_counts(tn=tn, fn=fn, tp=tp, fp=fp)
    negatives, positives = tn + fp, tp + fn
    return {"threshold": threshold, "tp": counts["tp"], "fp": counts["fp"],
            "tn": counts["tn"], "fn": counts["fn"],
            "sensitivity": counts["sensitivity"], "specificity": counts["specificity"],
            "ppv": counts["precision"],
            "npv": float(tn / (tn + fn)) if tn + fn else None,
            "fpr": float(fp / negatives) if negatives else None,
            "tpr": float(tp / positives) if positives else None,
            "confusion_matrix": [[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]]}


def counts_at(positive: Any, score: Any, threshold: float | None) -> dict[str, Any]:
    """``figures`` of the films scored at or above ``threshold`` called positive."""
    positive, score = _binary(positive, score)
    called = np.zeros_like(positive) if threshold is None else score >= threshold
    return figures(threshold, tp=int((called & positive).sum()),
                   fp=int((called & ~positive).sum()), tn=int((~called & ~positive).sum()),
                   fn=int((~called & positive).sum()))


def _index_at(thresholds: np.ndarray, threshold: float | None) -> int:
    """The curve point of ``threshold``: the last (lowest) stored threshold at or above it,
    i.e. the films called positive are those scoring at least ``threshold``."""
    if threshold is None:
        return 0
    return int(np.count_nonzero(thresholds >= threshold)) - 1  # the first is infinity


def _youden_threshold(thresholds: np.ndarray, tp: np.ndarray, fp: np.ndarray,
                      n_positive: int, n_negative: int) -> float | None:
    """The threshold of the highest sensitivity + specificity - 1 (Youden's J); of equal
    ones the highest threshold, which calls the fewest films positive."""
    best = int(np.argmax(tp / n_positive - fp / n_negative))
    return float(thresholds[best]) if np.isfinite(thresholds[best]) else None


def preset_thresholds(positive: Any, score: Any) -> dict[str, float | None]:
    """Each preset's threshold (None: above every score), by preset key; empty when only one
    kind of film is present, where no rate is defined."""
    positive, score = _binary(positive, score)
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return {}
    thresholds, tp, fp = full_roc(positive, score)
    screening = operating_point(positive, score, SCREENING_SPECIFICITY)
    return {SCREENING.key: None if screening is None else screening["threshold"],
            YOUDEN.key: _youden_threshold(thresholds, tp, fp, n_positive, n_negative),
            AT_HALF.key: HALF}


def operating_points(positive: Any, score: Any, question: BinaryQuestion,
                     max_points: int = MAX_CURVE_POINTS) -> dict[str, Any] | None:
    """The question's names, its films, each preset (``PRESETS``) with ``figures`` at its
    threshold, and the ROC curve at every distinct score (``roc``: ``fpr``, ``tpr``,
    ``thresholds``, falling, the first None for "above every score") for ``point_at``.
    None when only one kind of film is present."""
    positive, score = _binary(positive, score)
    thresholds_by_key = preset_thresholds(positive, score)
    if not thresholds_by_key:
        return None
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    thresholds, tp, fp = full_roc(positive, score)
    presets = [{"key": preset.key, "label": preset.label, "why": preset.why,
                **counts_at(positive, score, thresholds_by_key[preset.key])}
               for preset in PRESETS]
    keep = [_index_at(thresholds, entry["threshold"]) for entry in presets]
    kept = np.union1d(downsample_indices(fp / n_negative, tp / n_positive, max_points), keep)
    return {**question.describe(), "question": question.key, "n_positive": n_positive,
            "n_negative": n_negative,
            "rule": "a film is called positive when its score is at or above the threshold",
            "presets": presets,
            "roc": {"fpr": (fp[kept] / n_negative).tolist(),
                    "tpr": (tp[kept] / n_positive).tolist(),
                    "thresholds": [float(t) if np.isfinite(t) else None
                                   for t in thresholds[kept]]}}


def curve_thresholds(points: Mapping[str, Any]) -> list[float | None]:
    """The thresholds a page can move between: the stored curve's and the presets' own
    (0.5 need not be a score), rising, with None (above every score) last."""
    stored = {t for t in points["roc"]["thresholds"] if t is not None}
    stored |= {p["threshold"] for p in points["presets"] if p["threshold"] is not None}
    return [*sorted(stored), None]


def point_at(points: Mapping[str, Any], threshold: float | None) -> dict[str, Any]:
    """``figures`` at ``threshold``, read off the curve ``operating_points`` stored, without
    the films' scores: exact wherever the curve kept every distinct score (and at every
    stored threshold and preset otherwise)."""
    roc = points["roc"]
    stored = np.array([np.inf if t is None else t for t in roc["thresholds"]], dtype=np.float64)
    index = _index_at(stored, threshold)
    n_positive, n_negative = int(points["n_positive"]), int(points["n_negative"])
    tp = round(float(roc["tpr"][index]) * n_positive)
    fp = round(float(roc["fpr"][index]) * n_negative)
    return figures(threshold, tp=tp, fp=fp, tn=n_negative - fp, fn=n_positive - tp)
