"""Classification metrics from labels and probabilities, apart from any plotting.

Every summary carries the trivial baselines (always the majority class; chance) beside the
model's figures, so a weak model fools nobody: on mini-MIAS, answering NORM for every film
already scores a weighted F1 near 0.5.

The tables follow the two papers this project implements, so their figures can be held
against ours: the first paper's classification report (per class precision, recall, F1 and
support with micro, macro and weighted averages) and the second paper's one-vs-rest counts
(TN, FN, TP, FP, sensitivity, precision, specificity, F-measure). All the count-based figures
come from one confusion matrix, so the report, the summary and the bootstrap cannot disagree.
Undefined ratios (0/0) are None in the count tables; the report follows scikit-learn's
``zero_division=0`` so that its averages match scikit-learn's and the paper's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from core.metrics.headline import FROM_CONFUSION, HEADLINE, SCREENING_SPECIFICITY
from core.metrics.positive import abnormal_question, malignant_question

#: A headline figure of one set of films: (labels, probabilities) -> value, None if undefined.
MetricFn = Callable[[np.ndarray, np.ndarray], "float | None"]

#: Curves are cut to about this many points: enough to draw, small enough for JSON reports.
CURVE_POINTS = 200
AVERAGES = ("micro avg", "macro avg", "weighted avg")
MALIGNANT_CLASS = "MALIGNANT"


def _arrays(y_true: Any, probabilities: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities as arrays; a mismatch here is a bug in the caller (the
    evaluate command checks a dataset's class set against the run's before scoring)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError(f"need a non-empty 1-D array of labels, got shape {y_true.shape}")
    if probabilities.shape != (len(y_true), n_classes):
        raise ValueError(f"probabilities of shape {probabilities.shape} do not match "
                         f"{len(y_true)} films and {n_classes} classes")
    _check_labels(y_true, n_classes)
    return y_true, probabilities


def _check_labels(labels: np.ndarray, n_classes: int) -> None:
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, "
                         f"got {labels.min()}..{labels.max()}")


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


# --- confusion matrix and the second paper's one-vs-rest counts ---------------------------

def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Counts with rows the true class and columns the predicted class (scikit-learn's
    layout), every class present even when no film has it."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    for labels in (y_true, y_pred):
        if len(labels):
            _check_labels(labels, n_classes)
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def binary_counts(tn: int, fn: int, tp: int, fp: int) -> dict[str, Any]:
    """One row of the second paper's tables 5 and 6, from its four counts.

    Sensitivity is TP/(TP+FN) (recall), specificity TN/(TN+FP), precision TP/(TP+FP),
    F-measure 2TP/(2TP+FP+FN) (the harmonic mean of precision and sensitivity) and accuracy
    (TP+TN)/all. A ratio whose denominator is zero is None: with no positive films there is
    no sensitivity to report, and 0 would read as a failure.
    """
    counts = {"tn": int(tn), "fn": int(fn), "tp": int(tp), "fp": int(fp)}
    if min(counts.values()) < 0:
        raise ValueError(f"counts cannot be negative: {counts}")
    n = sum(counts.values())
    return {**counts, "n": n,
            "accuracy": _ratio(tp + tn, n),
            "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp),
            "precision": _ratio(tp, tp + fp),
            "f_measure": _ratio(2 * tp, 2 * tp + fp + fn)}


def per_class_counts(cm: Any, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each class against all the others (one-vs-rest), as rows of ``binary_counts``."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(classes), len(classes)):
        raise ValueError(f"a confusion matrix of shape {cm.shape} for {len(classes)} classes")
    n = int(cm.sum())
    rows = {}
    for i, name in enumerate(classes):
        tp = int(cm[i, i])
        fn = int(cm[i].sum()) - tp
        fp = int(cm[:, i].sum()) - tp
        rows[name] = binary_counts(tn=n - tp - fn - fp, fn=fn, tp=tp, fp=fp)
    return rows


# --- the first paper's classification report ----------------------------------------------

def _per_class_scores(cm: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 and support per class with scikit-learn's zero_division=0."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1_denominator = support + predicted  # (TP + FN) + (TP + FP)
    f1 = np.divide(2 * tp, f1_denominator, out=np.zeros_like(tp), where=f1_denominator > 0)
    return precision, recall, f1, support


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """The headline figures of a confusion matrix: accuracy, balanced accuracy (mean recall
    over the classes that occur, as scikit-learn), macro F1 (every class counts, an absent one
    as 0) and support-weighted F1."""
    _, recall, f1, support = _per_class_scores(cm)
    n = support.sum()
    return {"accuracy": float(np.trace(cm) / n),
            "balanced_accuracy": float(recall[support > 0].mean()),
            "macro_f1": float(f1.mean()),
            "weighted_f1": float((f1 * support).sum() / n)}


def classification_report(y_true: Any, y_pred: Any, classes: Sequence[str]) -> dict[str, Any]:
    """The first paper's table 1: per class precision, recall, F1 and support, then the
    micro, macro and weighted averages, plus accuracy and balanced accuracy.

    Unlike scikit-learn's report, the micro average is always given (it is what the paper
    prints); for single-label classification it equals accuracy. The macro average counts a
    class that has no film as 0, as scikit-learn does when told every label.
    """
    cm = confusion_matrix(y_true, y_pred, len(classes))
    precision, recall, f1, support = _per_class_scores(cm)
    n = int(support.sum())
    if n == 0:
        raise ValueError("no films to report on")
    micro = float(np.trace(cm) / n)

    def row(p: float, r: float, f: float, s: float) -> dict[str, Any]:
        return {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}

    weights = support / n
    return {
        "labels": list(classes),
        "per_class": {name: row(precision[i], recall[i], f1[i], support[i])
                      for i, name in enumerate(classes)},
        "averages": {
            "micro avg": row(micro, micro, micro, n),
            "macro avg": row(precision.mean(), recall.mean(), f1.mean(), n),
            "weighted avg": row((precision * weights).sum(), (recall * weights).sum(),
                                (f1 * weights).sum(), n),
        },
        "accuracy": micro,
        "balanced_accuracy": scores_from_confusion(cm)["balanced_accuracy"],
        "confusion_matrix": cm.tolist(),
    }


def report_rows(report: dict[str, Any], digits: int | None = None) -> list[dict[str, Any]]:
    """The report as table rows in the paper's order (classes, then micro, macro and
    weighted averages), each ``{"label", "precision", "recall", "f1", "support"}``; for a CSV
    file or a data frame. ``digits`` rounds for display (the paper prints 2)."""
    rows = [{"label": name, **report["per_class"][name]} for name in report["labels"]]
    rows += [{"label": name, **report["averages"][name]} for name in AVERAGES]
    if digits is not None:
        rows = [{key: round(value, digits) if isinstance(value, float) else value
                 for key, value in r.items()} for r in rows]
    return rows


# --- ROC and precision-recall curves -------------------------------------------------------

def downsample_indices(x: Any, y: Any, max_points: int = CURVE_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` points spread evenly along a curve's length.

    Spacing by arc length rather than by index keeps the corners of a stepped ROC curve,
    which index spacing would cut where thresholds crowd. The first and last points are
    always kept and the order never changes, so a monotone curve stays monotone.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) <= max_points:
        return np.arange(len(x))
    if max_points < 2:
        raise ValueError(f"a curve needs at least 2 points, got max_points={max_points}")
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    if length[-1] > 0:
        picked = np.searchsorted(length, np.linspace(0.0, length[-1], max_points))
    else:
        picked = np.linspace(0, len(x) - 1, max_points).round().astype(np.int64)
    picked = np.minimum(picked, len(x) - 1)
    return np.unique(np.concatenate([[0], picked, [len(x) - 1]]))


def _curve(names: tuple[str, str, str], x: np.ndarray, y: np.ndarray, thresholds: np.ndarray,
           max_points: int) -> dict[str, list[Any]]:
    """Plain lists for JSON; an infinite threshold (nothing called positive) becomes None."""
    keep = downsample_indices(x, y, max_points)
    return {names[0]: x[keep].tolist(), names[1]: y[keep].tolist(),
            names[2]: [float(t) if np.isfinite(t) else None for t in thresholds[keep]]}


def _positive_and_score(positive: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if positive.shape != score.shape or positive.ndim != 1:
        raise ValueError(f"{positive.shape} labels but {score.shape} scores")
    if not np.isfinite(score).all():
        raise ValueError("scores must be finite numbers")
    return positive, score


def roc_pr(positive: Any, score: Any, max_points: int = CURVE_POINTS) -> dict[str, Any]:
    """AUC, average precision and both curves of one binary problem (higher score = more
    likely positive). AUC, AP and the curves are None when only one kind of film is present.

    The ROC curve runs from (0, 0) to (1, 1) with falling thresholds; the precision-recall
    curve is put in the same order (recall rising from 0), its first point having no
    threshold. Areas are computed on the full curves, before downsampling.
    """
    positive, score = _positive_and_score(positive, score)
    n_positive = int(positive.sum())
    result: dict[str, Any] = {"n_positive": n_positive, "n_negative": len(positive) - n_positive,
                              "auc": None, "average_precision": None, "roc": None, "pr": None}
    if n_positive in (0, len(positive)):
        return result
    fpr, tpr, roc_thresholds = roc_curve(positive, score)
    precision, recall, pr_thresholds = precision_recall_curve(positive, score)
    result.update(
        auc=float(roc_auc_score(positive, score)),
        average_precision=float(average_precision_score(positive, score)),
        roc=_curve(("fpr", "tpr", "thresholds"), fpr, tpr, roc_thresholds, max_points),
        pr=_curve(("recall", "precision", "thresholds"), recall[::-1], precision[::-1],
                  np.concatenate([[np.inf], pr_thresholds[::-1]]), max_points))
    return result


def one_vs_rest(y_true: Any, probabilities: Any, classes: Sequence[str],
                max_points: int = CURVE_POINTS) -> dict[str, Any]:
    """Each class scored by its own probability against all the others.

    A class with no film in ``y_true`` (or only films of it) has no ROC curve: its entry is
    None and the macro figures average the classes that have one (``n_classes_scored``),
    rather than failing as scikit-learn's multi-class AUC does.
    """
    y_true, probabilities = _arrays(y_true, probabilities, len(classes))
    per_class: dict[str, dict[str, Any] | None] = {}
    for i, name in enumerate(classes):
        entry = roc_pr(y_true == i, probabilities[:, i], max_points)
        per_class[name] = entry if entry["auc"] is not None else None
    scored = [e for e in per_class.values() if e is not None]
    return {"per_class": per_class, "n_classes_scored": len(scored),
            "macro_auc": float(np.mean([e["auc"] for e in scored])) if scored else None,
            "macro_average_precision":
                float(np.mean([e["average_precision"] for e in scored])) if scored else None}


def _severities(severities: Sequence[str | None], n: int) -> np.ndarray:
    if len(severities) != n:
        raise ValueError(f"{len(severities)} severities for {n} films")
    clean = np.array([(s or "").strip().upper() for s in severities], dtype=object)
    bad = [i for i, s in enumerate(clean) if s not in ("", "B", "M")]
    if bad:
        raise ValueError(f"severity of film {bad[0]} is {severities[bad[0]]!r}, "
                         "not 'B', 'M' or None")
    return clean


def clinical_pairs(y_true: Any, probabilities: Any, classes: Sequence[str],
                   severities: Sequence[str | None] | None = None,
                   malignancy_scores: Any = None,
                   max_points: int = CURVE_POINTS) -> dict[str, dict[str, Any] | None]:
    """The two questions a clinician asks, each as a binary ROC/PR problem.

    ``abnormal``: any lesion vs a normal film, scored 1 - p(NORM); None without a NORM class
    (CBIS-DDSM has only abnormal films).

    ``malignant``: the malignant films against the others. For a two-class dataset with a
    positive class (``core.data.records.positive_class``: CBIS-DDSM's MALIGNANT, RSNA's
    cancer) that is the positive class vs the negative one over every film, scored by
    p(positive): the class is the truth, whatever the severities say. Otherwise it is
    malignant vs benign among the abnormal films only (a normal film has no severity): the
    truth is ``severities`` (per film "B", "M" or None; MIAS's severity column) or, without
    them, the class itself when the classes include MALIGNANT. The score, named in
    ``score``, is the first of: ``malignancy_scores`` (per film, from a model with a
    malignancy output; NaN allowed outside the pair), p(MALIGNANT), or else 1 - p(NORM), a
    stand-in that only says whether the model finds malignant films more abnormal than
    benign ones: the seven-class MIAS model has no malignancy output. None when no truth is
    available.
    """
    y_true, probabilities = _arrays(y_true, probabilities, len(classes))
    abnormal = None
    question = abnormal_question(classes)
    if question is not None:
        abnormal = {**question.describe(),
                    **roc_pr(question.truth(y_true), question.scores(probabilities),
                             max_points)}
    pair = _malignant_pair(y_true, probabilities, classes, severities, malignancy_scores)
    if pair is None:
        return {"abnormal": abnormal, "malignant": None}
    in_pair, positive, score, names = pair
    malignant = {**names, **roc_pr(positive[in_pair], score[in_pair], max_points)}
    return {"abnormal": abnormal, "malignant": malignant}


def _malignant_pair(y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str],
                    severities: Sequence[str | None] | None, malignancy_scores: Any
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, str]] | None:
    """Which films ``clinical_pairs``' malignant pair compares (a mask), which of them are
    positive, their scores and the pair's names; None where there is no such pair."""
    n = len(y_true)
    two_class = malignant_question(classes)
    if two_class is not None:
        in_pair, positive = np.ones(n, dtype=bool), two_class.truth(y_true)
        names = {"positive": two_class.positive, "negative": two_class.negative}
    elif severities is not None:
        severity = _severities(severities, n)
        in_pair, positive = severity != "", severity == "M"
        names = {"positive": "malignant", "negative": "benign"}
    elif MALIGNANT_CLASS in classes:
        in_pair, positive = np.ones(n, dtype=bool), y_true == classes.index(MALIGNANT_CLASS)
        names = {"positive": "malignant", "negative": "benign"}
    else:
        return None

    if malignancy_scores is not None:
        score = np.asarray(malignancy_scores, dtype=np.float64)
        if score.shape != (n,):
            raise ValueError(f"{score.shape} malignancy scores for {n} films")
        name = "malignancy score"
    elif two_class is not None:
        score, name = two_class.scores(probabilities), two_class.score
    elif MALIGNANT_CLASS in classes:
        score, name = probabilities[:, classes.index(MALIGNANT_CLASS)], f"p({MALIGNANT_CLASS})"
    elif (abnormal := abnormal_question(classes)) is not None:
        score = abnormal.scores(probabilities)
        name = f"{abnormal.score} (stand-in: the model has no malignancy output)"
    else:
        return None
    return in_pair, positive, score, {**names, "score": name}


# --- screening figures: sensitivity at a fixed specificity, per film and per woman --------

def full_roc(positive: np.ndarray, score: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct score as a threshold, falling, after infinity (nothing positive), with
    the true and false positives at each: scikit-learn's ``roc_curve`` with
    ``drop_intermediate=False``, as counts. ``positive`` is boolean."""
    order = np.argsort(-score, kind="stable")
    falling, hits = score[order], positive[order]
    last_of_value = np.r_[falling[1:] != falling[:-1], True]
    thresholds = np.r_[np.inf, falling[last_of_value]]
    tp = np.r_[0, np.cumsum(hits)[last_of_value]]
    fp = np.r_[0, np.cumsum(~hits)[last_of_value]]
    return thresholds, tp, fp


def operating_point(positive: Any, score: Any,
                    min_specificity: float = SCREENING_SPECIFICITY) -> dict[str, Any] | None:
    """The threshold a screening reader would pick: the highest sensitivity among the
    thresholds whose specificity is at least ``min_specificity``.

    A film is called positive when its score is >= the threshold. The thresholds tried are
    every distinct score plus infinity (nothing called positive: sensitivity 0,
    specificity 1, so some threshold always qualifies); these are the points of
    scikit-learn's ``roc_curve(..., drop_intermediate=False)``. Specificity is compared
    exactly as TN / negatives >= ``min_specificity`` (9 of 10 negatives is 0.9 and
    qualifies). Among thresholds of equal, highest sensitivity the one with the highest
    specificity is reported. Why this rule and not the threshold nearest to 90%: it never
    trades the specificity promised for sensitivity, and it is the figure screening studies
    quote. None when only one kind of film is present (neither rate is defined).
    """
    positive, score = _positive_and_score(positive, score)
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return None
    thresholds, tp, fp = full_roc(positive, score)
    specificity = (n_negative - fp) / n_negative
    allowed = specificity >= min_specificity  # a prefix: false positives only grow
    best = int(np.argmax(np.where(allowed, tp, -1)))  # first of the highest: least fp
    return {"threshold": float(thresholds[best]) if np.isfinite(thresholds[best]) else None,
            "sensitivity": float(tp[best] / n_positive),
            "specificity": float(specificity[best]),
            "min_specificity": float(min_specificity),
            "n_positive": n_positive, "n_negative": n_negative}


def sensitivity_at_specificity(positive: Any, score: Any,
                               min_specificity: float = SCREENING_SPECIFICITY) -> float | None:
    """``operating_point``'s sensitivity alone (the headline figure and its bootstrap)."""
    point = operating_point(positive, score, min_specificity)
    return None if point is None else point["sensitivity"]


def patient_scores(positive: Any, score: Any, patients: Any
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patient (sorted ids): her id, whether any of her films is positive, and her
    highest film score. A woman is recalled when any film looks suspicious, so her
    screening score is her most suspicious film's, and she has cancer when any film
    shows it."""
    positive, score = _positive_and_score(positive, score)
    patients = np.asarray(patients)
    if patients.shape != positive.shape:
        raise ValueError(f"{patients.shape} patient ids for {positive.shape} films")
    ids, patient_of = np.unique(patients, return_inverse=True)
    any_positive = np.zeros(len(ids), dtype=bool)
    np.logical_or.at(any_positive, patient_of, positive)
    highest = np.full(len(ids), -np.inf)
    np.maximum.at(highest, patient_of, score)
    return ids, any_positive, highest


def patient_level(y_true: Any, probabilities: Any, classes: Sequence[str],
                  patients: Any) -> dict[str, Any] | None:
    """The screening figures per woman for a two-class dataset with a positive class
    (``positive_class``); None for any other class set (MIAS's seven classes).

    Each woman is scored by her highest film's p(positive) and is positive when any of her
    films is (``patient_scores``): ``auc`` is the ROC AUC over women and
    ``sensitivity_at_90_specificity`` (with its ``threshold`` and ``specificity``) is
    ``operating_point`` over women; both None when all women are of one kind.
    """
    y_true, probabilities = _arrays(y_true, probabilities, len(classes))
    malignant = malignant_question(classes)
    if malignant is None:
        return None
    _, positive, score = patient_scores(malignant.truth(y_true),
                                        malignant.scores(probabilities), patients)
    point = operating_point(positive, score)
    n_positive = int(positive.sum())
    return {"n_patients": len(positive), "n_positive": n_positive,
            "n_negative": len(positive) - n_positive,
            "score": f"highest {malignant.score} of her films",
            "auc": rank_auc(positive, score),
            "sensitivity_at_90_specificity": None if point is None else point["sensitivity"],
            "threshold": None if point is None else point["threshold"],
            "specificity": None if point is None else point["specificity"]}


# --- bootstrap confidence intervals --------------------------------------------------------

def rank_auc(positive: Any, score: Any) -> float | None:
    """ROC AUC as the Mann-Whitney statistic (ties count one half): the same number as
    scikit-learn's, in a few microseconds, which is what a thousand bootstrap resamples
    need. None when only one kind of film is present."""
    positive, score = _positive_and_score(positive, score)
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return None
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # mean 1-based rank of ties
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2)
                 / (n_positive * n_negative))


def headline_metrics(classes: Sequence[str]) -> dict[str, MetricFn]:
    """The film-level figures given a confidence interval, as fast functions of (labels,
    probabilities): the registry's figures of the confusion matrix (accuracy, balanced
    accuracy, macro and weighted F1); with a NORM class, the abnormal-vs-normal AUC; with a
    two-class dataset's positive class, ``auc_malignant`` (positive vs negative) and
    ``sensitivity_at_90_specificity``. The patient-level figures have their own
    (``patient_metrics``); MIAS's malignant-vs-benign AUC needs severities and has none."""

    def from_confusion(name: str) -> MetricFn:
        def metric(y_true: np.ndarray, probabilities: np.ndarray) -> float:
            cm = confusion_matrix(y_true, probabilities.argmax(axis=1), probabilities.shape[1])
            return scores_from_confusion(cm)[name]
        return metric

    metrics = {m.key: from_confusion(m.key) for m in HEADLINE if m.computed_by == FROM_CONFUSION}
    abnormal = abnormal_question(classes)
    if abnormal is not None:
        metrics["auc_abnormal"] = lambda y, p: rank_auc(abnormal.truth(y), abnormal.scores(p))
    malignant = malignant_question(classes)
    if malignant is not None:
        metrics["auc_malignant"] = \
            lambda y, p: rank_auc(malignant.truth(y), malignant.scores(p))
        metrics["sensitivity_at_90_specificity"] = \
            lambda y, p: sensitivity_at_specificity(malignant.truth(y), malignant.scores(p))
    return metrics


def patient_metrics() -> dict[str, MetricFn]:
    """The patient-level figures given a confidence interval, as functions of one row per
    woman (``patient_scores``): labels 1 for a woman with cancer, her highest score."""
    return {"patient_auc": lambda y, s: rank_auc(y == 1, s),
            "patient_sensitivity_at_90_specificity":
                lambda y, s: sensitivity_at_specificity(y == 1, s)}


def _resamples(n_items: int, n: int, seed: int, groups: Any) -> Iterator[np.ndarray]:
    """Index arrays of bootstrap resamples: films drawn with replacement, or patients drawn
    with replacement and each drawn patient contributing all of its films."""
    rng = np.random.default_rng(seed)
    if groups is None:
        for _ in range(n):
            yield rng.integers(0, n_items, n_items)
        return
    groups = np.asarray(groups)
    if groups.shape != (n_items,):
        raise ValueError(f"{groups.shape} patient ids for {n_items} films")
    _, group_of = np.unique(groups, return_inverse=True)
    n_groups = int(group_of.max()) + 1
    films = np.arange(n_items)
    for _ in range(n):
        times_drawn = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        yield np.repeat(films, times_drawn[group_of])


def bootstrap_ci(y_true: Any, probabilities: Any, metric_fn: MetricFn, n: int = 1000,
                 seed: int = 0, groups: Any = None, level: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap interval of ``metric_fn`` over the films.

    ``groups`` (one patient id per film) resamples patients instead of films. The films of
    one patient are not independent draws: mini-MIAS pairs the left and right films of each
    woman, CBIS-DDSM has CC and MLO views of the same breast, and such films tend to be
    right or wrong together. Resampling films one by one treats them as independent and
    gives intervals that are too narrow; drawing whole patients, the unit that was sampled
    (and the unit our splits keep apart), keeps that correlation inside every resample.

    Resamples where the metric is undefined (an AUC drawn with one kind of film only) are
    skipped and not counted in ``n_resamples``. Deterministic for a given ``seed``.
    """
    if n < 1 or not 0 < level < 1:
        raise ValueError(f"need n >= 1 and 0 < level < 1, got n={n}, level={level}")
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(y_true) == 0 or len(probabilities) != len(y_true):
        raise ValueError(f"{len(y_true)} labels for {len(probabilities)} rows of probabilities")
    values = [metric_fn(y_true[i], probabilities[i])
              for i in _resamples(len(y_true), n, seed, groups)]
    values = np.array([v for v in values if v is not None], dtype=np.float64)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (None, None)
    return {"estimate": metric_fn(y_true, probabilities),
            "low": None if low is None else float(low),
            "high": None if high is None else float(high),
            "level": level, "n_resamples": len(values),
            "unit": "film" if groups is None else "patient"}


def add_confidence_intervals(summary: dict[str, Any], y_true: Any, probabilities: Any,
                             groups: Any = None, n: int = 1000, seed: int = 0
                             ) -> dict[str, Any]:
    """A copy of a ``classification_summary`` with ``confidence_intervals``: a bootstrap
    interval for each film-level headline figure, all from the same resamples (same seed),
    and, given ``groups`` and a two-class dataset's positive class, for each patient-level
    figure, from resamples of the women (the unit those figures count)."""
    classes = summary["labels"]
    metrics = headline_metrics(classes)
    intervals = {name: bootstrap_ci(y_true, probabilities, fn, n=n, seed=seed, groups=groups)
                 for name, fn in metrics.items()}
    malignant = malignant_question(classes)
    if groups is not None and malignant is not None:
        y_true, probabilities = _arrays(y_true, probabilities, len(classes))
        women, ill, highest = patient_scores(malignant.truth(y_true),
                                             malignant.scores(probabilities), groups)
        intervals.update({name: bootstrap_ci(ill.astype(np.int64), highest, fn, n=n,
                                             seed=seed, groups=women)
                          for name, fn in patient_metrics().items()})
    return {**summary, "confidence_intervals": intervals}


# --- the summary that training, cross-validation and evaluation store --------------------

def _auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC, or None when only one kind of film is present (AUC is undefined)."""
    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, score))


def _headline(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    return scores_from_confusion(confusion_matrix(y_true, y_pred, n_classes))


def classification_summary(y_true: Any, probabilities: Any, classes: tuple[str, ...],
                           majority_class: int | None = None) -> dict[str, Any]:
    """Headline metrics, per-class scores, AUCs and the trivial baselines.

    ``majority_class`` is the training split's most common class (the always-majority
    baseline must not peek at the test labels); by default the most common class here.
    ``auc_abnormal`` (MIAS: anything but NORM vs NORM, scored by 1 - p(NORM)), ``auc``
    (two-class problems, scored by p(second class)) and ``sensitivity_at_90_specificity``
    (two-class problems with a positive class, ``positive_class``: ``operating_point`` of
    p(positive)) are None where they do not apply;
    ``auc_ovr_macro`` is the mean one-vs-rest AUC over the classes present. Per class,
    ``sensitivity`` and ``specificity`` are one-vs-rest (None when undefined, e.g. the
    sensitivity of a class with no film here, whose ``recall`` reads 0 as in scikit-learn).
    """
    y_true, probabilities = _arrays(y_true, probabilities, len(classes))
    n_classes = len(classes)
    y_pred = probabilities.argmax(axis=1)
    report = classification_report(y_true, y_pred, classes)
    counts = per_class_counts(report["confusion_matrix"], classes)
    summary: dict[str, Any] = {"n": len(y_true), "labels": list(classes),
                               **_headline(y_true, y_pred, n_classes)}
    summary["per_class"] = {
        name: {**report["per_class"][name], "sensitivity": counts[name]["sensitivity"],
               "specificity": counts[name]["specificity"]}
        for name in classes}
    summary["confusion_matrix"] = report["confusion_matrix"]
    abnormal = abnormal_question(classes)
    summary["auc_abnormal"] = None if abnormal is None else \
        _auc(abnormal.truth(y_true), abnormal.scores(probabilities))
    summary["auc"] = _auc(y_true == 1, probabilities[:, 1]) if n_classes == 2 else None
    malignant = malignant_question(classes)
    summary["sensitivity_at_90_specificity"] = None if malignant is None else \
        sensitivity_at_specificity(malignant.truth(y_true), malignant.scores(probabilities))
    class_aucs = [a for a in (_auc(y_true == i, probabilities[:, i]) for i in range(n_classes))
                  if a is not None]
    summary["auc_ovr_macro"] = float(np.mean(class_aucs)) if class_aucs else None
    if majority_class is None:
        majority_class = int(np.bincount(y_true, minlength=n_classes).argmax())
    summary["baselines"] = {
        "majority": {"class": classes[majority_class],
                     **_headline(y_true, np.full_like(y_true, majority_class), n_classes)},
        "chance_accuracy": 1.0 / n_classes,
    }
    return summary
