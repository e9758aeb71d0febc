"""The job panel: the running training with live progress and a cancel button, the queue,
the outcome of the last job with the way on ("Evaluate it", "Try it on a film"), and the
last finished jobs. Home and Train show it; both read the same files, so every tab and every
reload sees the one job that runs, never a copy of it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import streamlit as st

from core.errors import MammoError
from core.experiments.jobs import Job, active_jobs, cancel, list_jobs
from core.render.charts import training_curves
from core.runs.folder import Run, run_title
from core.runs.follow import follow
from core.runs.pace import duration_words
from ui.state import runs_root, set_active_run, show_error

#: Seconds between refreshes of the panel while a job runs or waits.
REFRESH_S = 1.0
RECENT = 3
_SEEN_KEY = "jobs_seen_active"


def job_panel(key: str) -> None:
    """Draw the panel; while anything runs or waits it redraws itself every ``REFRESH_S``."""
    running, queued = active_jobs(runs_root())
    busy = running is not None or bool(queued)
    st.session_state.setdefault(_SEEN_KEY, False)
    if busy:
        st.session_state[_SEEN_KEY] = True
    _panel(key, refresh=REFRESH_S if busy else None)
    if not busy:
        _last_outcome(key)


def _panel(key: str, refresh: float | None) -> None:
    @st.fragment(run_every=refresh)
    def body() -> None:
        running, queued = active_jobs(runs_root())
        if running is None and not queued and st.session_state.get(_SEEN_KEY):
            # What we followed has ended: redraw the whole page, so run lists catch up and
            # the panel stops polling.
            st.session_state[_SEEN_KEY] = False
            st.rerun()
        if running is not None:
            _running(running, key)
        elif not queued:
            st.caption("No training is running.")
        if queued:
            _queue(queued, key)
        _recent(key)

    body()


def _running(job: Job, key: str) -> None:
    tag = " · SYNTHETIC films" if job.spec.get("synthetic") else ""
    st.markdown(f"**Running: {job.label}** ({job.kind}{tag})")
    run = job.latest_run
    if run is None:
        st.progress(0.0, text=job.stage or "starting")
    else:
        progress = follow(run)
        eta = f" · about {timedelta(seconds=round(progress.eta_s))} left" \
            if progress.eta_s is not None else ""
        label = f"{progress.stage}: {progress.detail}{eta}" if progress.detail \
            else progress.stage
        st.progress(min(max(progress.fraction, 0.0), 1.0), text=label)
        title = run_title(run.name, _manifest(run))
        if len(job.runs) > 1:
            st.caption(f"run {len(job.runs)} of this sweep: {title}")
        else:
            st.caption(f"run: {title}")
        if progress.curves:  # epochs counted across phases (patches, head, fine-tuning)
            st.plotly_chart(training_curves(progress.curves), key=f"{key}-curves-{job.id}")
    if job.cancel:
        st.caption("Cancelling: training stops after the current batch.")
    elif st.button("Cancel this training", key=f"{key}-cancel-{job.id}",
                   icon=":material/stop_circle:"):
        _cancel(job)


def _manifest(run: Run) -> dict | None:
    try:
        return run.manifest
    except MammoError:  # being written or damaged: the folder's name will do
        return None


def _queue(queued: list[Job], key: str) -> None:
    st.markdown(f"**Waiting: {len(queued)}** (one training runs at a time)")
    for position, job in enumerate(queued, start=1):
        left, right = st.columns([4, 1])
        left.caption(f"{position}. {job.label} ({job.kind}), queued {job.submitted}")
        if right.button("Drop", key=f"{key}-drop-{job.id}", icon=":material/close:"):
            _cancel(job)


def _recent(key: str) -> None:
    finished = [job for job in list_jobs(runs_root()) if job.finished][-RECENT:]
    if not finished:
        return
    with st.expander("Recently finished", expanded=False):
        for job in reversed(finished):
            line = f"{job.label}: **{job.state}**" + (f" ({job.error})" if job.error else "")
            left, right = st.columns([4, 1])
            left.markdown(line)
            run = job.latest_run
            if run is not None and job.state == "done" and right.button(
                    "Use model", key=f"{key}-use-{job.id}"):
                set_active_run(run.path)
                st.rerun()


def last_finished(kind: str | None = None) -> Job | None:
    """The job (of ``kind``, if given) that ended last."""
    finished = [job for job in list_jobs(runs_root())
                if job.finished and job.ended and (kind is None or job.kind == kind)]
    return max(finished, key=lambda job: str(job.ended), default=None)


def job_seconds(job: Job) -> float | None:
    """A finished job's wall time, start to end (the worker's own start-up included)."""
    try:
        started = datetime.fromisoformat(str(job.started))
        ended = datetime.fromisoformat(str(job.ended))
    except ValueError:
        return None
    return max((ended - started).total_seconds(), 0.0)


def _last_outcome(key: str) -> None:
    """What became of the last job, said plainly; a trained model gets the way on."""
    job = last_finished()
    if job is None:
        return
    what = "The demo" if job.kind == "demo" else "Training"
    seconds = job_seconds(job)
    took = f" in {duration_words(seconds)}" if seconds is not None else ""
    run = job.latest_run
    if job.state == "done" and run is not None:
        tag = " (trained on SYNTHETIC films)" if job.spec.get("synthetic") else ""
        st.success(f"{what} finished{took}: {run_title(run.name, _manifest(run))}{tag}", icon=":material/check_circle:")
        evaluate, predict, _ = st.columns([1, 1, 3])
        if evaluate.button("Evaluate it", key=f"{key}-evaluate-{job.id}", type="primary",
                           icon=":material/analytics:"):
            set_active_run(run.path)
            st.switch_page("pages/evaluate.py")
        if predict.button("Try it on a film", key=f"{key}-predict-{job.id}",
                          icon=":material/image_search:"):
            set_active_run(run.path)
            st.switch_page("pages/predict.py")
    elif job.state == "failed":
        st.error(f"{what} failed: {job.label}: {job.error or 'no reason recorded'}",
                 icon=":material/error:")
    elif job.state == "cancelled":
        st.info(f"{what} was cancelled: {job.label}", icon=":material/stop_circle:")


def _cancel(job: Job) -> None:
    try:
        cancel(job.id, runs_root())
    except MammoError as error:
        show_error(error, "cancel")
        return
    st.toast(f"Cancelling {job.label}")
