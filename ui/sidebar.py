"""The sidebar on every page: the dataset and the model the pages work on, said explicitly.

Evaluate and Predict use the session's chosen run, or the newest finished one when none is
chosen; the sidebar names that run and says which of the two it is, so nothing is used
without the page saying so.
"""

from __future__ import annotations

import streamlit as st

from ui.runs import finished_runs, model_in_use, run_label
from ui.state import active_dataset, dataset_from_job


def model_line() -> str:
    """Which run Evaluate and Predict use, in words."""
    runs = finished_runs()
    in_use = model_in_use(runs)
    if in_use.path is None:
        return "none yet: train one on Train, or run the demo on Home"
    name = run_label(in_use.path, runs[in_use.path])
    if in_use.chosen:
        return name
    if in_use.unfinished:
        return (f"{in_use.unfinished} has no model yet (not finished), so the newest run: "
                f"{name}")
    return f"newest run: {name} (none chosen: pick one on Runs)"


def sidebar() -> None:
    """The active dataset and model, on every page."""
    with st.sidebar:
        dataset = active_dataset()
        st.markdown("**Dataset**")
        if dataset is None:
            st.caption("none chosen: pick one on the Data page")
        else:
            job = dataset_from_job()
            st.caption(dataset.label + (f" (that of the job {job})" if job else ""))
        st.markdown("**Model** (Evaluate and Predict use it)")
        st.caption(model_line())
        st.divider()
        st.caption("Research software. Not a medical device; not for diagnosis.")
