"""What a browser session has chosen (dataset, run) and where the app keeps its files.

The choices live in ``st.session_state`` so every page sees them; the files live on disk
(runs under ``models/``, uploaded and generated data under ``data/``) so that a reload or a
second tab sees the same runs and jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import MammoError
from core.runs.folder import default_root

_DATASET_KEY = "active_dataset"
_RUN_KEY = "active_run"


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


def show_error(error: Exception, what: str = "") -> None:
    """One line in the page for a fault the user can act on; anything else is a bug and
    shows its type too, still without a traceback."""
    prefix = f"{what}: " if what else ""
    if isinstance(error, MammoError):
        st.error(f"{prefix}{error}", icon=":material/error:")
    else:
        st.error(f"{prefix}{type(error).__name__}: {error}", icon=":material/bug_report:")


def sidebar() -> None:
    """The active dataset and model, on every page."""
    with st.sidebar:
        dataset = active_dataset()
        st.markdown("**Dataset**")
        st.caption(dataset.label if dataset else "none chosen: pick one on the Data page")
        run = active_run()
        st.markdown("**Model**")
        st.caption(run.name if run else "none chosen: train one, or pick one on Runs")
        st.divider()
        st.caption("Research software. Not a medical device; not for diagnosis.")
