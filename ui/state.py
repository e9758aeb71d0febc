"""What a browser session has chosen (dataset, run), mirrored in its URL, and where the app
keeps its files.

The choices live in ``st.session_state`` so every page sees them, and in the URL's query
parameters (``?dataset=mias&root=...&run=NAME``; the page is the URL's path) so that a
reload, a second tab or a shared link opens the same view: ``sync_with_url`` (app.py, on
every run) takes what a URL says that this session did not write itself (a new session, a
link), checks it and reports what it cannot use in one message, then writes the session's
choices back (a page switch clears the query parameters). The files live on disk (runs under
``models/``, uploaded and generated data under ``data/``) so that every tab sees the same
runs and jobs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from core.data import load_dataset
from core.data.records import Dataset
from core.errors import MammoError
from core.experiments.jobs import active_jobs
from core.runs.folder import default_root, open_run

_DATASET_KEY = "active_dataset"
_RUN_KEY = "active_run"
#: The query parameters this session last wrote, and the message about a link it could not use.
_WRITTEN_KEY = "url_written"
_PROBLEM_KEY = "url_problem"
#: The label of the job whose dataset the session took, while it has not chosen one itself.
_FROM_JOB_KEY = "dataset_from_job"
#: The URL's query parameters: the dataset's loader, folder and options (JSON), the run's folder.
DATASET, ROOT, OPTIONS, RUN = "dataset", "root", "options", "run"
URL_KEYS = (DATASET, ROOT, OPTIONS, RUN)


@dataclass(frozen=True)
class ActiveDataset:
    """The dataset a session works on: a loader name, its folder and loader options."""

    name: str
    root: str
    options: dict[str, Any] = field(default_factory=dict)
    synthetic: bool = False

    @property
    def label(self) -> str:
        tag = " (SYNTHETIC)" if self.synthetic else ""
        return f"{self.name}{tag}: {self.root}"


def enter_through_app() -> None:
    """Make sure ``app.py`` (navigation, sidebar) runs, whatever URL a session starts on.

    Streamlit keeps its pre-``st.navigation`` multipage mode for any app with a ``pages/``
    folder until ``st.navigation`` is first called: on a fresh server, a first visitor who
    opens ``/predict`` directly gets ``pages/predict.py`` run on its own, with file names
    for navigation and no sidebar. Every page calls this first: run through app.py it does
    nothing (``st.navigation`` has switched that mode off); run on its own it switches the
    mode off and reruns, so the session continues through app.py on the page it asked for.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def runs_root() -> Path:
    return default_root()


def active_dataset() -> ActiveDataset | None:
    return st.session_state.get(_DATASET_KEY)


def set_active_dataset(dataset: ActiveDataset) -> None:
    st.session_state[_DATASET_KEY] = dataset
    st.session_state.pop(_FROM_JOB_KEY, None)
    _write_url()


def dataset_from_job() -> str | None:
    """The job whose dataset the session works on, where it took the job's (see
    ``sync_with_url``) rather than choosing one."""
    return st.session_state.get(_FROM_JOB_KEY)


def active_run() -> Path | None:
    """The run the session looks at, if it still exists (another tab may have deleted it)."""
    path = st.session_state.get(_RUN_KEY)
    if path is not None and not Path(path).is_dir():
        del st.session_state[_RUN_KEY]
        return None
    return None if path is None else Path(path)


def set_active_run(path: str | Path | None) -> None:
    if path is None:
        st.session_state.pop(_RUN_KEY, None)
    else:
        st.session_state[_RUN_KEY] = str(path)
    _write_url()


# -- the dataset, read once per folder state ---------------------------------------------------
def folder_stamp(root: str) -> tuple[int, int, int]:
    """A cheap change marker for a dataset folder: its own mtime, the newest mtime of the
    files directly in it (Info.txt, CSVs) and how many entries it holds."""
    try:
        entries = list(os.scandir(root))
        newest = max((e.stat().st_mtime_ns for e in entries if e.is_file()), default=0)
        return os.stat(root).st_mtime_ns, newest, len(entries)
    except OSError:
        return 0, 0, 0


@st.cache_data(show_spinner="Reading the dataset...", max_entries=8)
def _cached_dataset(name: str, root: str, options: str, stamp: tuple[int, int, int]) -> Dataset:
    return load_dataset(name, root, **json.loads(options))


def read_dataset(name: str, root: str | Path, options: dict[str, Any]) -> Dataset:
    """The dataset's records (no film is decoded), cached until its folder changes."""
    return _cached_dataset(name, str(root), json.dumps(options, sort_keys=True),
                           folder_stamp(str(root)))


