"""Classification metrics from labels and probabilities, apart from any plotting.

Every summary carries the trivial baselines (always the majority class; chance) beside the
model's figures, so a weak model fools nobody: on mini-MIAS, answering NORM for every film
already scores a weighted F1 near 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from core.data.records import NORMAL_CLASS


def _auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC, or None when only one kind of film is present (AUC is undefined)."""
    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, score))


def _headline(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    labels = list(range(n_classes))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                   zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted",
                                      zero_division=0)),
    }


def classification_summary(y_true: Any, probabilities: Any, classes: tuple[str, ...],
                           majority_class: int | None = None) -> dict[str, Any]:
    """Headline metrics, per-class scores, AUCs and the trivial baselines.

    ``majority_class`` is the training split's most common class (the always-majority
    baseline must not peek at the test labels); by default the most common class here.
    ``auc_abnormal`` (MIAS: anything but NORM vs NORM, scored by 1 - p(NORM)) and ``auc``
    (two-class problems, scored by p(second class)) are None where they do not apply.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_classes = len(classes)
    y_pred = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(n_classes)), zero_division=0)
    summary: dict[str, Any] = {"n": int(len(y_true)), "labels": list(classes),
                               **_headline(y_true, y_pred, n_classes)}
    summary["per_class"] = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]),
               "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(classes)}
    summary["auc_abnormal"] = None
    if NORMAL_CLASS in classes:
        normal = classes.index(NORMAL_CLASS)
        summary["auc_abnormal"] = _auc(y_true != normal, 1.0 - probabilities[:, normal])
    summary["auc"] = _auc(y_true == 1, probabilities[:, 1]) if n_classes == 2 else None
    if majority_class is None:
        majority_class = int(np.bincount(y_true, minlength=n_classes).argmax())
    summary["baselines"] = {
        "majority": {"class": classes[majority_class],
                     **_headline(y_true, np.full_like(y_true, majority_class), n_classes)},
        "chance_accuracy": 1.0 / n_classes,
    }
    return summary
