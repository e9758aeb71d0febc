"""Metrics: hand-computed counts, the two papers' published tables, and scikit-learn."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn import metrics as sk

from core.data.records import MIAS_CLASSES, PATHOLOGY_CLASSES
from core.metrics.scores import (
    add_confidence_intervals,
    binary_counts,
    bootstrap_ci,
    classification_report,
    classification_summary,
    clinical_pairs,
    confusion_matrix,
    downsample_indices,
    headline_metrics,
    one_vs_rest,
    per_class_counts,
    rank_auc,
    report_rows,
    roc_pr,
)

NORM = MIAS_CLASSES.index("NORM")


def _random_set(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities that lean towards the truth, so metrics are not all chance."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), y] += 1.0
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def _expand(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label arrays that have exactly this confusion matrix."""
    pairs = [(t, p) for t in range(len(cm)) for p in range(len(cm)) for _ in range(cm[t, p])]
    y_true, y_pred = zip(*pairs)
    return np.array(y_true), np.array(y_pred)


# --- confusion matrix and one-vs-rest counts ----------------------------------------------

def test_confusion_matrix_by_hand() -> None:
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    rows = per_class_counts(cm, ("a", "b", "c"))
    # class a: TP 1, FN 1 (a called b), FP 1 (c called a), TN 3
    assert {k: rows["a"][k] for k in ("tp", "fn", "fp", "tn")} == {"tp": 1, "fn": 1, "fp": 1,
                                                                 "tn": 3}
    assert rows["a"]["sensitivity"] == 0.5 and rows["a"]["specificity"] == 0.75
    assert rows["a"]["precision"] == 0.5 and rows["a"]["f_measure"] == 0.5
    assert rows["a"]["accuracy"] == pytest.approx(4 / 6)
    # class b: TP 1, FN 0, FP 1, TN 4
    assert rows["b"]["sensitivity"] == 1.0 and rows["b"]["specificity"] == 0.8
    assert rows["c"]["precision"] == 1.0 and rows["c"]["sensitivity"] == pytest.approx(2 / 3)


def test_confusion_matrix_matches_sklearn_with_absent_classes() -> None:
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 4, 300), rng.integers(0, 3, 300)  # 3, 4 never predicted
    assert (confusion_matrix(y_true, y_pred, 5)
            == sk.confusion_matrix(y_true, y_pred, labels=range(5))).all()


def test_two_class_rows_are_the_binary_counts() -> None:
    cm = np.array([[50, 7], [3, 40]])  # rows true, columns predicted
    assert per_class_counts(cm, ("BENIGN", "MALIGNANT"))["MALIGNANT"] == binary_counts(
        tn=50, fn=3, tp=40, fp=7)


#: The second paper's tables 5 and 6: TN FN TP FP, then accuracy, sensitivity, precision,
#: specificity and F-measure as printed.
PAPER_ROWS = {
    "AL1": (440, 32, 365, 64, 0.8935, 0.9194, 0.8508, 0.8730, 0.8838),
    "AL2": (478, 74, 323, 26, 0.8890, 0.8136, 0.9255, 0.9484, 0.8660),
    "AL3": (500, 43, 354, 4, 0.9478, 0.8917, 0.9888, 0.9921, 0.9378),
    "AL4": (474, 40, 357, 30, 0.9223, 0.8992, 0.9225, 0.9405, 0.9107),
    "AL5": (473, 98, 299, 31, 0.8568, 0.7532, 0.9060, 0.9385, 0.8226),
    "AL6": (492, 87, 310, 12, 0.8901, 0.7809, 0.9627, 0.9762, 0.8623),
    "AL7": (432, 24, 373, 72, 0.8935, 0.9395, 0.8382, 0.8571, 0.8860),
    "AL8": (446, 43, 354, 58, 0.8879, 0.8917, 0.8592, 0.8849, 0.8752),
    "AL9": (484, 69, 328, 20, 0.9012, 0.8262, 0.9425, 0.9603, 0.8805),
    "AL10": (482, 65, 332, 22, 0.9034, 0.8362, 0.9379, 0.9564, 0.8842),
    "GL1": (389, 49, 348, 115, 0.8179, 0.8766, 0.7516, 0.7718, 0.8093),
    "GL3": (492, 185, 212, 12, 0.7814, 0.5340, 0.9464, 0.9762, 0.6828),
    "GL6": (409, 24, 373, 95, 0.8679, 0.9396, 0.7970, 0.8115, 0.8624),
}
FIGURES = ("accuracy", "sensitivity", "precision", "specificity", "f_measure")


