"""Operating points: the yes/no question of each class set, the figures at a threshold by hand
and against scikit-learn, the presets, and moving the threshold on the stored curve alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as sk

from core.data.records import MIAS_CLASSES, PATHOLOGY_CLASSES, RSNA_CLASSES
from core.metrics.operating import (
    AT_HALF,
    PRESETS,
    SCREENING,
    YOUDEN,
    counts_at,
    curve_thresholds,
    operating_points,
    point_at,
)
from core.metrics.positive import screening_question
from core.metrics.scores import operating_point

NORM = MIAS_CLASSES.index("NORM")


def _scored(n: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Films whose score leans towards the truth; ``ties`` rounds scores so many are equal."""
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < 0.35
    score = np.clip(rng.normal(0.35 + 0.3 * positive, 0.2), 0.0, 1.0)
    return positive, np.round(score, 1) if ties else score


# --- which question, which score ----------------------------------------------------------

def test_the_question_is_cancer_for_two_classes_and_abnormal_with_norm() -> None:
    p = np.array([[0.1, 0.9], [0.7, 0.3]])
    rsna = screening_question(RSNA_CLASSES)
    assert (rsna.key, rsna.positive, rsna.negative, rsna.score) == \
        ("malignant", "cancer", "no_cancer", "p(cancer)")
    assert rsna.truth([1, 0]).tolist() == [True, False]
    assert rsna.scores(p).tolist() == [0.9, 0.3]
    assert screening_question(PATHOLOGY_CLASSES).positive == "MALIGNANT"

    mias = screening_question(MIAS_CLASSES)
    assert (mias.key, mias.positive, mias.score) == ("abnormal", "abnormal", "1 - p(NORM)")
    probabilities = np.full((2, 7), 0.1)
    probabilities[:, NORM] = [0.4, 0.9]
    assert mias.truth([NORM, 0]).tolist() == [False, True]
    assert mias.scores(probabilities) == pytest.approx([0.6, 0.1])
    assert screening_question(("a", "b", "c")) is None


# --- one threshold ------------------------------------------------------------------------

def test_figures_at_a_threshold_by_hand() -> None:
    positive = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    score = np.array([0.9, 0.6, 0.2, 0.7, 0.5, 0.4, 0.1, 0.6])
    point = counts_at(positive, score, 0.5)  # called: 0.9 0.6 | 0.7 0.5 0.6; 0.5 is at it
    assert (point["tp"], point["fn"], point["fp"], point["tn"]) == (2, 1, 3, 2)
    assert point["sensitivity"] == pytest.approx(2 / 3)
    assert point["specificity"] == pytest.approx(2 / 5)
    assert point["ppv"] == pytest.approx(2 / 5) and point["npv"] == pytest.approx(2 / 3)
    assert (point["fpr"], point["tpr"]) == (pytest.approx(3 / 5), pytest.approx(2 / 3))
    assert point["confusion_matrix"] == [[2, 3], [1, 2]]
    assert point["confusion_matrix"] == \
        sk.confusion_matrix(positive, score >= 0.5, labels=[False, True]).tolist()


