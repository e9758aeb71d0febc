"""The registry of headline figures: each figure is computed where it says, carries the
baselines it claims, and every consumer (runs table, report, saved evaluation, cross-
validation, sweeps, confidence intervals) lists exactly the registry's figures in its order."""

from __future__ import annotations

import html
import importlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.data.records import MIAS_CLASSES, PATHOLOGY_CLASSES, FilmRecord, Lesion
from core.metrics.headline import (
    FROM_CONFUSION,
    HEADLINE,
    RANKED_BY,
    TEST_ONLY,
    VALIDATION,
    by_key,
    keys,
)
from core.metrics.scores import (
    classification_summary,
    clinical_pairs,
    confusion_matrix,
    headline_metrics,
    patient_level,
    scores_from_confusion,
)

MAJORITY = MIAS_CLASSES.index("NORM")
RSNA = ("cancer", "no_cancer")


def _labels_and_probabilities(n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every class present, probabilities leaning towards the truth."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, 40)])
    logits = rng.normal(size=(len(y), n_classes))
    logits[np.arange(len(y)), y] += 1.5
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def _evaluation() -> dict[str, Any]:
    """An evaluation of the shape ``evaluate_run`` stores, without a model: the validation
    summary plus the test-only figures, their localisation and confidence intervals."""
    y, p = _labels_and_probabilities(len(MIAS_CLASSES))
    summary = classification_summary(y, p, MIAS_CLASSES, majority_class=MAJORITY)
    return {**summary, "auc_malignant": 0.7, "pointing_game": 0.4,
            "localisation": {"overall": {"pointing_game": 0.4, "chance": 0.2}},
            "confidence_intervals": {"accuracy": {"low": 0.1, "high": 0.9}}}


def _screening_evaluation() -> dict[str, Any]:
    """A two-class evaluation of the shape ``evaluate_run`` stores: RSNA's classes, the
    screening figures film by film and per woman, no localisation."""
    y, p = _labels_and_probabilities(2)
    summary = classification_summary(y, p, RSNA, majority_class=1)
    patient = patient_level(y, p, RSNA, [f"W{i // 2}" for i in range(len(y))])
    return {**summary, "auc_malignant": 0.8, "pointing_game": None, "patient_level": patient,
            "patient_auc": patient["auc"],
            "patient_sensitivity_at_90_specificity": patient["sensitivity_at_90_specificity"],
            "localisation": {"overall": {"pointing_game": None, "chance": None}},
            "confidence_intervals": {"patient_auc": {"low": 0.6, "high": 0.9}}}


# --- the registry itself ---------------------------------------------------------------

def test_keys_and_labels_are_unique_and_labels_are_for_people() -> None:
    assert len(set(keys())) == len(HEADLINE)
    labels = [m.label for m in HEADLINE]
    assert len(set(labels)) == len(labels)
    assert all(label and "_" not in label for label in labels)
    assert by_key("macro_f1").label == "macro F1"
    assert RANKED_BY in keys(VALIDATION)


def test_an_unknown_key_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="macro_f1"):
        by_key("loss")


def test_every_figure_names_a_function_that_exists() -> None:
    for metric in HEADLINE:
        module, _, name = metric.computed_by.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), metric.key


# --- where each figure comes from -----------------------------------------------------

def test_the_validation_summary_has_every_figure_but_the_test_only_ones() -> None:
    for classes in (MIAS_CLASSES, PATHOLOGY_CLASSES):
        summary = classification_summary(*_labels_and_probabilities(len(classes)), classes)
        assert set(keys(VALIDATION)) <= set(summary), classes
        assert not set(keys(TEST_ONLY)) & set(summary), classes
    assert keys(TEST_ONLY) == ("auc_malignant", "patient_auc",
                               "patient_sensitivity_at_90_specificity", "pointing_game")
    two_class = classification_summary(*_labels_and_probabilities(2), ("BENIGN", "MALIGNANT"))
    assert two_class["auc"] is not None  # the two-class AUC is a figure there
    assert two_class["sensitivity_at_90_specificity"] is not None  # and the screening one