def test_second_paper_sanity_row() -> None:
    row = binary_counts(tn=500, fn=43, tp=354, fp=4)
    assert row["n"] == 901
    assert row["accuracy"] == pytest.approx(0.9478, abs=5e-5)
    assert row["sensitivity"] == pytest.approx(0.8917, abs=5e-5)
    assert row["precision"] == pytest.approx(0.9888, abs=5e-5)
    assert row["specificity"] == pytest.approx(0.9921, abs=5e-5)
    # 708 / 755 = 0.93775 exactly to five places, printed 0.9378
    assert row["f_measure"] == pytest.approx(0.9378, abs=1e-4)


@pytest.mark.parametrize("name", sorted(PAPER_ROWS))
def test_second_paper_rows(name: str) -> None:
    """Every row agrees to one unit of the fourth decimal (the paper sometimes truncates
    rather than rounds: GL1's accuracy is 0.81798, printed 0.8179)."""
    tn, fn, tp, fp, *printed = PAPER_ROWS[name]
    row = binary_counts(tn=tn, fn=fn, tp=tp, fp=fp)
    for figure, value in zip(FIGURES, printed):
        assert row[figure] == pytest.approx(value, abs=1e-4), (name, figure)


@pytest.mark.parametrize("name", ["AL1", "AL2", "AL4", "AL6", "AL7", "AL8", "AL9", "GL3"])
def test_second_paper_rows_round_exactly(name: str) -> None:
    tn, fn, tp, fp, *printed = PAPER_ROWS[name]
    row = binary_counts(tn=tn, fn=fn, tp=tp, fp=fp)
    assert [round(row[f], 4) for f in FIGURES] == printed


def test_undefined_ratios_are_none_and_bad_counts_refused() -> None:
    row = binary_counts(tn=10, fn=0, tp=0, fp=0)  # no positive film, none called positive
    assert row["sensitivity"] is None and row["precision"] is None
    assert row["f_measure"] is None and row["specificity"] == 1.0 and row["accuracy"] == 1.0
    with pytest.raises(ValueError):
        binary_counts(tn=1, fn=-1, tp=0, fp=0)
    with pytest.raises(ValueError):
        per_class_counts(np.eye(3), ("a", "b"))


# --- the first paper's classification report ----------------------------------------------

