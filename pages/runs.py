"""Runs: every trained model in one table (its figures first), a side-by-side comparison of
a few, what leakage between a woman's films is worth (saved cross-validations on a
film-level and on the patient-grouped split, side by side), and the housekeeping of one run
(name it, make it the active model, download it, delete it).

Test figures appear once a run has been evaluated (the Evaluate page saves them in the run
folder); validation figures come from training. Runs are named through
``core.runs.folder.run_title`` (the name given here, else the folder's, with its date).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.data import LOADERS
from core.errors import MammoError
from core.experiments.cv import read_summaries, split_comparison, split_pairs
from core.metrics.headline import RANKED_BY
from core.render.charts import compared_curves, history_label, runs_comparison
from core.runs.files import served_file
from core.runs.folder import (
    DISPLAY_NAME,
    DISPLAY_NAME_MAX,
    EVALUATION,
    MANIFEST,
    MODEL,
    REPORT,
    WEIGHTS,
    Run,
    column_label,
    config_differences,
    delete_run,
    list_runs,
    open_run,
    read_history,
    rename_run,
    run_title,
    runs_table,
    setting_label,
)
from ui.state import active_run, enter_through_app, runs_root, set_active_run, show_error
from ui.tables import EMPTY

enter_through_app()

_RUN_WIDGET = "runs_selected"
_CONFIRM_WIDGET = "runs_confirm_delete"
_PAIR_WIDGET = "runs_split_pair"
_MESSAGE = "runs_message"
#: The table's columns after the run's name, status and figures, in reading order: the
#: counts behind the figures, then when and how it was trained; the folder (its id) last.
SETTINGS_COLUMNS = ["val_n", "test_n", "started", "seconds", "dataset", "synthetic", "model",
                    "backbone", "weights", "image_size", "epochs", "name"]


@st.cache_data(ttl=10, show_spinner=False)
def table_rows(root: str, stamps: tuple[tuple[str, float, float], ...]) -> list[dict[str, Any]]:
    """``runs_table`` of the runs under ``root``, re-read when a manifest or a saved
    evaluation changes (``stamps``) and at least every ten seconds (a training process may
    die without touching its manifest)."""
    return runs_table(list_runs(Path(root)))


def _stamps(runs: list[Run]) -> tuple[tuple[str, float, float], ...]:
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    return tuple((run.name, mtime(run.path / MANIFEST), mtime(run.path / REPORT / EVALUATION))
                 for run in runs)


def label(row: dict[str, Any]) -> str:
    return f"{row['title']}{' (SYNTHETIC)' if row.get('synthetic') else ''} [{row['status']}]"


def headers(rows: list[dict[str, Any]]) -> dict[str, str]:
    """A column header per run (by folder): its name, with the folder added where two runs
    were given the same name."""
    titles = [row["title"] for row in rows]
    return {row["name"]: row["title"] if titles.count(row["title"]) == 1
            else f"{row['title']} ({row['name']})" for row in rows}


def metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The val_/test_ figures at least one of ``rows`` has (not the film counts)."""
    names = [key for key in rows[0] if key.startswith(("val_", "test_"))
             and not key.endswith("_n")] if rows else []
    return [name for name in names if any(row.get(name) is not None for row in rows)]


def _text(value: Any) -> str:
    """A setting's value as a cell reads it: rounded, yes/no, a dash for none."""
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _figure_text(value: Any) -> str:
    return EMPTY if value is None else f"{value:.3f}"


def _local_time(stamp: Any) -> datetime | None:
    """A manifest's UTC time as this machine's clock reads it (as the run names are)."""
    try:
        return datetime.fromisoformat(str(stamp)).astimezone().replace(tzinfo=None)
    except ValueError:
        return None


def _dataset_title(name: Any) -> Any:
    return LOADERS[name].title if name in LOADERS else name


def runs_overview(rows: list[dict[str, Any]]) -> None:
    table = pd.DataFrame([{**row, "started": _local_time(row.get("started")),
                           "dataset": _dataset_title(row.get("dataset"))} for row in rows])
    metrics = metric_columns(rows)
    order = ["title", "status", *metrics, *SETTINGS_COLUMNS]
    st.dataframe(
        table, hide_index=True, column_order=[c for c in order if c in table],
        placeholder=EMPTY,
        column_config={
            **{name: column_label(name) for name in table.columns},
            "title": st.column_config.TextColumn(column_label("title"), pinned=True),
            "synthetic": st.column_config.CheckboxColumn(column_label("synthetic")),
            "started": st.column_config.DatetimeColumn(column_label("started"),
                                                       format="D MMM YYYY, HH:mm"),
            "seconds": st.column_config.NumberColumn(column_label("seconds"), format="%.0f"),
            **{name: st.column_config.NumberColumn(column_label(name), format="%.3f")
               for name in metrics}})
    st.caption("Figures first: val, on the validation films of training; test, on the "
               "held-out test films once the run has been evaluated (Evaluate page). Click a "
               "column header to sort; a dash: not measured.")


