"""The Evaluate page's inspection of the yes/no score: an operating point that moves with a
threshold, and the calibration of the score; and the list of every test film with the
probabilities the model gave it.

Both read what ``evaluate_run`` saved (``operating_points``, ``calibration``): moving the
threshold reads the stored ROC curve (``core.metrics.operating.point_at``) and never scores a
film again. An evaluation saved before these were kept has no per-film scores to rebuild them
from, so it gets one line saying what is missing and a button to evaluate again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from core.evaluate.report import films_table
from core.metrics.calibration import FIGURE_LABELS as CALIBRATION_LABELS
from core.metrics.operating import FIGURE_LABELS, PRESETS, SCREENING, curve_thresholds, point_at
from core.render.charts import confusion_heatmap, reliability_diagram, threshold_roc

#: The figures of an operating point the page shows as cards, in order.
CARD_FIGURES = ("sensitivity", "specificity", "ppv", "npv")
#: The columns of the 2 x 2 matrix: what the threshold calls each film.
CALLED = "called at this threshold"
#: The preset the threshold starts at: the screening figure the headline table also gives.
FIRST_PRESET = SCREENING.key


def threshold_key(key: str) -> str:
    """The threshold slider's widget key for the run ``key`` (one slider state per run, as
    each run has its own thresholds). Its value is the position among the thresholds the
    slider offers (``curve_thresholds``), not the threshold itself: None, above every score,
    is one of them."""
    return f"threshold:{key}"


def preset_key(preset: str, key: str) -> str:
    """The widget key of a preset's button for the run ``key``."""
    return f"preset:{preset}:{key}"


def _rate(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _threshold_label(threshold: float | None, decimals: int = 3) -> str:
    return "above every score" if threshold is None else f"{threshold:.{decimals}f}"


def threshold_labels(thresholds: list[float | None]) -> list[str]:
    """The slider's labels: three decimals, or as many more as it takes to tell every
    threshold apart (the slider tells its positions apart by their labels, and a model's
    scores can crowd within a thousandth)."""
    for decimals in range(3, 18):
        labels = [_threshold_label(t, decimals) for t in thresholds]
        if len(set(labels)) == len(labels):
            return labels
    return [_threshold_label(t) if t is None else repr(t) for t in thresholds]


def missing(evaluation: Mapping[str, Any], what: str, again: Callable[[], None]) -> bool:
    """True, after one line and a button, when the evaluation was saved before ``what`` (an
    evaluation key) was kept; then only evaluating again can show it."""
    if what in evaluation:
        return False
    st.info("This evaluation was saved by an older version, without per-film scores, so its "
            "operating points and calibration cannot be shown: evaluate it again to see them.",
            icon=":material/history:")
    st.button("Evaluate again", key=f"again:{what}", on_click=again)
    return True


def _why_none(evaluation: Mapping[str, Any]) -> str:
    """Why a new evaluation has no operating point: no yes/no question, or one kind only."""
    if evaluation.get("calibration") is None:
        return ("These classes ask no yes/no question (no NORM class, and not two classes "
                "one of which is cancer or malignant), so there is no score to threshold.")
    calibration = evaluation["calibration"]
    return (f"All {calibration['n']} test films are of one kind ({calibration['positive']} or "
            f"not), so sensitivity and specificity cannot both be measured.")


def operating_point_view(evaluation: Mapping[str, Any], key: str,
                         again: Callable[[], None]) -> None:
    """A threshold on the score with the presets as buttons; the four rates, the 2 x 2
    confusion matrix and the point on the ROC curve at that threshold; the presets' table."""
    if missing(evaluation, "operating_points", again):
        return
    points = evaluation["operating_points"]
    if points is None:
        st.info(_why_none(evaluation))
        return
    presets = points["presets"]
    thresholds = curve_thresholds(points)
    slider = threshold_key(key)
    by_preset = {p["key"]: p for p in presets}
    if st.session_state.get(slider) not in range(len(thresholds)):  # a first visit
        st.session_state[slider] = thresholds.index(by_preset[FIRST_PRESET]["threshold"])

    def choose(threshold: float | None) -> None:
        st.session_state[slider] = thresholds.index(threshold)

    st.caption(f"A film is called {points['positive']} when its {points['score']} is at or "
               f"above the threshold; the test split has {points['n_positive']} "
               f"{points['positive']} and {points['n_negative']} {points['negative']} films.")
    columns = st.columns(len(PRESETS))
    for column, preset in zip(columns, PRESETS):
        entry = by_preset[preset.key]
        column.button(preset.label, key=preset_key(preset.key, key), help=preset.why,
                      on_click=choose, args=(entry["threshold"],), width="stretch")
    labels = threshold_labels(thresholds)
    position = st.select_slider(
        f"Threshold on {points['score']}", options=range(len(thresholds)), key=slider,
        format_func=labels.__getitem__,
        help="films scoring at or above it are called " + points["positive"])
    threshold = thresholds[position]
    point = point_at(points, threshold)
    for column, figure in zip(st.columns(len(CARD_FIGURES)), CARD_FIGURES):
        column.metric(FIGURE_LABELS[figure], _rate(point[figure]))
    st.caption(f"At {labels[position]}: {point['tp']} of {points['n_positive']} "
               f"{points['positive']} films found, {point['fp']} of {points['n_negative']} "
               f"{points['negative']} films called {points['positive']}.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(confusion_heatmap(point["confusion_matrix"],
                                          [points["negative"], points["positive"]],
                                          across=CALLED),
                        key=f"two-by-two:{key}")
    with right:
        st.plotly_chart(threshold_roc(points["roc"], point, presets), key=f"roc-point:{key}")
    table = pd.DataFrame([{"preset": p["label"], "threshold": _threshold_label(p["threshold"]),
                           **{FIGURE_LABELS[f]: p[f] for f in CARD_FIGURES}}
                          for p in presets])
    st.dataframe(table, hide_index=True, column_config={
        FIGURE_LABELS[f]: st.column_config.NumberColumn(format="%.2f") for f in CARD_FIGURES})


