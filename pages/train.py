"""Train: a form of the chosen model's settings, an estimate of time and memory, a sweep
option, and the live job panel.

The form is drawn from the settings' declarations (``ui.train_form``): only those that
apply to the choices made, the advanced ones folded. A preset whose ImageNet weights are
missing here cannot start: the page says why and offers what works here (a random-init
encoder, named as such) in one click. The estimate is scaled from the measured pace of the
runs trained here (``core.runs.pace``).

Start queues a job (``core.experiments.jobs``); a worker process trains it, so the page can be
reloaded, opened twice or closed without stopping or duplicating anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import MammoError
from core.experiments.jobs import submit
from core.experiments.sweep import configs, parse_grid
from core.runs.config import TrainConfig
from core.runs.folder import MANIFEST, Run, list_runs
from core.runs.pace import DataSize, Pace, duration_words, estimate, measured_pace
from core.runs.presets import PRESETS, weights_problem
from ui.jobs import job_panel
from ui.state import (
    ActiveDataset,
    active_dataset,
    enter_through_app,
    read_dataset,
    runs_root,
    show_error,
)
from ui.train_form import model_widget, settings_form

enter_through_app()

#: The session key of the presets switched to a random-init encoder by their button.
RANDOM_INIT_KEY = "train_random_init"

st.title("Train")
if flash := st.session_state.pop("train_flash", None):
    st.success(flash, icon=":material/schedule:")
job_panel("train")
st.divider()

dataset = active_dataset()
if dataset is None:
    st.info("Choose a dataset on the Data page first (or run the demo on Home).")
    st.page_link("pages/data.py", label="Go to Data", icon=":material/photo_library:")
    st.stop()
if dataset.synthetic:
    st.warning("The active dataset is SYNTHETIC: a model trained on it says nothing about "
               "real mammograms.", icon=":material/science:")


@st.cache_data(show_spinner=False, max_entries=256)
def _pace(path: str, mtime_ns: int) -> Pace | None:
    """A finished run's pace, read once per manifest version (its log is long)."""
    return measured_pace(Run(Path(path)))


def measured_paces() -> list[Pace]:
    """The pace of every finished run here, newest first."""
    paces = []
    for run in list_runs(runs_root()):
        try:
            mtime = (run.path / MANIFEST).stat().st_mtime_ns
        except OSError:
            continue
        if (pace := _pace(str(run.path), mtime)) is not None:
            paces.append(pace)
    return paces


def data_size(active: ActiveDataset) -> DataSize | None:
    """The active dataset's films and classes, for the estimate (``None``: unreadable, said
    in one line)."""
    try:
        found = read_dataset(active.name, active.root, active.options)
    except Exception as error:  # noqa: BLE001 - user data: one line, never a traceback
        show_error(error, f"Cannot read {active.root}")
        return None
    return DataSize.of(found.labels, len(found.classes))


def _title(name: str) -> str:
    """The preset's title, marked where it cannot start here as it is."""
    missing = weights_problem(PRESETS[name].config())
    return PRESETS[name].title + (" (its ImageNet weights are missing here)" if missing else "")


def _use_random_init(name: str) -> None:
    st.session_state.setdefault(RANDOM_INIT_KEY, set()).add(name)


preset_name = st.selectbox("Start from", list(PRESETS), format_func=_title)
preset = PRESETS[preset_name]
st.caption(preset.why)
random_init = preset_name in st.session_state.get(RANDOM_INIT_KEY, set())
base = preset.config(dataset=dataset.name, root=dataset.root,
                     dataset_options=dict(dataset.options))
if random_init:
    base = base.with_overrides(weights="none")
    st.caption("Switched to a **random-init encoder** (no ImageNet weights): it trains, but "
               "learns far less than a pretrained one; for a reproduction, place the "
               "ImageNet file instead.")
scope = f"{preset_name}-random-init" if random_init else preset_name

st.markdown(f"**Dataset:** {dataset.label}")
model = model_widget(base, scope)
values: dict[str, Any] = {"model": model, **settings_form(base, scope, model)}
sweep = st.checkbox("Sweep: one run per combination of the values below")
grid_text = st.text_area("Sweep grid, one setting per line", "patience=5,10\nweight_lr_factor=1,10",
                         help="NAME=V1,V2,...; names as in the form (e.g. cell, steps, "
                              "image_size, l2_factor)", disabled=not sweep)


def _plan() -> tuple[TrainConfig, dict[str, list[Any]] | None, list[TrainConfig]]:
    """The config, the sweep grid (if sweeping) and the run(s) Start would queue."""
    config = base.with_overrides(**values)
    if not sweep:
        return config, None, [config]
    grid = parse_grid([line for line in grid_text.splitlines() if line.strip()], config)
    return config, grid, list(configs(config, grid))


try:
    config, grid, planned = _plan()
except MammoError as error:
    show_error(error, "Cannot start")
    config, grid, planned = None, None, []

blocked = not planned
for problem in dict.fromkeys(filter(None, map(weights_problem, planned))):
    blocked = True
    st.warning(f"Cannot start: {problem}.", icon=":material/block:")
    if not random_init:
        st.button("Train with a random-init encoder instead", icon=":material/shuffle:",
                  on_click=_use_random_init, args=(preset_name,),
                  help="Weights: none. Every other setting stays as it is.")

size = data_size(dataset)
if planned and size is not None:
    guesses = [estimate(each, size, measured_paces()) for each in planned]
    text = guesses[0].describe()
    if len(guesses) > 1:
        total = sum(guess.seconds for guess in guesses)
        text = (f"{len(guesses)} runs, one after another: up to {duration_words(total)} in "
                f"all. The first: {text}")
    st.info(f"**Estimate:** {text}", icon=":material/timer:")

if st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=blocked
             ) and config is not None:
    spec: dict[str, Any] = {"config": config.to_dict(), "synthetic": dataset.synthetic}
    if grid is not None:
        spec["grid"] = grid
    label = f"{config.model} {config.backbone} {config.image_size}px on {dataset.name}"
    try:
        job = submit("sweep" if grid is not None else "train", spec, label=label,
                     root=runs_root())
    except MammoError as error:
        show_error(error, "not started")
    else:
        st.session_state["train_flash"] = f"Queued: {job.label}"
        st.rerun()