def test_figures_of_the_confusion_matrix_are_the_ones_it_computes() -> None:
    cm = confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], 3)
    assert {m.key for m in HEADLINE if m.computed_by == FROM_CONFUSION} == \
        set(scores_from_confusion(cm))


def test_the_test_only_figures_come_from_the_functions_they_name() -> None:
    from core.evaluate.localisation import localisation_scores

    y, p = _labels_and_probabilities(len(MIAS_CLASSES))
    severities = [None if MIAS_CLASSES[label] == "NORM" else "BM"[i % 2]
                  for i, label in enumerate(y)]
    pairs = clinical_pairs(y, p, MIAS_CLASSES, severities=severities)
    assert by_key("auc_malignant").computed_by.endswith(clinical_pairs.__name__)
    assert pairs["malignant"]["auc"] is not None

    record = FilmRecord("f1", "p1", "CIRC", MIAS_CLASSES, Path("f1.png"),
                        lesions=(Lesion(center=(20.0, 20.0), radius=5.0),))
    heat = np.zeros((64, 64), np.float32)
    heat[20, 20] = 1.0
    scores = localisation_scores([heat], [record])
    assert by_key("pointing_game").computed_by.endswith(localisation_scores.__name__)
    assert scores["overall"]["pointing_game"] == 1.0

    y, p = _labels_and_probabilities(2)
    patients = [f"W{i // 2}" for i in range(len(y))]
    patient = patient_level(y, p, RSNA, patients)
    for key in ("patient_auc", "patient_sensitivity_at_90_specificity"):
        assert by_key(key).computed_by.endswith(patient_level.__name__)
    assert patient["auc"] is not None and patient["sensitivity_at_90_specificity"] is not None


# --- trivial baselines ----------------------------------------------------------------

def test_the_majority_baseline_is_there_exactly_for_the_figures_that_claim_it() -> None:
    evaluation = _evaluation()
    majority = evaluation["baselines"]["majority"]
    assert majority["class"] == "NORM"
    assert {m.key for m in HEADLINE if m.majority} == set(majority) - {"class"}
    for metric in HEADLINE:
        expected = majority[metric.key] if metric.majority else None
        assert metric.majority_baseline(evaluation) == expected, metric.key


def test_chance_is_a_uniform_guess_a_coin_flip_or_a_random_point_in_the_breast() -> None:
    evaluation = _evaluation()
    chance = {m.key: m.chance_baseline(evaluation) for m in HEADLINE}
    assert chance["accuracy"] == chance["balanced_accuracy"] == pytest.approx(1 / 7)
    assert chance["auc_abnormal"] == chance["auc_malignant"] == chance["auc"] == 0.5
    assert chance["auc_ovr_macro"] == 0.5 == chance["patient_auc"]
    # A score that knows nothing finds 10% of the cancers while it clears 90% of the others.
    assert chance["sensitivity_at_90_specificity"] == 0.1
    assert chance["patient_sensitivity_at_90_specificity"] == 0.1
    assert chance["pointing_game"] == 0.2
    assert chance["macro_f1"] is None and chance["weighted_f1"] is None


def test_the_trivial_baseline_prefers_the_majority_and_skips_what_does_not_apply() -> None:
    evaluation = _evaluation()
    assert by_key("accuracy").trivial_baseline(evaluation) == \
        evaluation["baselines"]["majority"]["accuracy"]
    assert by_key("auc_abnormal").trivial_baseline(evaluation) == 0.5
    assert by_key("pointing_game").trivial_baseline(evaluation) == 0.2
    assert evaluation["auc"] is None  # seven classes: no two-class AUC, so no baseline
    assert by_key("auc").trivial_baseline(evaluation) is None


# --- the consumers list exactly the registry's figures --------------------------------

def test_confidence_intervals_are_given_only_to_registry_figures() -> None:
    with_norm = headline_metrics(MIAS_CLASSES)
    assert set(with_norm) <= set(keys())
    assert {m.key for m in HEADLINE if m.computed_by == FROM_CONFUSION} | {"auc_abnormal"} \
        == set(with_norm)


