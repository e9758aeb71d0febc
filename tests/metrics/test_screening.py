"""Screening figures of two-class datasets: which class is positive, sensitivity at 90%
specificity, and the same figures per woman, by hand and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from core.data.records import MIAS_CLASSES, PATHOLOGY_CLASSES, positive_class
from core.metrics.scores import (
    add_confidence_intervals,
    classification_summary,
    clinical_pairs,
    headline_metrics,
    operating_point,
    patient_level,
    patient_scores,
    sensitivity_at_specificity,
)

RSNA = ("cancer", "no_cancer")  # alphabetical: the positive class comes first


def _two_class(p_cancer: list[float]) -> np.ndarray:
    """Softmax-like probabilities of RSNA's classes from p(cancer)."""
    p = np.asarray(p_cancer, dtype=np.float64)
    return np.stack([p, 1.0 - p], axis=1)


def _sklearn_sensitivity(positive: np.ndarray, score: np.ndarray,
                         min_specificity: float = 0.9) -> float:
    """The rule of ``operating_point`` on scikit-learn's every-threshold ROC curve (the
    tolerance because 1 - 0.9 is 0.09999999999999998 in floating point)."""
    fpr, tpr, _ = sk.roc_curve(positive, score, drop_intermediate=False)
    return float(tpr[fpr <= 1.0 - min_specificity + 1e-12].max())


# --- which class is positive --------------------------------------------------------------

@pytest.mark.parametrize(("classes", "expected"), [
    (PATHOLOGY_CLASSES, 1), (RSNA, 0), (("no_cancer", "cancer"), 1),
    (("malignant", "benign"), 0),  # a class folder's lower-case name
    (MIAS_CLASSES, None), (("a", "b"), None),
    (("cancer", "MALIGNANT"), None),  # both positive: no way to read the figures
    (("BENIGN", "MALIGNANT", "NORMAL"), None),  # screening figures are two-class only
])
def test_the_positive_class_is_named_not_taken_from_the_order(classes: tuple[str, ...],
                                                              expected: int | None) -> None:
    assert positive_class(classes) == expected


# --- sensitivity at 90% specificity -------------------------------------------------------

def test_operating_point_by_hand() -> None:
    negatives = [i / 10 for i in range(10)]  # 0.0 .. 0.9
    score = np.array([0.95, 0.85, 0.5, 0.05, *negatives])
    positive = np.array([True] * 4 + [False] * 10)
    point = operating_point(positive, score)
    # Calling >= 0.85 positive finds 0.95 and 0.85 (2 of 4) and calls one negative (0.9)
    # positive: specificity 9/10, exactly the promise, which qualifies. Going down to 0.8
    # would cost a second negative (specificity 0.8).
    assert point == {"threshold": 0.85, "sensitivity": 0.5, "specificity": 0.9,
                     "min_specificity": 0.9, "n_positive": 4, "n_negative": 10}
    assert _sklearn_sensitivity(positive, score) == 0.5
    # At 95% no negative may be called positive: only 0.95 is found.
    assert sensitivity_at_specificity(positive, score, 0.95) == 0.25


def test_of_equal_sensitivities_the_most_specific_threshold_is_reported() -> None:
    score = np.array([0.95, *[i / 10 for i in range(10)]])
    positive = np.array([True] + [False] * 10)
    # 0.95 finds the one positive with no false positive; 0.9 finds no more and costs one.
    point = operating_point(positive, score)
    assert (point["threshold"], point["sensitivity"], point["specificity"]) == (0.95, 1.0, 1.0)


def test_ties_count_together_and_nothing_called_positive_is_a_threshold() -> None:
    # The top score is shared by a positive and a negative: calling it costs specificity
    # 5/6, so only "nothing is positive" (no threshold) keeps 90%.
    score = np.array([0.8, 0.8, 0.3, 0.6, 0.1, 0.4, 0.2, 0.5])
    positive = np.array([True, False, True, False, False, False, False, False])
    point = operating_point(positive, score)
    assert point["threshold"] is None and point["sensitivity"] == 0.0
    assert point["specificity"] == 1.0
    assert _sklearn_sensitivity(positive, score) == 0.0


def test_one_kind_of_film_has_no_operating_point() -> None:
    assert operating_point([True, True], [0.2, 0.9]) is None
    assert sensitivity_at_specificity([False, False], [0.2, 0.9]) is None


@pytest.mark.parametrize("seed", range(5))
def test_operating_point_agrees_with_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    positive = rng.random(300) < 0.3
    score = np.round(rng.normal(size=300) + positive, 1)  # rounded: many ties
    for min_specificity in (0.8, 0.9, 0.97):
        assert sensitivity_at_specificity(positive, score, min_specificity) == \
            pytest.approx(_sklearn_sensitivity(positive, score, min_specificity))
    point = operating_point(positive, score)
    called = score >= point["threshold"]
    assert called[positive].mean() == pytest.approx(point["sensitivity"])
    assert (~called[~positive]).mean() == pytest.approx(point["specificity"])
    assert point["specificity"] >= 0.9


# --- per woman ----------------------------------------------------------------------------

#: Four women, two films each. W1 has cancer in one breast; her other film scores higher.
PATIENTS = ["W1", "W1", "W2", "W2", "W3", "W3", "W4", "W4"]
LABELS = np.array([0, 1, 1, 1, 1, 1, 0, 1])  # RSNA: 0 = cancer
P_CANCER = [0.3, 0.8, 0.6, 0.1, 0.4, 0.2, 0.7, 0.5]