def test_report_matches_sklearn_with_a_class_never_predicted() -> None:
    rng = np.random.default_rng(2)
    classes = ("a", "b", "c", "d", "e")
    y_true = rng.integers(0, 5, 200)
    y_pred = np.where(rng.random(200) < 0.5, y_true, rng.integers(0, 5, 200))
    y_pred[y_pred == 3] = 0  # "d" is never predicted
    report = classification_report(y_true, y_pred, classes)
    expected = sk.classification_report(y_true, y_pred, labels=range(5), target_names=classes,
                                        output_dict=True, zero_division=0)
    for name in classes:
        got = report["per_class"][name]
        assert got["precision"] == pytest.approx(expected[name]["precision"])
        assert got["recall"] == pytest.approx(expected[name]["recall"])
        assert got["f1"] == pytest.approx(expected[name]["f1-score"])
        assert got["support"] == expected[name]["support"]
    assert report["per_class"]["d"]["precision"] == 0.0
    for average in ("macro avg", "weighted avg"):
        for key, sk_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert report["averages"][average][key] == pytest.approx(expected[average][sk_key])
        assert report["averages"][average]["support"] == 200
    micro = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(5), average="micro")
    assert [report["averages"]["micro avg"][k] for k in ("precision", "recall", "f1")] == \
        pytest.approx(micro[:3])
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert report["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))


def test_balanced_accuracy_skips_classes_without_films() -> None:
    y_true, y_pred = [0, 0, 1, 1], [0, 2, 1, 1]  # class 2 predicted but never true
    report = classification_report(y_true, y_pred, ("a", "b", "c"))
    assert report["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)


def test_report_rows_follow_the_table() -> None:
    report = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ("x", "y", "z"))
    rows = report_rows(report, digits=2)
    assert [r["label"] for r in rows] == ["x", "y", "z", "micro avg", "macro avg",
                                          "weighted avg"]
    assert rows[1] == {"label": "y", "precision": 1.0, "recall": 0.5, "f1": 0.67, "support": 2}
    assert rows[3]["f1"] == 0.75 and rows[3]["support"] == 4
    assert report_rows(report)[1]["f1"] == pytest.approx(2 / 3)


#: The first paper's table 1 (83 test films) as printed.
PAPER_TABLE = {
    "ARCH": (0.14, 0.20, 0.17, 5), "ASYM": (0.20, 0.67, 0.31, 3),
    "CALC": (0.31, 0.62, 0.42, 8), "CIRC": (0.18, 0.33, 0.24, 6),
    "MISC": (0.16, 0.75, 0.26, 4), "NORM": (0.55, 0.12, 0.19, 52),
    "SPIC": (0.11, 0.14, 0.14, 5),
    "micro avg": (0.24, 0.24, 0.24, 83), "macro avg": (0.24, 0.41, 0.25, 83),
    "weighted avg": (0.42, 0.24, 0.22, 83),
}
#: One confusion matrix with the table's supports, correct counts (recall x support) and
#: predicted counts (correct / precision: 7, 10, 16, 11, 19, 11, 9, which add up to 83);
#: every figure of the table depends only on those.
PAPER_CM = np.array([[1, 0, 0, 0, 2, 2, 0],
                     [0, 2, 0, 0, 1, 0, 0],
                     [0, 0, 5, 0, 2, 1, 0],
                     [0, 0, 2, 2, 1, 1, 0],
                     [0, 0, 1, 0, 3, 0, 0],
                     [6, 8, 8, 8, 8, 6, 8],
                     [0, 0, 0, 1, 2, 1, 1]])


def test_first_paper_averages_follow_from_its_rows() -> None:
    rows = [PAPER_TABLE[c] for c in MIAS_CLASSES]
    support = np.array([r[3] for r in rows])
    columns = np.array([r[:3] for r in rows])
    assert support.sum() == 83
    assert columns[:, 2].mean() == pytest.approx(0.25, abs=0.005)  # macro F1: 1.73 / 7
    assert columns[:, 0].mean() == pytest.approx(0.24, abs=0.005)
    weighted = (columns * support[:, None]).sum(axis=0) / 83
    assert weighted == pytest.approx([0.42, 0.24, 0.22], abs=0.005)


def test_first_paper_table_reproduced_from_counts() -> None:
    """The whole table follows from one set of integer counts, except SPIC's recall: with
    5 SPIC films recall is a multiple of 0.2, so the printed 0.14 is a slip for 0.20 (which
    its F1 0.14 and the macro recall 0.41 both need; 0.14 would make the macro recall 0.40)."""
    report = classification_report(*_expand(PAPER_CM), MIAS_CLASSES)
    for row in report_rows(report, digits=2):
        printed = PAPER_TABLE[row["label"]]
        if row["label"] == "SPIC":
            printed = (0.11, 0.20, 0.14, 5)
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == printed, \
            row["label"]


def test_always_norm_on_the_first_papers_supports() -> None:
    """What the paper's model is up against: calling every film NORM on a split like its
    own gives a weighted F1 of 0.48, twice the paper's 0.22."""
    supports = {"ARCH": 5, "ASYM": 3, "CALC": 8, "CIRC": 6, "MISC": 4, "NORM": 52, "SPIC": 5}
    y_true = np.repeat(np.arange(7), [supports[c] for c in MIAS_CLASSES])
    report = classification_report(y_true, np.full(83, NORM), MIAS_CLASSES)
    assert report["averages"]["weighted avg"]["f1"] == pytest.approx(0.48, abs=0.005)
    assert report["accuracy"] == pytest.approx(52 / 83)
    assert report["averages"]["macro avg"]["f1"] == pytest.approx(0.11, abs=0.005)
    assert report["balanced_accuracy"] == pytest.approx(1 / 7)


# --- ROC and precision-recall ---------------------------------------------------------------

def test_auc_and_average_precision_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    positive = rng.random(400) < 0.3
    score = np.round(rng.random(400) + positive * 0.4, 1)  # rounded: many ties
    result = roc_pr(positive, score)
    assert result["auc"] == pytest.approx(sk.roc_auc_score(positive, score))
    assert result["average_precision"] == pytest.approx(
        sk.average_precision_score(positive, score))
    assert rank_auc(positive, score) == pytest.approx(sk.roc_auc_score(positive, score))
    assert result["n_positive"] == positive.sum()


def test_one_kind_of_film_has_no_auc() -> None:
    result = roc_pr(np.ones(5, bool), np.linspace(0, 1, 5))
    assert result["auc"] is None and result["roc"] is None and result["n_negative"] == 0
    assert rank_auc(np.zeros(4, bool), np.arange(4.0)) is None


def test_one_vs_rest_matches_sklearn_and_survives_a_missing_class() -> None:
    y, p = _random_set(300, 4, seed=4)
    result = one_vs_rest(y, p, ("a", "b", "c", "d"))
    assert result["macro_auc"] == pytest.approx(sk.roc_auc_score(y, p, multi_class="ovr"))
    assert result["per_class"]["b"]["auc"] == pytest.approx(sk.roc_auc_score(y == 1, p[:, 1]))
    y_missing = np.where(y == 2, 0, y)  # no film of class "c"
    result = one_vs_rest(y_missing, p, ("a", "b", "c", "d"))
    assert result["per_class"]["c"] is None and result["n_classes_scored"] == 3
    assert result["macro_auc"] == pytest.approx(np.mean(
        [sk.roc_auc_score(y_missing == i, p[:, i]) for i in (0, 1, 3)]))
    assert result["macro_average_precision"] == pytest.approx(np.mean(
        [sk.average_precision_score(y_missing == i, p[:, i]) for i in (0, 1, 3)]))


def test_curves_are_small_monotone_and_keep_their_ends() -> None:
    rng = np.random.default_rng(5)
    positive = rng.random(5000) < 0.4
    score = rng.random(5000) + positive * 0.3
    result = roc_pr(positive, score, max_points=200)
    roc, pr = result["roc"], result["pr"]
    assert 100 < len(roc["fpr"]) <= 200 and len(pr["recall"]) <= 200
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert roc["thresholds"][0] is None and pr["thresholds"][0] is None
    for values in (roc["fpr"], roc["tpr"], pr["recall"]):
        assert np.all(np.diff(values) >= 0)
    for thresholds in (roc["thresholds"][1:], pr["thresholds"][1:]):
        assert np.all(np.diff(thresholds) <= 0)
    assert pr["recall"][0] == 0 and pr["recall"][-1] == 1
    # the downsampled curve keeps its shape: its area is the full curve's
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(result["auc"], abs=0.005)
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN, no Infinity


def test_downsampling_keeps_short_curves_and_corners() -> None:
    assert downsample_indices([0, 1], [0, 1], max_points=5).tolist() == [0, 1]
    # a staircase: 1000 points up the left edge, then 1000 along the top
    x = np.concatenate([np.zeros(1000), np.linspace(0, 1, 1000)])
    y = np.concatenate([np.linspace(0, 1, 1000), np.ones(1000)])
    keep = downsample_indices(x, y, max_points=21)
    assert len(keep) <= 21 and keep[0] == 0 and keep[-1] == 1999
    assert np.all(np.diff(keep) > 0)
    assert x[keep].max() - x[keep][y[keep] < 1].max() > 0.9  # spread over both edges


# --- clinical pairs -----------------------------------------------------------------------

def _mias_set(n: int = 120, seed: int = 6) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    y, p = _random_set(n, 7, seed)
    severities = [None if label == NORM else "BM"[i % 2] for i, label in enumerate(y)]
    return y, p, severities


def test_abnormal_pair_is_one_minus_p_norm() -> None:
    y, p, _ = _mias_set()
    pairs = clinical_pairs(y, p, MIAS_CLASSES)
    abnormal = pairs["abnormal"]
    assert abnormal["score"] == "1 - p(NORM)" and pairs["malignant"] is None
    assert abnormal["auc"] == pytest.approx(sk.roc_auc_score(y != NORM, 1 - p[:, NORM]))
    assert abnormal["n_negative"] == (y == NORM).sum()
    assert classification_summary(y, p, MIAS_CLASSES)["auc_abnormal"] == \
        pytest.approx(abnormal["auc"])


def test_malignant_pair_uses_abnormal_films_and_names_its_score() -> None:
    y, p, severities = _mias_set()
    abnormal = np.array([s is not None for s in severities])
    malignant = np.array([s == "M" for s in severities])
    stand_in = clinical_pairs(y, p, MIAS_CLASSES, severities=severities)["malignant"]
    assert "stand-in" in stand_in["score"]
    assert stand_in["n_positive"] + stand_in["n_negative"] == abnormal.sum()
    assert stand_in["auc"] == pytest.approx(
        sk.roc_auc_score(malignant[abnormal], 1 - p[abnormal, NORM]))
    scores = np.where(malignant, 0.9, 0.1)  # a malignancy output that is always right
    scored = clinical_pairs(y, p, MIAS_CLASSES, severities, malignancy_scores=scores)
    assert scored["malignant"]["auc"] == 1.0
    assert scored["malignant"]["score"] == "malignancy score"
    json.dumps(scored, allow_nan=False)


def test_malignant_pair_for_pathology_classes() -> None:
    y, p = _random_set(80, 2, seed=7)
    pairs = clinical_pairs(y, p, PATHOLOGY_CLASSES)
    assert pairs["abnormal"] is None
    assert pairs["malignant"]["score"] == "p(MALIGNANT)"
    assert pairs["malignant"]["auc"] == pytest.approx(sk.roc_auc_score(y == 1, p[:, 1]))


def test_malignant_pair_undefined_or_refused() -> None:
    y, p, _ = _mias_set(20)
    only_benign = [None if label == NORM else "B" for label in y]
    pair = clinical_pairs(y, p, MIAS_CLASSES, only_benign)["malignant"]
    assert pair["auc"] is None and pair["n_positive"] == 0
    assert clinical_pairs([0, 1], [[0.4, 0.6], [0.3, 0.7]], ("cat", "dog")) == {
        "abnormal": None, "malignant": None}
    with pytest.raises(ValueError, match="severity"):
        clinical_pairs(y, p, MIAS_CLASSES, ["X"] * len(y))
    with pytest.raises(ValueError):
        clinical_pairs(y, p, MIAS_CLASSES, only_benign[:-1])


# --- the stored summary ---------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_summary_keeps_its_keys_and_matches_sklearn() -> None:
    y, p = _random_set(150, 7, seed=8)
    y[y == 0] = 1  # ARCH absent from the truth
    summary = classification_summary(y, p, MIAS_CLASSES, majority_class=NORM)
    pred = p.argmax(axis=1)
    assert set(summary) >= {"n", "labels", "accuracy", "balanced_accuracy", "macro_f1",
                            "weighted_f1", "per_class", "auc_abnormal", "auc", "baselines",
                            "confusion_matrix", "auc_ovr_macro"}
    labels = range(7)
    assert summary["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert summary["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert summary["macro_f1"] == pytest.approx(
        sk.f1_score(y, pred, labels=labels, average="macro", zero_division=0))
    assert summary["weighted_f1"] == pytest.approx(
        sk.f1_score(y, pred, labels=labels, average="weighted", zero_division=0))
    assert summary["confusion_matrix"] == sk.confusion_matrix(y, pred, labels=labels).tolist()
    assert summary["auc"] is None
    calc = summary["per_class"]["CALC"]
    assert set(calc) == {"precision", "recall", "f1", "support", "sensitivity", "specificity"}
    assert calc["sensitivity"] == calc["recall"]
    negatives = y != 2
    assert calc["specificity"] == pytest.approx((pred[negatives] != 2).mean())
    assert summary["per_class"]["ARCH"]["sensitivity"] is None
    assert summary["per_class"]["ARCH"]["recall"] == 0.0
    majority = summary["baselines"]["majority"]
    assert majority["class"] == "NORM"
    assert majority["accuracy"] == pytest.approx((y == NORM).mean())
    json.dumps(summary, allow_nan=False)


def test_summary_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValueError):
        classification_summary([0, 1], np.full((3, 2), 0.5), ("a", "b"))
    with pytest.raises(ValueError):
        classification_summary([0, 2], np.full((2, 2), 0.5), ("a", "b"))


# --- bootstrap --------------------------------------------------------------------------------

def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float((p.argmax(axis=1) == y).mean())


def test_bootstrap_contains_the_estimate_and_narrows_with_more_films() -> None:
    widths = []
    for n in (60, 960):
        y, p = _random_set(n, 3, seed=9)
        ci = bootstrap_ci(y, p, _accuracy, n=500)
        assert ci["low"] <= ci["estimate"] <= ci["high"]
        assert ci["estimate"] == pytest.approx(_accuracy(y, p))
        widths.append(ci["high"] - ci["low"])
    assert widths[1] < widths[0] / 2  # about 1/sqrt(16) as wide


def test_bootstrap_is_deterministic_by_seed() -> None:
    y, p = _random_set(100, 3, seed=10)
    first, again = bootstrap_ci(y, p, _accuracy, seed=1), bootstrap_ci(y, p, _accuracy, seed=1)
    assert first == again
    assert bootstrap_ci(y, p, _accuracy, seed=2) != first


def test_patient_resampling_keeps_a_patients_films_together() -> None:
    # patient "a" has films 0 and 1, patient "b" films 2, 3 and 4, patient "c" film 5
    groups = ["a", "a", "b", "b", "b", "c"]
    drawn = []

    def record(y: np.ndarray, p: np.ndarray) -> float:
        drawn.append(np.bincount(p[:, 0].astype(int), minlength=6))
        return 0.0

    film_ids = np.column_stack([np.arange(6.0), np.zeros(6)])
    ci = bootstrap_ci(np.zeros(6), film_ids, record, n=200, groups=groups)
    assert ci["unit"] == "patient" and ci["n_resamples"] == 200
    counts = np.array(drawn[:-1])  # the last call is the estimate on all films
    assert (counts[:, 0] == counts[:, 1]).all()
    assert (counts[:, 2] == counts[:, 3]).all() and (counts[:, 3] == counts[:, 4]).all()
    assert len({tuple(c) for c in counts}) > 3  # and it does resample

    # one patient always right, one always wrong: whole patients give 0, 1/2 or 1 only
    right_wrong = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    values = []

    def accuracy(y: np.ndarray, p: np.ndarray) -> float:
        values.append(_accuracy(y, p))
        return values[-1]

    bootstrap_ci(np.zeros(4), right_wrong, accuracy, n=200, groups=["x", "x", "y", "y"])
    assert set(values) == {0.0, 0.5, 1.0}
    values.clear()
    bootstrap_ci(np.zeros(4), right_wrong, accuracy, n=200)
    assert {0.25, 0.75} <= set(values)


def test_bootstrap_skips_resamples_without_an_auc() -> None:
    y = np.array([NORM] * 5 + [0])  # a single abnormal film
    p = np.full((6, 7), 1 / 7)
    auc = headline_metrics(MIAS_CLASSES)["auc_abnormal"]
    ci = bootstrap_ci(y, p, auc, n=200)
    assert 0 < ci["n_resamples"] < 200  # a third of resamples miss the abnormal film
    with pytest.raises(ValueError):
        bootstrap_ci(y, p, auc, groups=["a", "b"])


def test_confidence_intervals_for_the_headline_figures_are_fast() -> None:
    y, p = _random_set(256, 7, seed=11)
    summary = classification_summary(y, p, MIAS_CLASSES)
    patients = np.arange(256) // 2
    start = time.perf_counter()
    result = add_confidence_intervals(summary, y, p, groups=patients, n=1000)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, f"{elapsed:.2f} s for 256 films x 1000 resamples"
    intervals = result["confidence_intervals"]
    assert set(intervals) == {"accuracy", "balanced_accuracy", "macro_f1", "weighted_f1",
                              "auc_abnormal"}
    for name, ci in intervals.items():
        assert ci["estimate"] == pytest.approx(summary[name]), name
        assert ci["low"] < ci["estimate"] < ci["high"] and ci["unit"] == "patient"
    assert "confidence_intervals" not in summary  # the summary itself is left alone
    binary = classification_summary(*_random_set(50, 2, seed=12), PATHOLOGY_CLASSES)
    assert "auc_abnormal" not in add_confidence_intervals(
        binary, *_random_set(50, 2, seed=12), n=50)["confidence_intervals"]
