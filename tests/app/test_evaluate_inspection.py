"""The Evaluate page's operating point and calibration, on a run whose saved evaluation holds
scores chosen by hand, so that every figure the page shows can be checked by hand.

No model is trained here: the page reads the evaluation saved in the run's report folder
(newer than its model file), exactly as it does on a second visit to a real run.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss
from streamlit.testing.v1 import AppTest

from core.evaluate import saved
from core.evaluate.evaluate import inspection_figures
from core.metrics.calibration import FIGURE_LABELS as CALIBRATION_LABELS
from core.metrics.operating import FIGURE_LABELS, PRESETS
from core.metrics.scores import add_confidence_intervals, classification_summary, clinical_pairs
from core.runs.folder import EVALUATION, MANIFEST, MODEL, REPORT
from factories import open_page
from ui.inspection import CALLED, preset_key, threshold_key, threshold_labels

PAGE = "pages/evaluate.py"
CLASSES = ("no_cancer", "cancer")
#: p(cancer) of 5 films with cancer, then of 7 without; one woman per film.
CANCER = [0.95, 0.8, 0.7, 0.55, 0.45]
NO_CANCER = [0.6, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02]
#: By hand, at each threshold: (films with cancer found, films without called cancer).
#: 0.7 is the screening preset (no false positive allowed: 1 of 7 is under 90%), 0.45 the
#: Youden point (all 5 found, 1 of 7 called: 1 - 1/7 beats 0.8 - 1/7 at 0.55).
BY_HAND = {0.7: (3, 0), 0.5: (4, 1), 0.45: (5, 1), 0.3: (5, 3), None: (0, 0)}


def _scores() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p_cancer = np.array(CANCER + NO_CANCER)
    labels = np.array([1] * len(CANCER) + [0] * len(NO_CANCER))
    return labels, np.stack([1.0 - p_cancer, p_cancer], axis=1), np.arange(len(labels))


def _evaluation() -> dict[str, Any]:
    """What ``evaluate_run`` saves, made from the scores above (without films to map)."""
    labels, probabilities, patients = _scores()
    summary = classification_summary(labels, probabilities, CLASSES)
    malignant = clinical_pairs(labels, probabilities, CLASSES)["malignant"]
    summary.update(
        auc_malignant=malignant["auc"], malignancy_score=malignant["score"],
        patient_level=None, patient_auc=None, patient_sensitivity_at_90_specificity=None,
        pointing_game=None, localisation={"n_scored": 0}, heatmap="grad_cam",
        temperature=None, synthetic=True, warnings=[], films=_films(labels, probabilities),
        gallery=[],
        source={"kind": "test split", "dataset": "folder", "root": "by hand"},
        curves={"abnormal": None, "malignant": malignant["roc"], "per_class": {}},
        **inspection_figures(labels, probabilities, CLASSES, patients, n_resamples=100))
    return add_confidence_intervals(summary, labels, probabilities, groups=patients, n=100)


def _films(labels: np.ndarray, probabilities: np.ndarray) -> list[dict[str, Any]]:
    """The films as ``evaluate_run`` keeps them: film ``f<i>`` of woman ``w<i>``."""
    return [{"film": f"f{i}", "patient": f"w{i}", "actual": CLASSES[label],
             "predicted": CLASSES[int(row.argmax())],
             "probabilities": dict(zip(CLASSES, row.round(5).tolist()))}
            for i, (label, row) in enumerate(zip(labels, probabilities))]


def _run(root: Path, evaluation: dict[str, Any]) -> Path:
    """A finished run folder whose saved evaluation is ``evaluation``, newer than its model."""
    run = root / "20240101-000000-by-hand"
    (run / REPORT).mkdir(parents=True)
    (run / MANIFEST).write_text(json.dumps({
        "status": "done", "config": {"dataset": "folder", "root": "by hand"},
        "dataset": {"name": "folder", "synthetic": True, "classes": list(CLASSES),
                    "films": 12}}))
    (run / MODEL).write_bytes(b"not read: the saved evaluation is newer")
    (run / REPORT / EVALUATION).write_text(json.dumps(evaluation))
    os.utime(run / MODEL, (1_000_000, 1_000_000))
    return run


@pytest.fixture()
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AppTest, Path]:
    run = _run(tmp_path / "models", _evaluation())
    return open_page(PAGE, tmp_path / "models", tmp_path / "data", monkeypatch), run


def _metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def _charts(app: AppTest) -> list[go.Figure]:
    """The page's plotly figures as figures (plotly writes arrays in its JSON as base64)."""
    return [pio.from_json(chart.proto.spec) for chart in app.get("plotly_chart")]