def test_runs_table_columns_are_the_registry_figures_in_order(tmp_path: Path) -> None:
    from core.runs.folder import column_label, create_run, runs_table

    y, p = _labels_and_probabilities(len(MIAS_CLASSES))
    val = classification_summary(y, p, MIAS_CLASSES)
    row = runs_table([create_run("a", {"status": "done", "val": val}, tmp_path)])[0]
    figures = [column for column in row if column.startswith(("val_", "test_"))
               and not column.endswith("_n")]
    assert figures == ([f"val_{key}" for key in keys(VALIDATION)]
                       + [f"test_{key}" for key in keys(VALIDATION) + keys(TEST_ONLY)])
    assert row["val_macro_f1"] == val["macro_f1"]
    assert column_label("val_macro_f1") == "val macro F1"
    assert column_label("test_pointing_game") == "test pointing game"
    assert column_label("val_n") == "val films" and column_label("name") == "folder"
    assert column_label("image_size") == "Input size (px)"  # the setting's declared label


def test_saved_headline_rows_follow_the_registry() -> None:
    from core.evaluate.saved import headline_rows

    evaluation = _evaluation()
    rows = headline_rows(evaluation)
    assert [row["figure"] for row in rows] == [key for key in keys()
                                               if evaluation.get(key) is not None]
    for row in rows:
        metric = by_key(row["figure"])
        assert row["model"] == evaluation[metric.key]
        assert row["majority"] == metric.majority_baseline(evaluation)
        assert row["chance"] == metric.chance_baseline(evaluation)
    assert (rows[0]["ci_low"], rows[0]["ci_high"]) == (0.1, 0.9)


def test_the_report_lists_every_figure_that_applies_under_its_label(tmp_path: Path) -> None:
    from core.evaluate.report import write_report

    evaluation = _evaluation()
    write_report(evaluation, tmp_path)
    page = (tmp_path / "report.html").read_text()
    table = page.split("<h2>Headline figures</h2>", 1)[1].split("</table>", 1)[0]
    headers = re.findall(r"<tr><th>(.*?)</th>", table)
    applies = [m for m in HEADLINE if evaluation.get(m.key) is not None]
    assert len(applies) < len(HEADLINE)  # the example has a figure that does not apply
    assert headers == ["figure", "n", *(html.escape(m.label) for m in applies)]
    assert "AUC (two classes)" not in table


def test_cross_validation_summarises_every_registry_figure() -> None:
    from core.experiments.cv import summarise_folds

    folds = [_evaluation(), {**_evaluation(), "pointing_game": 0.6}]
    summary = summarise_folds(folds)
    assert tuple(summary["mean"]) == tuple(summary["std"]) == keys()
    assert summary["mean"]["pointing_game"] == pytest.approx(0.5)
    assert summary["mean"]["auc"] is None
    assert set(summary["baseline_majority_mean"]) == {m.key for m in HEADLINE if m.majority}


def test_a_two_class_evaluation_shows_its_screening_figures_everywhere(tmp_path: Path) -> None:
    from core.evaluate.report import write_report
    from core.evaluate.saved import headline_rows
    from core.experiments.cv import summarise_folds

    evaluation = _screening_evaluation()
    screening = ["auc_malignant", "sensitivity_at_90_specificity", "patient_auc",
                 "patient_sensitivity_at_90_specificity"]
    rows = {row["figure"]: row for row in headline_rows(evaluation)}
    assert set(screening) <= set(rows) and "pointing_game" not in rows
    assert rows["sensitivity_at_90_specificity"]["chance"] == 0.1
    assert (rows["patient_auc"]["ci_low"], rows["patient_auc"]["ci_high"]) == (0.6, 0.9)
    assert all(by_key(key).at_a_glance for key in screening if key.startswith("patient_"))
    write_report(evaluation, tmp_path)
    page = (tmp_path / "report.html").read_text()
    for key in screening:
        assert f"<tr><th>{html.escape(by_key(key).label)}</th>" in page, key
    assert "highest p(cancer) of her films" in page
    summary = summarise_folds([evaluation, evaluation])
    assert summary["mean"]["patient_auc"] == pytest.approx(evaluation["patient_auc"])


def test_a_sweep_sorts_by_any_validation_figure_and_nothing_else() -> None:
    from core.experiments.sweep import SORT_METRICS

    assert SORT_METRICS == keys(VALIDATION)