def test_a_woman_is_scored_by_her_highest_film_and_positive_if_any_film_is() -> None:
    ids, positive, highest = patient_scores(LABELS == 0, P_CANCER, PATIENTS)
    assert ids.tolist() == ["W1", "W2", "W3", "W4"]
    assert positive.tolist() == [True, False, False, True]
    assert highest.tolist() == [0.8, 0.6, 0.4, 0.7]
    with pytest.raises(ValueError, match="patient ids"):
        patient_scores(LABELS == 0, P_CANCER, PATIENTS[:-1])


def test_patient_level_figures_by_hand_differ_from_the_film_level() -> None:
    probabilities = _two_class(P_CANCER)
    patient = patient_level(LABELS, probabilities, RSNA, PATIENTS)
    # Women: positives 0.8, 0.7 above negatives 0.6, 0.4; the threshold 0.7 finds both
    # without a false positive.
    assert patient == {"n_patients": 4, "n_positive": 2, "n_negative": 2,
                       "score": "highest p(cancer) of her films", "auc": 1.0,
                       "sensitivity_at_90_specificity": 1.0, "threshold": 0.7,
                       "specificity": 1.0}
    assert patient["auc"] == sk.roc_auc_score([1, 0, 0, 1], [0.8, 0.6, 0.4, 0.7])
    # Films: 0.3 beats 2 of the 6 negatives and 0.7 beats 5: AUC 7/12. The top film is a
    # negative (0.8), so no threshold but "none" keeps 90% of six negatives.
    summary = classification_summary(LABELS, probabilities, RSNA)
    assert summary["sensitivity_at_90_specificity"] == 0.0
    pairs = clinical_pairs(LABELS, probabilities, RSNA)
    assert pairs["malignant"]["auc"] == pytest.approx(7 / 12) == \
        sk.roc_auc_score(LABELS == 0, P_CANCER)


def test_patient_level_agrees_with_scikit_learn_on_women_built_by_hand() -> None:
    rng = np.random.default_rng(3)
    patients = np.repeat([f"P{i:02d}" for i in range(40)], 3)
    labels = (rng.random(len(patients)) > 0.15).astype(np.int64)  # 0 = cancer, 15% of films
    p_cancer = rng.random(len(patients)) * 0.6 + 0.4 * (labels == 0)
    expected_positive, expected_score = [], []
    for woman in sorted(set(patients)):
        films = patients == woman
        expected_positive.append(bool((labels[films] == 0).any()))
        expected_score.append(float(p_cancer[films].max()))
    patient = patient_level(labels, _two_class(p_cancer), RSNA, patients)
    assert patient["n_patients"] == 40 and patient["n_positive"] == sum(expected_positive)
    assert patient["auc"] == pytest.approx(sk.roc_auc_score(expected_positive, expected_score))
    assert patient["sensitivity_at_90_specificity"] == pytest.approx(
        _sklearn_sensitivity(np.array(expected_positive), np.array(expected_score)))


def test_seven_classes_have_no_screening_figures() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(14) % 7
    p = rng.dirichlet(np.ones(7), size=14)
    assert patient_level(y, p, MIAS_CLASSES, [str(i // 2) for i in range(14)]) is None
    assert classification_summary(y, p, MIAS_CLASSES)["sensitivity_at_90_specificity"] is None
    assert not {"auc_malignant", "sensitivity_at_90_specificity"} & \
        set(headline_metrics(MIAS_CLASSES))


# --- the malignant pair of a two-class dataset --------------------------------------------

def test_a_two_class_malignant_pair_is_positive_vs_negative_over_every_film() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 60)
    p = _two_class(rng.random(60))
    # Severities that would drop films from MIAS's pair do not apply to a two-class set.
    severities = [None] * 30 + ["B"] * 30
    pair = clinical_pairs(y, p, RSNA, severities=severities)["malignant"]
    assert (pair["positive"], pair["negative"], pair["score"]) == \
        ("cancer", "no_cancer", "p(cancer)")
    assert pair["n_positive"] + pair["n_negative"] == 60
    assert pair["auc"] == pytest.approx(sk.roc_auc_score(y == 0, p[:, 0]))
    pathology = clinical_pairs(y, p, PATHOLOGY_CLASSES)["malignant"]
    assert pathology["score"] == "p(MALIGNANT)"
    assert pathology["auc"] == pytest.approx(sk.roc_auc_score(y == 1, p[:, 1]))


# --- intervals ----------------------------------------------------------------------------

def test_screening_figures_get_patient_intervals() -> None:
    rng = np.random.default_rng(8)
    patients = np.repeat([f"P{i:02d}" for i in range(30)], 4)
    y = (rng.random(120) > 0.3).astype(np.int64)
    p = _two_class(np.clip(rng.random(120) * 0.7 + 0.3 * (y == 0), 0, 1))
    summary = classification_summary(y, p, RSNA)
    result = add_confidence_intervals(summary, y, p, groups=patients, n=200)
    intervals = result["confidence_intervals"]
    patient = patient_level(y, p, RSNA, patients)
    expected = {"auc_malignant": sk.roc_auc_score(y == 0, p[:, 0]),
                "sensitivity_at_90_specificity": summary["sensitivity_at_90_specificity"],
                "patient_auc": patient["auc"],
                "patient_sensitivity_at_90_specificity":
                    patient["sensitivity_at_90_specificity"]}
    for key, value in expected.items():
        ci = intervals[key]
        assert ci["unit"] == "patient" and ci["n_resamples"] > 150, key
        assert ci["estimate"] == pytest.approx(value), key
        assert ci["low"] <= value <= ci["high"] and ci["low"] < ci["high"], key
    # Women are what the patient figures resample: 30 of them, not 120 films.
    assert add_confidence_intervals(summary, y, p, groups=patients, n=200) == result
    assert "patient_auc" not in add_confidence_intervals(summary, y, p, n=50)[
        "confidence_intervals"]