def _array(value: Any) -> np.ndarray:
    """An array as plotly's JSON holds it: a list, or base64 bytes with dtype and shape."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
        return flat.reshape(shape)
    return np.asarray(value)


def _two_by_two(app: AppTest) -> list[list[int]]:
    """The counts of the 2 x 2 confusion matrix (rows actual no_cancer, cancer)."""
    chart = next(c for c in _charts(app) if c.layout.xaxis.title.text == CALLED)
    assert list(chart.data[0].x) == list(chart.data[0].y) == list(CLASSES)
    return _array(chart.data[0].text).astype(np.int64).tolist()


def _point(app: AppTest) -> tuple[float, float]:
    trace = next(t for c in _charts(app) for t in c.data
                 if str(t.name).startswith("this threshold"))
    return trace.x[0], trace.y[0]


def _shows(app: AppTest, threshold: float | None) -> None:
    """The cards, the 2 x 2 matrix and the ROC point all say the counts found by hand."""
    tp, fp = BY_HAND[threshold]
    fn, tn = len(CANCER) - tp, len(NO_CANCER) - fp
    cards = _metrics(app)
    assert cards[FIGURE_LABELS["sensitivity"]] == f"{tp / len(CANCER):.2f}"
    assert cards[FIGURE_LABELS["specificity"]] == f"{tn / len(NO_CANCER):.2f}"
    assert cards[FIGURE_LABELS["ppv"]] == ("n/a" if tp + fp == 0 else f"{tp / (tp + fp):.2f}")
    assert cards[FIGURE_LABELS["npv"]] == f"{tn / (tn + fn):.2f}"
    assert _two_by_two(app) == [[tn, fp], [fn, tp]]
    assert _point(app) == (pytest.approx(fp / len(NO_CANCER)), pytest.approx(tp / len(CANCER)))


def _position(slider: Any, threshold: float | None) -> int:
    label = "above every score" if threshold is None else f"{threshold:.3f}"
    return slider.options.index(label)


def test_slider_labels_tell_crowded_thresholds_apart() -> None:
    assert threshold_labels([0.1, 0.5, None]) == ["0.100", "0.500", "above every score"]
    crowded = threshold_labels([0.12341, 0.12346, 0.5, None])
    assert crowded[:3] == ["0.1234", "0.1235", "0.5000"]  # one more decimal tells them apart
    assert len(set(threshold_labels([1e-9 * i for i in range(50)]))) == 50


def test_the_threshold_starts_at_the_screening_preset_and_moves(
        page: tuple[AppTest, Path]) -> None:
    app, run = page
    assert not app.exception and not app.error
    slider = app.select_slider(key=threshold_key(str(run)))
    assert slider.options[-1] == "above every score"
    assert slider.value == _position(slider, 0.7)  # sensitivity at 90% specificity
    _shows(app, 0.7)
    for threshold in (0.5, 0.3, None):
        slider.set_value(_position(slider, threshold)).run()
        assert not app.exception
        _shows(app, threshold)
        slider = app.select_slider(key=threshold_key(str(run)))


def test_the_preset_buttons_move_the_threshold(page: tuple[AppTest, Path]) -> None:
    app, run = page
    labels = {button.proto.label for button in app.button}
    assert {preset.label for preset in PRESETS} <= labels
    for preset, threshold in (("youden", 0.45), ("half", 0.5),
                              ("sensitivity_at_90_specificity", 0.7)):
        app.button(key=preset_key(preset, str(run))).click().run()
        assert not app.exception
        slider = app.select_slider(key=threshold_key(str(run)))
        assert slider.value == _position(slider, threshold), preset
        _shows(app, threshold)
    table = next(frame.value for frame in app.dataframe if "preset" in frame.value.columns)
    assert list(table["preset"]) == [preset.label for preset in PRESETS]
    assert not any("_" in column for column in table.columns)


def test_the_calibration_view_shows_the_diagram_ece_and_brier(
        page: tuple[AppTest, Path]) -> None:
    app, _ = page
    labels, probabilities, _ = _scores()
    p_cancer = probabilities[:, 1]
    cards = _metrics(app)
    assert cards[CALIBRATION_LABELS["brier"]] == f"{brier_score_loss(labels, p_cancer):.3f}"
    observed, predicted = calibration_curve(labels, p_cancer, n_bins=10)
    gaps = np.abs(observed - predicted)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p_cancer), minlength=10)
    ece = float((counts[counts > 0] / len(p_cancer) * gaps).sum())
    assert cards[CALIBRATION_LABELS["ece"]] == f"{ece:.3f}"
    captions = [caption.value for caption in app.caption]
    assert sum("95% CI" in caption for caption in captions) >= 2
    diagram = next(c for c in _charts(app)
                   if any(t.name == "perfectly calibrated" for t in c.data))
    model = next(t for t in diagram.data if t.name != "perfectly calibrated")
    assert list(model.x) == pytest.approx(predicted.tolist())
    assert list(model.y) == pytest.approx(observed.tolist())
    assert "p(cancer)" in diagram.layout.xaxis.title.text
    assert "cancer" in diagram.layout.yaxis.title.text


def test_the_report_table_gives_each_f1_its_interval(page: tuple[AppTest, Path]) -> None:
    app, _ = page
    report = next(frame.value for frame in app.dataframe if "label" in frame.value.columns)
    assert "F1 95% CI" in report.columns
    intervals = dict(zip(report["label"], report["F1 95% CI"]))
    assert all(" to " in intervals[name] for name in (*CLASSES, "macro avg"))


def test_an_older_evaluation_says_what_is_missing_and_can_be_evaluated_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluation = _evaluation()
    older = {key: value for key, value in evaluation.items()
             if key not in ("operating_points", "calibration", "per_class_intervals")}
    run = _run(tmp_path / "models", older)
    app = open_page(PAGE, tmp_path / "models", tmp_path / "data", monkeypatch)
    assert not app.exception and not app.error
    notes = [info.value for info in app.info if "older version" in info.value]
    assert len(notes) == 1  # one line, not one per section
    assert not app.get("select_slider")
    report = next(frame.value for frame in app.dataframe if "label" in frame.value.columns)
    assert set(report["F1 95% CI"][:2]) == {"n/a"}  # the classes' intervals were not kept

    monkeypatch.setattr(saved, "evaluate_run", lambda *args, **kwargs: evaluation)
    app.button(key="again:operating_points").click().run()
    assert not app.exception and not app.error
    assert app.select_slider(key=threshold_key(str(run)))
    assert not [info.value for info in app.info if "older version" in info.value]


def test_every_film_is_listed_the_most_surely_wrong_first_and_the_wrong_ones_apart(
        page: tuple[AppTest, Path]) -> None:
    app, run = page
    films = next(frame.value for frame in app.dataframe if "p_actual" in frame.value.columns)
    assert len(films) == len(CANCER) + len(NO_CANCER)
    # by hand: the film without cancer scored 0.6 gets p(truth) 0.4, below the cancer
    # film scored 0.45; they are the two wrong ones
    assert list(films["film"][:2]) == [f"f{len(CANCER)}", f"f{len(CANCER) - 1}"]
    assert list(films["p_actual"][:2]) == pytest.approx([0.4, 0.45])
    assert films["right"].tolist() == [False, False] + [True] * (len(films) - 2)
    app.toggle(key=f"films_wrong:{run}").set_value(True).run()
    assert not app.exception
    wrong = next(frame.value for frame in app.dataframe if "p_actual" in frame.value.columns)
    assert list(wrong["film"]) == [f"f{len(CANCER)}", f"f{len(CANCER) - 1}"]


def test_an_evaluation_without_films_probabilities_offers_to_evaluate_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluation = _evaluation()
    older = {**evaluation, "films": [{key: value for key, value in film.items()
                                      if key != "probabilities"}
                                     for film in evaluation["films"]]}
    run = _run(tmp_path / "models", older)
    app = open_page(PAGE, tmp_path / "models", tmp_path / "data", monkeypatch)
    assert not app.exception and not app.error
    assert [info.value for info in app.info if "list its films" in info.value]
    monkeypatch.setattr(saved, "evaluate_run", lambda *args, **kwargs: evaluation)
    app.button(key=f"again:films:{run}").click().run()
    assert not app.exception and not app.error
    assert any("p_actual" in frame.value.columns for frame in app.dataframe)
