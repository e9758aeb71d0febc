"""Runs: every trained model in one table, a side-by-side comparison of a few, and the
housekeeping of one run (make it the active model, download it, delete it).

Test figures appear once a run has been evaluated (the Evaluate page saves them in the run
folder); validation figures come from training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.errors import MammoError
from core.metrics.headline import RANKED_BY
from core.render.charts import compared_curves, runs_comparison
from core.runs.files import served_file
from core.runs.folder import (
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
    runs_table,
)
from ui.state import active_run, enter_through_app, runs_root, set_active_run, show_error

enter_through_app()

_RUN_WIDGET = "runs_selected"
_CONFIRM_WIDGET = "runs_confirm_delete"
_MESSAGE = "runs_message"
#: The table's columns, in reading order; the metric columns follow.
COLUMNS = ["name", "status", "started", "seconds", "dataset", "synthetic", "model",
           "backbone", "weights", "image_size", "epochs"]


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
    return f"{row['name']}{' (SYNTHETIC)' if row.get('synthetic') else ''} [{row['status']}]"


def metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The val_/test_ figures at least one of ``rows`` has."""
    names = [key for key in rows[0] if key.startswith(("val_", "test_"))] if rows else []
    return [name for name in names if any(row.get(name) is not None for row in rows)]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def runs_overview(rows: list[dict[str, Any]]) -> None:
    table = pd.DataFrame(rows)
    metrics = metric_columns(rows)
    st.dataframe(
        table, hide_index=True, column_order=[c for c in COLUMNS if c in table] + metrics,
        column_config={
            "name": st.column_config.TextColumn("run", pinned=True),
            "synthetic": st.column_config.CheckboxColumn("SYNTHETIC films"),
            "seconds": st.column_config.NumberColumn("seconds", format="%.0f"),
            **{name: st.column_config.NumberColumn(column_label(name), format="%.3f")
               for name in metrics if not name.endswith("_n")}})
    st.caption("Click a column header to sort. val_: the validation films of training; "
               "test_: the held-out test films, once the run has been evaluated.")


def compare(rows: list[dict[str, Any]]) -> None:
    by_name = {row["name"]: row for row in rows if row["status"] != "unreadable"}
    chosen = st.multiselect("Runs to compare", list(by_name),
                            format_func=lambda name: label(by_name[name]))
    if len(chosen) < 2:
        st.caption("Choose two runs or more.")
        return
    selected = [by_name[name] for name in chosen]
    runs = [open_run(runs_root() / name) for name in chosen]
    differences = config_differences(runs)
    if differences:
        st.markdown("**Settings that differ**")
        st.dataframe(pd.DataFrame([{key: _text(value) for key, value in row.items()}
                                   for row in differences]), hide_index=True)
    else:
        st.caption("The runs share every setting.")
    metrics = metric_columns(selected)
    if not metrics:
        st.caption("None of these runs has figures yet.")
        return
    st.markdown("**Figures**")
    st.dataframe(pd.DataFrame([{"figure": column_label(m),
                                **{row["name"]: row.get(m) for row in selected}}
                               for m in metrics]), hide_index=True)
    ranked_by = f"val_{RANKED_BY}"
    metric = st.selectbox("Figure to compare", metrics, format_func=column_label,
                          index=metrics.index(ranked_by) if ranked_by in metrics else 0)
    st.plotly_chart(runs_comparison(selected, metric, column_label(metric)))
    histories = {run.name: read_history(run) for run in runs}
    columns = list(dict.fromkeys(key for history in histories.values() for row in history
                                 for key in row if key not in ("phase", "epoch")))
    if columns:
        curve = st.selectbox("Training curve to overlay", columns,
                             index=columns.index("val_loss") if "val_loss" in columns else 0)
        st.plotly_chart(compared_curves(histories, curve))


def _make_active(path: str) -> None:
    set_active_run(path)
    st.session_state[_MESSAGE] = f"{Path(path).name} is now the active model."


def _delete(path: str) -> None:
    """In a callback, so the page drawn after it no longer lists the run."""
    try:
        delete_run(open_run(path))
    except MammoError as error:
        st.session_state[_MESSAGE] = error
        return
    if active_run() is not None and active_run() == Path(path):
        set_active_run(None)
    st.session_state[_CONFIRM_WIDGET] = False
    st.session_state[_MESSAGE] = f"Deleted {Path(path).name}."


def one_run(rows: list[dict[str, Any]]) -> None:
    by_path = {str(runs_root() / row["name"]): row for row in rows}
    active = active_run()
    paths = list(by_path)
    index = paths.index(str(active)) if active is not None and str(active) in paths else 0
    path = st.selectbox("Run", paths, index=index, key=_RUN_WIDGET,
                        format_func=lambda p: label(by_path[p]))
    row, folder = by_path[path], Path(path)
    if row.get("error"):
        st.caption(f"Error: {row['error']}")
    done = row["status"] == "done" and (folder / MODEL).is_file()
    st.button("Use as the active model", on_click=_make_active, args=(path,),
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
    confirmed = st.checkbox(f"Yes, delete {folder.name} and every file in it",
                            key=_CONFIRM_WIDGET)
    st.button("Delete run", type="primary", disabled=not confirmed, on_click=_delete,
              args=(path,), icon=":material/delete:")


st.title("Runs")
message = st.session_state.pop(_MESSAGE, None)  # what the last button's callback did
if isinstance(message, Exception):
    show_error(message, "Cannot delete")
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
st.subheader("One run")
one_run(rows)