def test_above_every_score_nothing_is_positive_and_undefined_ratios_are_none() -> None:
    positive = np.array([True, False, False])
    point = counts_at(positive, np.array([0.8, 0.3, 0.2]), None)
    assert (point["tp"], point["fp"], point["tn"], point["fn"]) == (0, 0, 2, 1)
    assert point["sensitivity"] == 0.0 and point["specificity"] == 1.0
    assert point["ppv"] is None  # no film called positive: no PPV, not 0
    assert point["npv"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_threshold_agrees_with_scikit_learn(seed: int) -> None:
    positive, score = _scored(120, seed, ties=seed == 2)
    fpr, tpr, thresholds = sk.roc_curve(positive, score, drop_intermediate=False)
    for x, y, threshold in zip(fpr, tpr, thresholds):
        point = counts_at(positive, score, None if np.isinf(threshold) else threshold)
        assert (point["fpr"], point["tpr"]) == (pytest.approx(x), pytest.approx(y))
        predicted = score >= threshold
        assert point["specificity"] == pytest.approx(sk.recall_score(~positive, ~predicted))
        for figure, truth, called in (("ppv", positive, predicted),
                                      ("npv", ~positive, ~predicted)):
            if called.any():  # the share of the calls that are right
                assert point[figure] == pytest.approx(sk.precision_score(truth, called))
            else:
                assert point[figure] is None  # no such call made: undefined, not 0


# --- presets ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 3])
def test_presets_are_the_screening_point_youden_and_one_half(seed: int) -> None:
    positive, score = _scored(150, seed)
    points = operating_points(positive, score, screening_question(RSNA_CLASSES))
    presets = {p["key"]: p for p in points["presets"]}
    assert [p["key"] for p in points["presets"]] == [p.key for p in PRESETS]
    assert all(p["label"] and "_" not in p["label"] for p in points["presets"])

    screening = operating_point(positive, score)
    assert presets[SCREENING.key]["threshold"] == screening["threshold"]
    assert presets[SCREENING.key]["sensitivity"] == pytest.approx(screening["sensitivity"])
    assert presets[SCREENING.key]["specificity"] >= 0.9

    fpr, tpr, thresholds = sk.roc_curve(positive, score, drop_intermediate=False)
    youden = presets[YOUDEN.key]
    assert youden["tpr"] - youden["fpr"] == pytest.approx((tpr - fpr).max())
    assert youden["threshold"] == thresholds[int(np.argmax(tpr - fpr))]

    half = presets[AT_HALF.key]
    assert half["threshold"] == 0.5
    assert half["tp"] == int((positive & (score >= 0.5)).sum())
    assert half["fp"] == int((~positive & (score >= 0.5)).sum())
    assert points["n_positive"] == positive.sum() and points["score"] == "p(cancer)"
    json.dumps(points)  # goes into evaluate --json as it is


def test_one_kind_of_film_has_no_operating_points() -> None:
    question = screening_question(RSNA_CLASSES)
    assert operating_points(np.ones(5, bool), np.linspace(0, 1, 5), question) is None


# --- moving the threshold on the stored curve ---------------------------------------------

@pytest.mark.parametrize("max_points", [2000, 12])
def test_the_stored_curve_gives_the_counts_rescoring_gives(max_points: int) -> None:
    """At every threshold the page offers, the stored curve alone gives the counts scoring
    the films again gives; with a curve cut to a few points, still at every point kept."""
    positive, score = _scored(200, 4, ties=True)
    points = operating_points(positive, score, screening_question(RSNA_CLASSES),
                              max_points=max_points)
    offered = curve_thresholds(points)
    assert offered[-1] is None and 0.5 in offered
    assert offered[:-1] == sorted(offered[:-1])
    if max_points == 2000:
        assert len(points["roc"]["thresholds"]) == len(np.unique(score)) + 1
        tried = [*offered, 0.05, 0.333, 0.77, 0.999]  # between scores too
    else:
        assert len(points["roc"]["thresholds"]) <= max_points + len(PRESETS)
        tried = offered
    for threshold in tried:
        assert point_at(points, threshold) == counts_at(positive, score, threshold), threshold
    for preset in points["presets"]:
        stored = point_at(points, preset["threshold"])
        assert {k: stored[k] for k in ("tp", "fp", "tn", "fn")} == \
            {k: preset[k] for k in ("tp", "fp", "tn", "fn")}


def test_a_higher_threshold_never_finds_more() -> None:
    positive, score = _scored(80, 5)
    points = operating_points(positive, score, screening_question(RSNA_CLASSES))
    walk = [point_at(points, t) for t in curve_thresholds(points)]
    assert [p["tp"] for p in walk] == sorted((p["tp"] for p in walk), reverse=True)
    assert [p["fp"] for p in walk] == sorted((p["fp"] for p in walk), reverse=True)
    assert walk[-1]["tp"] == walk[-1]["fp"] == 0
