"""Evaluate: a finished run's figures on its held-out test films, beside what a model that
learnt nothing would score, with where it looked on a dozen of those films.

The evaluation is computed once per model and kept in the run's ``report/`` folder (see
``core.evaluate.saved``); within a server process it is also cached by run and model time, so
moving between pages costs nothing.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.evaluate.saved import headline_rows, report_table, run_evaluation
from core.metrics.headline import by_key
from core.metrics.scores import per_class_counts
from core.render.charts import (
    confusion_heatmap,
    roc_curves,
    sensitivity_specificity,
    training_curves,
)
from core.render.film_view import FilmView, caption
from core.runs.files import report_zip, served_file
from core.runs.folder import MODEL, REPORT, Run, open_run, read_history
from ui.film_view import show_view, view_controls
from ui.inspection import calibration_view, films_view, operating_point_view
from ui.notices import show_warnings
from ui.runs import choose_run, finished_runs, is_synthetic, trained_on
from ui.state import enter_through_app, show_error
from ui.tables import EMPTY

enter_through_app()

_RUN_WIDGET = "evaluate_run"
#: Set to a run's folder by "Evaluate again": the next pass evaluates it afresh.
_AGAIN = "evaluate_again"
GALLERY_COLUMNS = 4
#: Columns of the localisation table that count films (shown without decimals).
COUNTS = ("n", "hits")
#: The localisation table's columns as a reader names them (``localisation.score_heatmaps``).
LOCALISATION_COLUMNS = {"n": "films", "hits": "hits", "pointing_game": "pointing game",
                        "iou": "overlap with the lesion (IoU)",
                        "inside": "heat inside the lesion", "chance": "chance"}


@st.cache_data(show_spinner=False, max_entries=16)
def evaluation_of(path: str, model_time: float) -> dict[str, Any]:
    """``model_time`` is in the key so that a retrained model is never shown old figures."""
    return run_evaluation(open_run(path))


def _model_time(path: str) -> float:
    try:
        return (Path(path) / MODEL).stat().st_mtime
    except OSError:
        return 0.0  # evaluating then says the run has no model


def headline(evaluation: dict[str, Any]) -> None:
    """The registry's at-a-glance figures as cards against their trivial baseline, then every
    headline figure in a table, each under the registry's label."""
    rows = headline_rows(evaluation)
    majority = ((evaluation.get("baselines") or {}).get("majority") or {}).get("class")
    focus = [(by_key(row["figure"]), row["model"]) for row in rows
             if by_key(row["figure"]).at_a_glance]
    for column, (figure, value) in zip(st.columns(len(focus)) if focus else [], focus):
        baseline = figure.trivial_baseline(evaluation)
        column.metric(figure.label, f"{value:.3f}",
                      delta=None if baseline is None else f"{value - baseline:+.3f}",
                      help="difference from always answering the majority class (AUC, "
                           "sensitivity at 90% specificity and pointing game: from chance)")
    if focus:
        st.caption(f"Arrows: the difference from the trivial baseline, always answering "
                   f"{majority} for accuracy and F1, chance for AUC, sensitivity and the "
                   f"pointing game (both in the table below).")
    table = pd.DataFrame(rows).rename(columns={
        "model": "this model", "ci_low": "95% CI low", "ci_high": "95% CI high",
        "majority": f"always {majority}", "chance": "chance"})
    table["figure"] = table["figure"].map(lambda key: by_key(key).label)
    st.dataframe(table, hide_index=True, placeholder=EMPTY, column_config={
        name: st.column_config.NumberColumn(format="%.3f") for name in table.columns[1:]})


def classification_report(evaluation: dict[str, Any]) -> None:
    """The first paper's report, each F1 with its patient-level 95% interval in one column
    (n/a where there is none: a class without test films, or an older evaluation)."""
    rows = report_table(evaluation)
    for row in rows:
        low, high = row.pop("f1_low"), row.pop("f1_high")
        row["F1 95% CI"] = "n/a" if low is None or high is None else f"{low:.2f} to {high:.2f}"
    table = pd.DataFrame(rows)
    table = table[["label", "precision", "recall", "f1", "F1 95% CI", "support"]]
    st.dataframe(table.rename(columns={"f1": "F1"}), hide_index=True, column_config={
        name: st.column_config.NumberColumn(format="%.2f")
        for name in ("precision", "recall", "F1")})
    st.caption("F1 intervals: 95% bootstrap over patients; the average rows take those of "
               "accuracy, macro F1 and weighted F1.")


def _evaluate_again() -> None:
    st.session_state[_AGAIN] = path


def localisation(evaluation: dict[str, Any]) -> None:
    scores = evaluation.get("localisation") or {}
    overall = scores.get("overall") or {}
    if not scores.get("n_scored"):
        st.info("No test film has a located lesion, so where the model looked cannot be "
                "scored.")
        return
    left, right = st.columns(2)
    left.metric(by_key("pointing_game").label, f"{overall['pointing_game']:.2f}",
                help=f"share of films whose heatmap maximum lies within the lesion radius + "
                     f"{scores['tolerance_px']:.0f} px")
    if overall.get("chance") is not None:
        right.metric("chance (a random point in the breast)", f"{overall['chance']:.2f}")
    rows = [{"class": name, **group} for name, group in
            {"all": overall, **(scores.get("per_class") or {})}.items()]
    table = pd.DataFrame(rows).rename(columns=LOCALISATION_COLUMNS)
    st.dataframe(table, hide_index=True, placeholder=EMPTY, column_config={
        name: st.column_config.NumberColumn(format="%d" if key in COUNTS else "%.2f")
        for key, name in LOCALISATION_COLUMNS.items() if name in table.columns})
    st.caption(f"{scores['n_scored']} films with a located lesion scored; "
               f"{scores['n_skipped_no_location']} without one left out. Heatmaps: "
               f"{evaluation.get('heatmap')}.")


