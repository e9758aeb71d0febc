"""Plotly figures: asserted on the data they carry (traces, values, labels), not on pixels."""

from __future__ import annotations

import numpy as np
import pytest

from core.metrics.scores import per_class_counts, roc_pr
from core.render.charts import (
    compared_curves,
    confusion_heatmap,
    history_label,
    probability_bars,
    roc_curves,
    runs_comparison,
    sensitivity_specificity,
    training_curves,
)

LABELS = ["BENIGN", "MALIGNANT", "NORM"]
CM = [[3, 1, 0], [0, 0, 0], [2, 2, 4]]


def test_confusion_heatmap_shows_counts_coloured_by_row_share() -> None:
    figure = confusion_heatmap(CM, LABELS)
    heat = figure.data[0]
    assert heat.type == "heatmap" and heat.colorscale[0][1].startswith("#440154")  # Viridis
    assert list(heat.x) == LABELS and list(heat.y) == LABELS
    assert np.asarray(heat.text).tolist() == CM
    shares = np.asarray(heat.z)
    np.testing.assert_allclose(shares[0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(shares[1], [0.0, 0.0, 0.0])  # a class with no film: no NaN
    np.testing.assert_allclose(shares[2], [0.25, 0.25, 0.5])
    assert figure.layout.xaxis.title.text == "predicted"
    assert figure.layout.yaxis.title.text == "actual"
    assert figure.layout.yaxis.autorange == "reversed"  # first class on top, as in a table


def test_confusion_heatmap_rejects_a_matrix_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_heatmap([[1, 2], [3, 4]], LABELS)


def _curves() -> dict:
    positive = np.array([1, 1, 0, 0, 1, 0])
    score = np.array([0.9, 0.6, 0.7, 0.1, 0.8, 0.3])
    roc = roc_pr(positive, score)["roc"]
    return {"abnormal": roc, "malignant": None,
            "per_class": {"NORM": roc, "CALC": None, "ARCH": roc}}


def test_roc_curves_one_trace_per_curve_with_chance_and_auc_in_the_legend() -> None:
    curves = _curves()
    figure = roc_curves(curves, aucs={"abnormal": 0.123})
    names = [trace.name for trace in figure.data]
    assert names[0].startswith("chance")
    assert list(figure.data[0].x) == [0, 1] and list(figure.data[0].y) == [0, 1]
    # missing curves (None) are left out; a given AUC is used, else the area of the points
    exact = float(np.trapezoid(curves["abnormal"]["tpr"], curves["abnormal"]["fpr"]))
    assert names[1:] == ["abnormal vs normal (AUC 0.12)", f"NORM vs rest (AUC {exact:.2f})",
                         f"ARCH vs rest (AUC {exact:.2f})"]
    assert list(figure.data[1].x) == curves["abnormal"]["fpr"]
    assert list(figure.data[1].y) == curves["abnormal"]["tpr"]


def test_a_screening_pair_is_named_by_its_own_classes_not_malignant_vs_benign() -> None:
    """An RSNA run's pair is cancer vs no_cancer; MIAS severities stay malignant vs benign."""
    curve = roc_pr(np.array([0, 1, 1, 0]), np.array([0.2, 0.9, 0.6, 0.4]))["roc"]
    screening = roc_curves({"abnormal": None, "malignant": {
        **curve, "positive": "cancer", "negative": "no_cancer"}})
    assert [trace.name for trace in screening.data][1] == "cancer vs no_cancer (AUC 1.00)"
    severities = roc_curves({"abnormal": None, "malignant": {
        **curve, "positive": "malignant", "negative": "benign"}})
    assert [trace.name for trace in severities.data][1] == "malignant vs benign (AUC 1.00)"


def test_roc_curves_that_coincide_stay_distinguishable() -> None:
    figure = roc_curves(_curves())
    lines = figure.data[1:]
    assert len({tuple(trace.x) for trace in lines}) == 1  # the same points three times
    styles = {(trace.line.color, trace.line.dash, trace.marker.symbol) for trace in lines}
    assert len(styles) == len(lines)
    assert len({trace.line.dash for trace in lines}) == len(lines)
    assert all("markers" in trace.mode for trace in lines)


def test_roc_curves_without_any_curve_show_only_chance() -> None:
    figure = roc_curves({"abnormal": None, "malignant": None, "per_class": {"NORM": None}})
    assert len(figure.data) == 1


HISTORY = [
    {"phase": "head", "epoch": 1, "loss": 2.0, "accuracy": 0.2, "val_loss": 2.2,
     "val_accuracy": 0.1},
    {"phase": "head", "epoch": 2, "loss": 1.5, "accuracy": 0.4, "val_loss": 1.9,
     "val_accuracy": 0.3},
    {"phase": "fine-tune", "epoch": 1, "loss": 1.2, "accuracy": None, "val_loss": 1.7,
     "val_accuracy": 0.35},
]


def test_training_curves_train_and_val_per_metric_across_phases() -> None:
    figure = training_curves(HISTORY)
    by_name = {trace.name: trace for trace in figure.data}
    assert set(by_name) == {"loss (training)", "loss (validation)", "accuracy (training)",
                            "accuracy (validation)"}
    assert list(by_name["loss (training)"].y) == [2.0, 1.5, 1.2]
    assert list(by_name["loss (validation)"].x) == [1, 2, 3]  # epochs counted across phases
    assert list(by_name["accuracy (training)"].y) == [0.2, 0.4, None]  # a gap, not a 0
    assert by_name["loss (validation)"].line.dash == "dash"
    assert by_name["loss (training)"].line.color == by_name["loss (validation)"].line.color
    assert by_name["loss (training)"].xaxis == "x"
    assert by_name["accuracy (validation)"].xaxis == "x2"
    boundaries = {shape.x0 for shape in figure.layout.shapes}
    assert boundaries == {2.5}  # where fine-tuning begins, on both panels
    assert "fine-tune" in [a.text for a in figure.layout.annotations]
    assert figure.layout.yaxis.title.text == "loss (lower is better)"  # both panels titled
    assert figure.layout.yaxis2.title.text == "accuracy"


def test_training_curves_name_the_attention_models_keras_columns_in_words() -> None:
    """The attention model's history, as Keras logs it (outputs ``class`` and ``attention``)."""
    history = [{"phase": "head", "epoch": 1, "attention_loss": 0.4, "class_accuracy": 0.2,
                "class_loss": 1.9, "loss": 2.3, "val_attention_loss": 0.5,
                "val_class_accuracy": 0.25, "val_class_loss": 1.9, "val_loss": 2.4}]
    names = {trace.name for trace in training_curves(history).data}
    assert names == {"attention loss (training)", "attention loss (validation)",
                     "accuracy (training)", "accuracy (validation)",
                     "classification loss (training)", "classification loss (validation)",
                     "loss (training)", "loss (validation)"}
    assert not any("_" in name for name in names)
    assert history_label("val_auc_ovr_macro") == "auc ovr macro (validation)"  # never raw


def test_training_curves_of_an_empty_history_is_an_empty_figure() -> None:
    assert len(training_curves([]).data) == 0


def test_sensitivity_specificity_bars_leave_undefined_values_empty() -> None:
    counts = per_class_counts(CM, LABELS)
    figure = sensitivity_specificity(counts)
    sensitivity, specificity = figure.data
    assert sensitivity.name == "sensitivity" and specificity.name == "specificity"
    assert list(sensitivity.x) == LABELS
    assert list(sensitivity.y) == [0.75, None, 0.5]  # MALIGNANT has no film
    assert sensitivity.text[1] == "n/a"
    assert specificity.y[0] == pytest.approx(counts["BENIGN"]["specificity"])


def test_runs_comparison_one_bar_per_run_and_no_zero_for_a_missing_figure() -> None:
    rows = [{"name": "a", "val_macro_f1": 0.4, "synthetic": True},
            {"name": "b", "val_macro_f1": None}, {"name": "c", "val_macro_f1": 0.2}]
    bars = runs_comparison(rows, "val_macro_f1").data[0]
    assert list(bars.x) == ["a (SYNTHETIC)", "b", "c"]
    assert list(bars.y) == [0.4, None, 0.2]
    assert list(bars.text) == ["0.400", "n/a", "0.200"]


def test_compared_curves_overlay_one_column_of_each_run() -> None:
    other = [{"phase": "head", "epoch": 1, "loss": 3.0}]  # no val_loss logged
    figure = compared_curves({"run-a": HISTORY, "run-b": HISTORY, "run-c": other},
                             "val_loss")
    assert [trace.name for trace in figure.data] == ["run-a", "run-b"]
    assert list(figure.data[1].y) == [2.2, 1.9, 1.7]
    assert figure.data[0].line.dash != figure.data[1].line.dash
    assert figure.layout.yaxis.title.text == "loss (validation)"


def test_probability_bars_still_highlight_the_most_likely_class() -> None:
    bars = probability_bars({"NORM": 0.7, "CALC": 0.3}).data[0]
    assert list(bars.y) == ["CALC", "NORM"]
    assert bars.marker.color[1] != bars.marker.color[0]