def compare(rows: list[dict[str, Any]]) -> None:
    by_name = {row["name"]: row for row in rows if row["status"] != "unreadable"}
    chosen = st.multiselect("Runs to compare", list(by_name),
                            format_func=lambda name: label(by_name[name]))
    if len(chosen) < 2:
        st.caption("Choose two runs or more.")
        return
    selected = [by_name[name] for name in chosen]
    header = headers(selected)
    runs = [open_run(runs_root() / name) for name in chosen]
    differences = config_differences(runs)
    if differences:
        st.markdown("**Settings that differ**")
        st.dataframe(pd.DataFrame([{"setting": setting_label(row["setting"]),
                                    **{header[name]: _text(row[name]) for name in chosen}}
                                   for row in differences]), hide_index=True,
                     placeholder=EMPTY)
    else:
        st.caption("The runs share every setting.")
    metrics = metric_columns(selected)
    if not metrics:
        st.caption("None of these runs has figures yet.")
        return
    st.markdown("**Figures**")
    st.dataframe(pd.DataFrame([{"figure": column_label(m),
                                **{header[row["name"]]: _figure_text(row.get(m))
                                   for row in selected}}
                               for m in metrics]), hide_index=True, placeholder=EMPTY)
    ranked_by = f"val_{RANKED_BY}"
    metric = st.selectbox("Figure to compare", metrics, format_func=column_label,
                          index=metrics.index(ranked_by) if ranked_by in metrics else 0)
    st.plotly_chart(runs_comparison([{**row, "name": header[row["name"]]} for row in selected],
                                    metric, column_label(metric)))
    histories = {header[run.name]: read_history(run) for run in runs}
    columns = list(dict.fromkeys(key for history in histories.values() for row in history
                                 for key in row if key not in ("phase", "epoch")))
    if columns:
        curve = st.selectbox("Training curve to overlay", columns, format_func=history_label,
                             index=columns.index("val_loss") if "val_loss" in columns else 0)
        st.plotly_chart(compared_curves(histories, curve))


# -- leakage: the same configuration on a film-level and on the patient-grouped split ----------
FILM_LEVEL = "film-level split (first paper)"
PATIENT_GROUPED = "patient-grouped split (ours)"
LEAKAGE_COMMAND = ("python -m core cv --dataset mias --root FOLDER --folds 5 "
                   "--compare-splits")


def _interval_text(value: float, interval: list[float] | None, signed: bool = False) -> str:
    number = "{:+.2f}" if signed else "{:.2f}"
    text = number.format(value)
    if interval is None:
        return text
    return f"{text} [{number.format(interval[0])}, {number.format(interval[1])}]"


def _pair_label(pair: tuple[dict[str, Any], dict[str, Any]]) -> str:
    film, _ = pair
    config = film["config"]
    synthetic = " (SYNTHETIC)" if pair[0].get("synthetic") or pair[1].get("synthetic") else ""
    return (f"{_dataset_title(config.get('dataset'))}{synthetic}: {config.get('model')}, "
            f"{config.get('backbone')}, {config.get('image_size')} px, "
            f"{len(film['folds'])} folds")


def split_leakage() -> None:
    """The newest pair of saved cross-validations that differ only in the split, their
    headline figures side by side with intervals and the difference."""
    summaries, problems = read_summaries(runs_root())
    pairs = split_pairs(summaries)
    for problem in problems:
        st.caption(f"Left out: {problem}")
    if not pairs:
        st.caption(
            f"No pair of cross-validations yet ({len(summaries)} saved). Run one "
            f"configuration on both splits, `{LEAKAGE_COMMAND}` (or `cv` twice, once with "
            "`--no-split-by-patient`), and its figures on a film-level split, where a "
            "woman's other film may sit in training, appear here beside the patient-grouped "
            "ones.")
        return
    index = 0
    if len(pairs) > 1:
        index = st.selectbox("Configuration", range(len(pairs)), key=_PAIR_WIDGET,
                             format_func=lambda i: _pair_label(pairs[i]))
    film, patient = pairs[index]
    st.caption(_pair_label(pairs[index]))
    if film.get("synthetic") or patient.get("synthetic"):
        st.warning("SYNTHETIC: these cross-validations ran on films drawn by the program. "
                   "Their figures say nothing about real mammograms.",
                   icon=":material/science:")
    rows = split_comparison(film, patient)
    if not rows:
        st.caption("The two cross-validations share no figure.")
        return
    shown = next((row for row in rows if row["key"] == RANKED_BY), rows[0])
    left, right = st.columns(2)
    left.metric(f"{shown['figure']}, {FILM_LEVEL}", f"{shown['film_level']:.2f}")
    right.metric(f"{shown['figure']}, {PATIENT_GROUPED}", f"{shown['patient_grouped']:.2f}",
                 delta=f"{-shown['difference']:+.2f} against the film-level split",
                 delta_color="off")  # lower here is not worse: it is the honest figure
    st.dataframe(pd.DataFrame([{
        "figure": row["figure"],
        FILM_LEVEL: _interval_text(row["film_level"], row["film_level_interval"]),
        PATIENT_GROUPED: _interval_text(row["patient_grouped"], row["patient_grouped_interval"]),
        "difference (film-level minus patient-grouped)": _interval_text(
            row["difference"], row["difference_interval"], signed=True)} for row in rows]),
        hide_index=True, placeholder=EMPTY)
    st.caption(f"Each cell: the mean over {len(film['folds'])} folds [95% t-interval of the "
               "mean]. The difference has a 95% Welch interval (the two cross-validations "
               "split the films differently, so their folds are not paired). A difference "
               "above zero is what a film-level split gives away: one of a woman's films is "
               "tested while her other film was trained on.")


