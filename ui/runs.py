"""Picking a finished run, the same way on every page that needs a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from core.data import LOADERS
from core.errors import MammoError
from core.runs.folder import list_runs, run_title
from ui.state import active_run, runs_root, set_active_run


def finished_runs() -> dict[str, dict[str, Any]]:
    """Runs that have a model, newest first, by folder: a run still training, failed, or
    with an unreadable manifest is left out rather than failing the page (the Runs page
    lists those)."""
    runs: dict[str, dict[str, Any]] = {}
    for run in list_runs(runs_root()):
        try:
            manifest = run.manifest
        except MammoError:
            continue
        if manifest.get("status") == "done":
            runs[str(run.path)] = manifest
    return runs


def trained_on(manifest: dict[str, Any]) -> str:
    """One line saying what data a run's model learnt from: the kind of films, how many,
    and its classes; SYNTHETIC when it was drawn by the program."""
    dataset = manifest.get("dataset")
    if not isinstance(dataset, dict):
        return "Trained on: not recorded in this run."
    name = str(dataset.get("name"))
    title = "SYNTHETIC films" if is_synthetic(manifest) else (
        LOADERS[name].title if name in LOADERS else name)
    classes = dataset.get("classes") or []
    films = dataset.get("films")
    count = f"{films:,} films" if isinstance(films, int) else "films"
    return (f"Trained on: {title}, {count} in the dataset, classes "
            f"{', '.join(map(str, classes))}.")


def is_synthetic(manifest: dict[str, Any]) -> bool:
    dataset = manifest.get("dataset")
    return isinstance(dataset, dict) and bool(dataset.get("synthetic"))


def run_label(path: str | Path, manifest: dict[str, Any] | None) -> str:
    """A run as menus and captions name it: its name (``run_title``), SYNTHETIC when its
    films were drawn by the program."""
    return run_title(Path(path).name, manifest) + (
        " (SYNTHETIC)" if manifest is not None and is_synthetic(manifest) else "")


@dataclass(frozen=True)
class ModelInUse:
    """The run Evaluate and Predict use, and why: ``chosen`` when the session chose it,
    else the newest finished run (``path`` None when there is none); ``unfinished`` names a
    chosen run that has no model yet (still training, failed), passed over for the newest."""

    path: str | None
    chosen: bool
    unfinished: str | None = None


def model_in_use(runs: dict[str, dict[str, Any]]) -> ModelInUse:
    """The session's active run when it is finished, else the newest of ``runs``
    (``finished_runs()``): the one rule the run pickers and the sidebar follow."""
    active = active_run()
    for path in runs:
        if active is not None and Path(path).resolve() == active.resolve():
            return ModelInUse(path, chosen=True)
    newest = next(iter(runs), None)
    return ModelInUse(newest, chosen=False, unfinished=None if active is None else active.name)


def choose_run(runs: dict[str, dict[str, Any]], label: str, key: str) -> str:
    """The model in use (``model_in_use``); choosing another one makes it the active run (in
    a callback, so the sidebar drawn before the page shows it)."""
    paths = list(runs)
    in_use = model_in_use(runs).path
    index = paths.index(in_use) if in_use in paths else 0
    return st.selectbox(
        label, paths, index=index, key=key,
        format_func=lambda path: run_label(path, runs[path]),
        on_change=lambda: set_active_run(st.session_state[key]))