# -- the URL -------------------------------------------------------------------------------------
def _url_of_session() -> dict[str, str]:
    """The query parameters that say what this session has chosen."""
    params: dict[str, str] = {}
    dataset = active_dataset()
    if dataset is not None:
        params[DATASET], params[ROOT] = dataset.name, dataset.root
        if dataset.options:
            params[OPTIONS] = json.dumps(dataset.options, sort_keys=True)
    run = active_run()
    if run is not None:
        params[RUN] = run.name
    return params


def _ours(params: Any) -> dict[str, str]:
    return {key: str(params[key]) for key in URL_KEYS if key in params}


def _write_url() -> None:
    """Put the session's choices in the URL (leaving any other parameter alone)."""
    wanted = _url_of_session()
    for key in URL_KEYS:
        if key in wanted:
            if st.query_params.get(key) != wanted[key]:
                st.query_params[key] = wanted[key]
        elif key in st.query_params:
            del st.query_params[key]
    st.session_state[_WRITTEN_KEY] = wanted


def sync_with_url() -> None:
    """Take the choices a URL brings (checked), then mirror the session's in the URL.

    Only parameters this session did not write itself are read: a new session's (a reload,
    a second tab, a shared link) or a link's. A parameter missing from the URL changes
    nothing (switching page clears them all). What cannot be used is left out and said in
    one message, shown once by ``url_problem``. A session with no dataset while a job
    trains takes that job's dataset, so Train shows the job with its data after a reload.
    """
    given = _ours(st.query_params)
    if given != st.session_state.get(_WRITTEN_KEY):
        problems = [problem for problem in (_dataset_from(given), _run_from(given)) if problem]
        if problems:
            st.session_state[_PROBLEM_KEY] = (
                "This link's choices could not all be used: " + "; ".join(problems) + ".")
    if active_dataset() is None:
        _dataset_of_a_job()
    _write_url()


def url_problem() -> str | None:
    """The message about the last link this session could not use, once."""
    return st.session_state.pop(_PROBLEM_KEY, None)


def _dataset_from(given: dict[str, str]) -> str | None:
    """Make the URL's dataset the session's, if it names one that can be read; else why not."""
    if DATASET not in given and ROOT not in given:
        return None
    name, root = given.get(DATASET, ""), given.get(ROOT, "")
    if not name or not root:
        return "a dataset needs both its kind (dataset=) and its folder (root=)"
    try:
        options = json.loads(given.get(OPTIONS) or "{}")
    except json.JSONDecodeError:
        options = None
    if not isinstance(options, dict):
        return f"the dataset options {given.get(OPTIONS)!r} are not a JSON object"
    current = active_dataset()
    if current is not None and (current.name, current.root, current.options) == (
            name, root, options):
        return None
    try:
        dataset = read_dataset(name, root, options)
    except Exception as error:  # noqa: BLE001 - a link is user input: one line, never a traceback
        return f"dataset {name} at {root}: {_reason(error)}"
    st.session_state[_DATASET_KEY] = ActiveDataset(name, root, options, dataset.synthetic)
    st.session_state.pop(_FROM_JOB_KEY, None)
    return None


def _run_from(given: dict[str, str]) -> str | None:
    """Make the URL's run the session's, if it is a run folder under the runs root."""
    name = given.get(RUN)
    if name is None:
        return None
    current = active_run()
    if current is not None and current.name == name:
        return None
    path = runs_root() / name
    if not name or Path(name).name != name or name in (".", ".."):
        return f"run {name!r} is not a run folder's name"
    try:
        open_run(path)
    except MammoError:
        return f"there is no run {name} in {runs_root()}"
    st.session_state[_RUN_KEY] = str(path)
    return None


def _reason(error: Exception) -> str:
    return str(error) if isinstance(error, MammoError) else f"{type(error).__name__}: {error}"


def _dataset_of_a_job() -> None:
    """The running (or next queued) job's dataset, made the session's."""
    running, queued = active_jobs(runs_root())
    job = running or (queued[0] if queued else None)
    config = (job.spec.get("config") or {}) if job is not None else {}
    if not config.get("dataset") or not config.get("root"):
        return
    st.session_state[_DATASET_KEY] = ActiveDataset(
        str(config["dataset"]), str(config["root"]), dict(config.get("dataset_options") or {}),
        synthetic=bool(job.spec.get("synthetic")))
    st.session_state[_FROM_JOB_KEY] = job.label


def show_error(error: Exception, what: str = "") -> None:
    """One line in the page for a fault the user can act on; anything else is a bug and
    shows its type too, still without a traceback."""
    prefix = f"{what}: " if what else ""
    if isinstance(error, MammoError):
        st.error(f"{prefix}{error}", icon=":material/error:")
    else:
        st.error(f"{prefix}{type(error).__name__}: {error}", icon=":material/bug_report:")