def _make_active(path: str, title: str) -> None:
    set_active_run(path)
    st.session_state[_MESSAGE] = f"{title} is now the active model."


def _rename(path: str, key: str) -> None:
    """In a callback, so the table and menus drawn after it show the new name."""
    try:
        title = rename_run(open_run(path), st.session_state.get(key, ""))
    except MammoError as error:
        st.session_state[_MESSAGE] = error
        return
    st.session_state[_MESSAGE] = f"Named {title}."


def _delete(path: str, title: str) -> None:
    """In a callback, so the page drawn after it no longer lists the run."""
    try:
        delete_run(open_run(path))
    except MammoError as error:
        st.session_state[_MESSAGE] = error
        return
    if active_run() is not None and active_run() == Path(path):
        set_active_run(None)
    st.session_state[_CONFIRM_WIDGET] = False
    st.session_state[_MESSAGE] = f"Deleted {title}."


def _given_name(folder: Path) -> str:
    try:
        given = open_run(folder).manifest.get(DISPLAY_NAME)
    except MammoError:
        return ""
    return given if isinstance(given, str) else ""


def one_run(rows: list[dict[str, Any]]) -> None:
    by_path = {str(runs_root() / row["name"]): row for row in rows}
    active = active_run()
    paths = list(by_path)
    index = paths.index(str(active)) if active is not None and str(active) in paths else 0
    path = st.selectbox("Run", paths, index=index, key=_RUN_WIDGET,
                        format_func=lambda p: label(by_path[p]))
    row, folder = by_path[path], Path(path)
    title = row["title"]
    st.caption(f"Folder: {folder.name}")
    if row.get("error"):
        st.caption(f"Error: {row['error']}")
    if row["status"] != "unreadable":
        name_key = f"runs_name_{folder.name}"
        st.session_state.setdefault(name_key, _given_name(folder))
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        left.text_input("Name", key=name_key, max_chars=DISPLAY_NAME_MAX,
                        placeholder=run_title(folder.name),
                        help="shown instead of the folder name everywhere; empty: the "
                        "folder's name and date")
        right.button("Save name", on_click=_rename, args=(path, name_key),
                     icon=":material/edit:")
    done = row["status"] == "done" and (folder / MODEL).is_file()
    st.button("Use as the active model", on_click=_make_active, args=(path, title),
              disabled=not done or (active is not None and str(active) == path),
              icon=":material/check_circle:")
    if done:
        left, right = st.columns(2)
        for column, name in ((left, MODEL), (right, WEIGHTS)):
            file = served_file(Run(folder), name)
            if file is not None:  # read only when clicked
                column.download_button(f"Download {name} ({file.stat().st_size / 1e6:.1f} MB)",
                                       data=file.read_bytes, file_name=f"{folder.name}-{name}",
                                       mime="application/octet-stream", on_click="ignore",
                                       icon=":material/download:")
    st.markdown("**Delete**")
    confirmed = st.checkbox(f"Yes, delete {title} and every file in it",
                            key=_CONFIRM_WIDGET)
    st.button("Delete run", type="secondary", disabled=not confirmed, on_click=_delete,
              args=(path, title), icon=":material/delete:")


st.title("Runs")
message = st.session_state.pop(_MESSAGE, None)  # what the last button's callback did
if isinstance(message, Exception):
    show_error(message, "Cannot do that")
elif message:
    st.success(message)
try:
    all_runs = list_runs(runs_root())
    rows = table_rows(str(runs_root()), _stamps(all_runs))
except Exception as error:  # noqa: BLE001 - a page shows one line, never a traceback
    show_error(error, "Cannot list the runs")
    st.stop()
if not rows:
    st.info(f"No runs yet under {runs_root()}: train one on the Train page.")
    st.stop()

runs_overview(rows)
st.subheader("Compare runs")
try:
    compare(rows)
except MammoError as error:
    show_error(error, "Cannot compare")
st.subheader("Film-level vs patient-grouped split")
try:
    split_leakage()
except MammoError as error:
    show_error(error, "Cannot compare the splits")
st.subheader("One run")
one_run(rows)
