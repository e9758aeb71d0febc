"""Per-class F1 with patient intervals, and the report rows that carry them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from core.metrics.per_class import class_f1, per_class_intervals, rows_with_f1_intervals
from core.metrics.scores import (
    add_confidence_intervals,
    classification_report,
    classification_summary,
    report_rows,
)

CLASSES = ("a", "b", "c")


def _set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)  # class c never occurs
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += 1.0
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True), np.repeat(np.arange(n // 2), 2)


def test_class_f1_is_scikit_learns_and_undefined_without_films() -> None:
    y, p, _ = _set(60, 0)
    sk = f1_score(y, p.argmax(axis=1), labels=[0, 1, 2], average=None, zero_division=0)
    assert class_f1(0)(y, p) == pytest.approx(sk[0])
    assert class_f1(1)(y, p) == pytest.approx(sk[1])
    assert class_f1(2)(y, p) is None  # no film of c: no F1 to bootstrap


def test_intervals_are_patient_resamples_around_each_class_f1() -> None:
    y, p, patients = _set(80, 1)
    intervals = per_class_intervals(y, p, CLASSES, groups=patients, n=200)
    for index, name in enumerate(CLASSES[:2]):
        f1 = intervals[name]["f1"]
        assert f1["unit"] == "patient" and f1["estimate"] == class_f1(index)(y, p)
        assert f1["low"] <= f1["estimate"] <= f1["high"] and f1["low"] < f1["high"]
    assert intervals["c"]["f1"]["estimate"] is None and intervals["c"]["f1"]["low"] is None


def test_report_rows_carry_the_intervals_of_their_figures() -> None:
    y, p, patients = _set(80, 2)
    evaluation = add_confidence_intervals(classification_summary(y, p, CLASSES), y, p,
                                          groups=patients, n=100)
    evaluation["per_class_intervals"] = per_class_intervals(y, p, CLASSES, groups=patients,
                                                            n=100)
    plain = report_rows(classification_report(y, p.argmax(axis=1), CLASSES))
    rows = rows_with_f1_intervals(plain, evaluation)
    by_label = {row["label"]: row for row in rows}
    assert list(rows[0]) == ["label", "precision", "recall", "f1", "f1_low", "f1_high",
                             "support"]
    assert by_label["a"]["f1_low"] == evaluation["per_class_intervals"]["a"]["f1"]["low"]
    assert by_label["macro avg"]["f1_high"] == \
        evaluation["confidence_intervals"]["macro_f1"]["high"]
    assert by_label["micro avg"]["f1_low"] == \
        evaluation["confidence_intervals"]["accuracy"]["low"]
    assert by_label["weighted avg"]["f1_low"] == \
        evaluation["confidence_intervals"]["weighted_f1"]["low"]
    # An evaluation saved before these intervals were kept: the columns, empty.
    old = rows_with_f1_intervals(plain, {})
    assert all(row["f1_low"] is None and row["f1_high"] is None for row in old)
