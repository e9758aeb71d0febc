"""Per-class F1 with patient-level 95% intervals, and the classification report's rows with
them.

A class of a dozen test films has an F1 that moves by 0.2 when one film changes side; printed
bare, beside the macro average, it reads as a finding. Each class's F1 therefore gets the same
patient bootstrap as the headline figures (``scores.bootstrap_ci``, same seed, so every
figure is read off the same resamples), and the report's average rows take their intervals
from the headline figures they equal: micro F1 is accuracy on single-label films, and the
macro and weighted rows are ``macro_f1`` and ``weighted_f1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.metrics.scores import MetricFn, bootstrap_ci, confusion_matrix

#: The headline figure each average row of the report equals, whose interval it shows.
AVERAGE_ROW_FIGURES: dict[str, str] = {"micro avg": "accuracy", "macro avg": "macro_f1",
                                       "weighted avg": "weighted_f1"}
#: The report columns these add, and what a person reads as their heading.
COLUMN_LABELS: dict[str, str] = {"f1_low": "F1 95% CI low", "f1_high": "F1 95% CI high"}


def class_f1(class_index: int) -> MetricFn:
    """F1 of one class from (labels, probabilities), the predicted class being the most
    probable; None in a resample without a film of the class (its F1 is undefined there,
    and scoring it 0 would drag the interval down for want of films, not of skill)."""
    def metric(y_true: np.ndarray, probabilities: np.ndarray) -> float | None:
        cm = confusion_matrix(y_true, probabilities.argmax(axis=1), probabilities.shape[1])
        support = int(cm[class_index].sum())
        if support == 0:
            return None
        tp = int(cm[class_index, class_index])
        return float(2 * tp / (support + int(cm[:, class_index].sum())))
    return metric


def per_class_intervals(y_true: Any, probabilities: Any, classes: Sequence[str],
                        groups: Any = None, n: int = 1000, seed: int = 0
                        ) -> dict[str, dict[str, dict[str, Any]]]:
    """By class name, ``{"f1": interval}`` (``bootstrap_ci``: over patients given
    ``groups``, one id per film); a class without a test film has neither estimate nor
    interval (None)."""
    return {name: {"f1": bootstrap_ci(y_true, probabilities, class_f1(index), n=n, seed=seed,
                                      groups=groups)}
            for index, name in enumerate(classes)}


def rows_with_f1_intervals(rows: Sequence[Mapping[str, Any]],
                           evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Classification report rows (``scores.report_rows``) with ``f1_low`` and ``f1_high``
    after ``f1``: a class's from the evaluation's ``per_class_intervals``, an average's from
    its headline figure's interval. None where the evaluation has none (one saved before
    per-class intervals were kept, or a class without test films)."""
    per_class = evaluation.get("per_class_intervals") or {}
    headline = evaluation.get("confidence_intervals") or {}
    out = []
    for row in rows:
        label = row.get("label")
        if label in AVERAGE_ROW_FIGURES:
            interval = headline.get(AVERAGE_ROW_FIGURES[label]) or {}
        else:
            interval = (per_class.get(label) or {}).get("f1") or {}
        extended: dict[str, Any] = {}
        for key, value in row.items():
            if key in COLUMN_LABELS:
                continue  # rows that had them: the evaluation's replace them
            extended[key] = value
            if key == "f1":
                extended["f1_low"] = interval.get("low")
                extended["f1_high"] = interval.get("high")
        out.append(extended)
    return out