def _interval(interval: Mapping[str, Any] | None) -> str:
    low, high = (interval or {}).get("low"), (interval or {}).get("high")
    if low is None or high is None:
        return "95% CI: n/a (too few patients to resample)"
    return f"95% CI {low:.3f} to {high:.3f}"


def calibration_view(evaluation: Mapping[str, Any], key: str,
                     again: Callable[[], None]) -> None:
    """The reliability diagram of the score, with ECE and Brier score and their patient
    intervals, and the temperature the probabilities were divided by, if any."""
    if "calibration" not in evaluation:
        if "operating_points" in evaluation:  # else its section has said what is missing
            missing(evaluation, "calibration", again)
        return
    calibration = evaluation["calibration"]
    if calibration is None:
        st.info(_why_none(evaluation))
        return
    intervals = calibration.get("confidence_intervals") or {}
    left, right = st.columns(2)
    for column, figure in zip((left, right), ("ece", "brier")):
        column.metric(CALIBRATION_LABELS[figure], f"{calibration[figure]:.3f}",
                      help="lower is better; 95% interval from resampled patients")
        column.caption(_interval(intervals.get(figure)))
    st.plotly_chart(reliability_diagram(calibration["bins"], calibration["score"],
                                        calibration["positive"]), key=f"reliability:{key}")
    temperature = evaluation.get("temperature")
    scaled = (f"Probabilities divided by the temperature {temperature:.2f} fitted on the "
              "validation films." if temperature else "Probabilities as the model gives them "
              "(no temperature scaling).")
    st.caption(f"{calibration['n']} test films in {calibration['n_bins']} equal bins of "
               f"{calibration['score']}. {scaled}")


def films_view(evaluation: Mapping[str, Any], key: str, again: Callable[[], None]) -> None:
    """Every test film as a row (``core.evaluate.report.films_table``, the report's
    ``test_films.csv``): the most confidently wrong first, optionally only the wrong ones,
    with the probability the model gave its answer and the truth, and a CSV download."""
    table = films_table(dict(evaluation))
    if table is None:
        st.info("This evaluation was saved by an older version, without each film's "
                "probabilities: evaluate it again to list its films.",
                icon=":material/history:")
        st.button("Evaluate again", key=f"again:films:{key}", on_click=again)
        return
    wrong = int((~table["right"]).sum())
    only_wrong = st.toggle(f"Only the {wrong} wrong of {len(table)} films",
                           key=f"films_wrong:{key}")
    shown = table[~table["right"]] if only_wrong else table
    probability = {column: st.column_config.ProgressColumn(
        label, min_value=0.0, max_value=1.0, format="%.3f", help=help_text)
        for column, label, help_text in (
            ("p_predicted", "p(answer)", "the probability the model gave the class it chose"),
            ("p_actual", "p(truth)", "the probability the model gave the film's real class"))}
    classes = {column: st.column_config.NumberColumn(format="%.3f")
               for column in table.columns if column.startswith("p_") and column not in probability}
    st.dataframe(shown, hide_index=True, column_config={
        "right": st.column_config.CheckboxColumn("right"), **probability, **classes})
    st.download_button("Download the films (CSV)", data=table.to_csv(index=False).encode(),
                       file_name="test_films.csv", mime="text/csv", on_click="ignore",
                       icon=":material/download:", key=f"films_csv:{key}")