def gallery(evaluation: dict[str, Any]) -> None:
    """The saved overlays side by side (the report's pictures), then one film of them,
    chosen, as an interactive view: zoom, pan, contrast and opacity."""
    entries = [entry for entry in evaluation.get("gallery") or ()
               if Path(entry["overlay"]).is_file()]
    if not entries:
        st.info("No film overlays saved for this evaluation.")
        return
    for start in range(0, len(entries), GALLERY_COLUMNS):
        for column, entry in zip(st.columns(GALLERY_COLUMNS),
                                 entries[start:start + GALLERY_COLUMNS]):
            right = entry["predicted"] == entry["actual"]
            mark = "✓ right" if right else "✗ wrong"
            column.image(entry["overlay"], caption=f"{mark}: {entry['film']} predicted "
                                                   f"{entry['predicted']}, actual "
                                                   f"{entry['actual']}")
    inspect_film([entry for entry in entries if entry.get("view")])


def inspect_film(entries: list[dict[str, Any]]) -> None:
    if not entries:
        st.caption("This evaluation kept no film views to inspect: evaluate the run again "
                   "to zoom into its films.")
        return
    st.markdown("**Look closer**: one film at any contrast, zoomed in.")
    names = [str(entry["film"]) for entry in entries]
    chosen = st.selectbox("Film", range(len(entries)), format_func=names.__getitem__,
                          key="gallery_film")
    entry = entries[chosen]
    try:
        view = FilmView.load(entry["view"])
    except Exception as error:  # noqa: BLE001 - one line (MammoError or a bug), never a traceback
        show_error(error, f"Cannot show {entry['film']}")
        return
    left, right = st.columns([1, 3])
    with left:
        settings = view_controls("gallery")
    with right:
        show_view(view, caption(entry["predicted"], entry["actual"]), settings, "gallery",
                  str(entry["film"]))


def downloads(run: Run) -> None:
    left, right = st.columns(2)
    left.download_button("Download the report (zip)", data=functools.partial(report_zip, run),
                         file_name=f"{run.name}-report.zip", mime="application/zip",
                         on_click="ignore", icon=":material/download:")
    html = served_file(run, Path(REPORT, "report.html"))
    if html is not None:
        right.download_button("Download report.html", data=html.read_bytes,
                              file_name=f"{run.name}-report.html", mime="text/html",
                              on_click="ignore", icon=":material/description:")


st.title("Evaluate")
runs = finished_runs()
if not runs:
    st.info("No finished run yet: train one on the Train page.")
    st.stop()
path = choose_run(runs, "Run", _RUN_WIDGET)
st.caption(trained_on(runs[path]))
manifest = runs[path]
if is_synthetic(manifest):
    st.warning("SYNTHETIC: this run was trained and is tested on synthetic films drawn by the "
               "program. Its figures say nothing about real mammograms.",
               icon=":material/science:")
try:
    run = open_run(path)
    with st.spinner("Evaluating on the held-out test films (once per model)..."):
        if st.session_state.pop(_AGAIN, None) == path:
            run_evaluation(run, again=True)
            evaluation_of.clear()
        evaluation = evaluation_of(path, _model_time(path))
except Exception as error:  # noqa: BLE001 - one line (MammoError or a bug), never a traceback
    show_error(error, "Cannot evaluate this run")
    st.stop()

source = evaluation.get("source") or {}
st.caption(f"{evaluation['n']} films of the {source.get('kind', 'test split')} of "
           f"{source.get('dataset')} ({source.get('root')}); classes "
           f"{', '.join(evaluation['labels'])}.")
show_warnings(evaluation.get("warnings") or ())

st.subheader("Headline figures and trivial baselines")
headline(evaluation)

st.subheader("Classification report")
classification_report(evaluation)

left, right = st.columns(2)
with left:
    st.subheader("Confusion matrix")
    st.plotly_chart(confusion_heatmap(evaluation["confusion_matrix"], evaluation["labels"]))
with right:
    st.subheader("Sensitivity and specificity per class")
    st.plotly_chart(sensitivity_specificity(
        per_class_counts(evaluation["confusion_matrix"], evaluation["labels"])))

st.subheader("ROC curves")
st.plotly_chart(roc_curves(evaluation.get("curves") or {},
                           aucs={"abnormal": evaluation.get("auc_abnormal"),
                                 "malignant": evaluation.get("auc_malignant")}))

st.subheader("Operating point: a threshold on the score")
operating_point_view(evaluation, path, _evaluate_again)

st.subheader("Calibration: does the score mean what it says?")
calibration_view(evaluation, path, _evaluate_again)

st.subheader("Training curves")
history = read_history(run)
if history:
    st.plotly_chart(training_curves(history))
else:
    st.info("This run has no training history.")

st.subheader("Localisation: does the heatmap point at the lesion?")
localisation(evaluation)

st.subheader("Every test film, the most surely wrong first")
films_view(evaluation, path, _evaluate_again)

st.subheader("Films: predicted vs actual, with heatmaps")
gallery(evaluation)

st.subheader("Report")
downloads(run)
