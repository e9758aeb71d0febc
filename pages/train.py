"""Train: the model's knobs in one form, a sweep option, and the live job panel.

Start queues a job (``core.experiments.jobs``); a worker process trains it, so the page can be
reloaded, opened twice or closed without stopping or duplicating anything.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import MammoError
from core.experiments.jobs import submit
from core.experiments.sweep import parse_grid
from core.models.backbones import imagenet_installed, list_backbones
from core.runs.config import CELLS, MODELS, OPTIMIZERS, PATCH_LABELS, TrainConfig
from core.runs.presets import PRESETS
from ui.jobs import job_panel
from ui.state import active_dataset, enter_through_app, runs_root, show_error

enter_through_app()

BALANCING_LABELS = {"augment": "augment to balance", "class_weights": "class weights",
                    "none": "none"}
PATCH_LABEL_NAMES = {"lesion": "lesion vs normal", "class": "the film's class"}

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


def _form(base: TrainConfig) -> dict[str, Any]:
    """The knobs, each starting at the preset's value."""
    values: dict[str, Any] = {}
    backbones = list_backbones()
    with st.form("train-form"):
        st.markdown(f"**Dataset:** {dataset.label}")
        a, b, c = st.columns(3)
        values["model"] = a.selectbox("Model", MODELS, index=MODELS.index(base.model),
                                      help="attention: encoder + RNN decoder (paper 1); "
                                           "transfer: backbone + new head (paper 2)")
        values["backbone"] = b.selectbox("Backbone", backbones,
                                         index=backbones.index(base.backbone))
        weights = c.selectbox("Weights", ["imagenet", "none", "a file"],
                              index=0 if base.weights == "imagenet" else 1,
                              help="ImageNet weights load offline only where installed in "
                                   "the Keras cache")
        weights_file = c.text_input("Weights file (for 'a file')", "")
        values["weights"] = weights_file.strip() if weights == "a file" else weights
        values["image_size"] = a.number_input("Input size (px)", 32, 2048, base.image_size,
                                              step=32)
        values["cell"] = b.selectbox("Decoder cell", CELLS, index=CELLS.index(base.cell))
        values["steps"] = c.number_input("Attention steps", 1, 32, base.steps)
        values["epochs"] = a.number_input("Epochs", 1, 1000, base.epochs)
        values["batch_size"] = b.number_input("Batch size", 1, 1024, base.batch_size)
        values["learning_rate"] = c.number_input("Learning rate", 1e-7, 1.0,
                                                 base.learning_rate, format="%.6f")
        values["optimizer"] = a.selectbox("Optimizer", OPTIMIZERS,
                                          index=OPTIMIZERS.index(base.optimizer))
        values["weight_lr_factor"] = b.number_input("Weight learn-rate factor", 0.0, 1000.0,
                                                    base.weight_lr_factor)
        values["bias_lr_factor"] = c.number_input("Bias learn-rate factor", 0.0, 1000.0,
                                                  base.bias_lr_factor)
        values["l2_factor"] = a.number_input("L2 factor (x 1e-4)", 0.0, 1000.0, base.l2_factor)
        values["patience"] = b.number_input("Patience (0: never stop early)", 0, 1000,
                                            base.patience)
        values["balance"] = a.selectbox("Class balance", list(BALANCING_LABELS),
                                        index=list(BALANCING_LABELS).index(base.balance),
                                        format_func=BALANCING_LABELS.get)
        target = b.number_input("Augmentation target (total films; 0: largest class x classes)",
                                0, 100_000, base.augment_target or 0)
        values["augment_target"] = int(target) or None
        values["seed"] = c.number_input("Seed", 0, 2**31 - 1, base.seed)
        st.markdown("**Training the encoder itself** (the default pretrains its top on lesion "
                    "and normal-tissue patches, then fine-tunes it on films)")
        a, b, c, d, e = st.columns(5)  # in the order they train
        values["patch_epochs"] = a.number_input(
            "Patch epochs (0: none)", 0, 1000, base.patch_epochs,
            help="before the decoder: tune the encoder's top on patches of the located "
                 "lesions and of normal tissue (films without lesion locations skip it, "
                 "with a warning)")
        values["patch_layers"] = b.number_input("Patch layers", 0, 500, base.patch_layers)
        values["patch_labels"] = c.selectbox("Patch labels", list(PATCH_LABELS),
                                             index=list(PATCH_LABELS).index(base.patch_labels),
                                             format_func=PATCH_LABEL_NAMES.get)
        values["fine_tune_layers"] = d.number_input(
            "Fine-tune layers", 0, 500, base.fine_tune_layers,
            help="after the decoder: unfreeze the encoder's top layers and train end to end "
                 "on films (0: none)")
        values["fine_tune_epochs"] = e.number_input("Fine-tune epochs", 0, 1000,
                                                    base.fine_tune_epochs)
        sweep = st.checkbox("Sweep: one run per combination of the values below")
        grid_text = st.text_area("Sweep grid, one setting per line",
                                 "patience=5,10\nweight_lr_factor=1,10",
                                 help="NAME=V1,V2,...; names as in the form "
                                      "(e.g. cell, steps, image_size, l2_factor)")
        values["_sweep"] = grid_text if sweep else None
        values["_start"] = st.form_submit_button("Start training", type="primary",
                                                 icon=":material/play_arrow:")
    return values


values = _form(base)
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
