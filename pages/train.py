"""Train: the model's knobs in one form, a sweep option, and the live job panel.

The form is drawn from the settings' declarations (``ui.train_form``): the chosen model's
settings, with the labels, menus and ranges the config declares.

Start queues a job (``core.experiments.jobs``); a worker process trains it, so the page can be
reloaded, opened twice or closed without stopping or duplicating anything.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import MammoError
from core.experiments.jobs import submit
from core.experiments.sweep import parse_grid
from core.models.backbones import imagenet_installed
from core.runs.config import SETTINGS, TrainConfig
from core.runs.presets import PRESETS
from ui.jobs import job_panel
from ui.state import active_dataset, enter_through_app, runs_root, show_error
from ui.train_form import setting_widget, settings_form

enter_through_app()

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

preset_name = st.selectbox("Start from", list(PRESETS), format_func=lambda k: PRESETS[k].title)
preset = PRESETS[preset_name]
st.caption(preset.why)
base = preset.config(dataset=dataset.name, root=dataset.root,
                     dataset_options=dict(dataset.options))


def _form(base: TrainConfig, model: str) -> dict[str, Any]:
    """The settings of ``model``, each starting at the preset's value, and the sweep."""
    with st.form("train-form"):
        st.markdown(f"**Dataset:** {dataset.label}")
        values = {"model": model, **settings_form(base, model)}
        sweep = st.checkbox("Sweep: one run per combination of the values below")
        grid_text = st.text_area("Sweep grid, one setting per line",
                                 "patience=5,10\nweight_lr_factor=1,10",
                                 help="NAME=V1,V2,...; names as in the form "
                                      "(e.g. cell, steps, image_size, l2_factor)")
        values["_sweep"] = grid_text if sweep else None
        values["_start"] = st.form_submit_button("Start training", type="primary",
                                                 icon=":material/play_arrow:")
    return values


# Outside the form, so that the form shows the chosen model's settings as soon as it changes.
model = setting_widget(st, SETTINGS["model"], base.model)
values = _form(base, model)
if values["backbone"] and values["weights"] == "imagenet" and not imagenet_installed(
        values["backbone"], int(values["image_size"])):
    st.caption(f"ImageNet weights for {values['backbone']} at {values['image_size']} px are "
               "not installed here: the job will stop with the file name to place.")

if values.pop("_start"):
    grid_text = values.pop("_sweep")
    try:
        config = base.with_overrides(**values)
        spec: dict[str, Any] = {"config": config.to_dict(), "synthetic": dataset.synthetic}
        kind = "train"
        if grid_text:
            spec["grid"] = parse_grid([line for line in grid_text.splitlines() if line.strip()],
                                      config)
            kind = "sweep"
        label = f"{config.model} {config.backbone} {config.image_size}px on {dataset.name}"
        job = submit(kind, spec, label=label, root=runs_root())
    except MammoError as error:
        show_error(error, "not started")
    else:
        st.session_state["train_flash"] = f"Queued: {job.label}"
        st.rerun()
