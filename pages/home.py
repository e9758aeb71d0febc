"""Landing page: what the tool is, a one-click demo that works with no data and no GPU, and
the way through the other pages."""

from __future__ import annotations

import streamlit as st

from core import __version__
from core.data.records import CLASS_NAMES, MIAS_CLASSES
from core.errors import MammoError
from core.experiments.jobs import active_jobs, submit
from core.models.backbones import keras_cache_dir
from core.runs.pace import duration_words
from core.runs.presets import DEMO_FILMS, demo_job, demo_pretrained, demo_weights_file
from core.settings import data_root
from ui.jobs import job_panel, job_seconds, last_finished
from ui.state import (
    ActiveDataset,
    enter_through_app,
    runs_root,
    set_active_dataset,
    show_error,
)

enter_through_app()

DEMO_FOLDER = "demo-synthetic"

st.title("Mammogram classification and malignancy localisation")
st.write(
    "An open tool that reimplements two published methods, attention learning on mini-MIAS "
    "(a VGG16 encoder with an RNN decoder that attends over the film) and transfer learning "
    "for micro-calcifications (fine-tuned AlexNet and GoogLeNet on CBIS-DDSM), and measures "
    "them on honest protocols: patient-grouped splits, cross-validation and confidence "
    "intervals, beside trivial baselines."
)

st.subheader("Try it with no data")
last_demo = last_finished("demo")
demo_seconds = job_seconds(last_demo) if last_demo and last_demo.state == "done" else None
took = (f"The last demo here took {duration_words(demo_seconds)} from start to finish."
        if demo_seconds is not None else
        "It has not run on this machine yet: its progress and the time left show below.")
st.write(
    f"The demo draws {DEMO_FILMS} **SYNTHETIC** films (drawn by the program, not mammograms; "
    "each says so on the film), then trains a small attention model on them on this CPU. "
    f"{took} Then look at its report on Evaluate and upload a film on Predict."
)

if not demo_pretrained():
    st.warning(
        "The ImageNet weights for MobileNetV2 are not installed here, so the demo will train "
        "a random-init encoder, which learns next to nothing (macro-F1 0.04 against 0.52 with "
        f"the weights). Place `{demo_weights_file()}` in `{keras_cache_dir()}` first.",
        icon=":material/warning:")
if flash := st.session_state.pop("home_flash", None):
    st.success(flash, icon=":material/schedule:")


def demo_under_way() -> bool:
    """Whether a demo is running or waiting in the queue (one at a time is enough)."""
    running, queued = active_jobs(runs_root())
    return any(job.kind == "demo" for job in [running, *queued] if job is not None)


under_way = demo_under_way()
if st.button("Run the demo", type="primary", icon=":material/play_arrow:", disabled=under_way,
             help="The demo is under way: its progress is below." if under_way else None):
    if demo_under_way():  # queued from another tab since this page was drawn
        st.info("The demo is already running: its progress is below.")
    else:
        films = data_root() / DEMO_FOLDER
        try:
            submit("demo", demo_job(str(films)), label="demo on SYNTHETIC films",
                   root=runs_root())
        except MammoError as error:
            show_error(error, "demo not started")
        else:
            set_active_dataset(ActiveDataset("mias", str(films), {}, synthetic=True))
            st.session_state["home_flash"] = "Demo queued; it is now the active dataset."
            st.rerun()
job_panel("home")

st.subheader("The way through")
st.page_link("pages/data.py", label="Data: pick MIAS, CBIS-DDSM or synthetic films; see the "
             "class histograms before and after augmentation", icon=":material/photo_library:")
st.page_link("pages/train.py", label="Train: set the knobs, start, follow, cancel",
             icon=":material/model_training:")
st.page_link("pages/evaluate.py", label="Evaluate: report, confusion matrix, ROC, heatmaps",
             icon=":material/analytics:")
st.page_link("pages/predict.py", label="Predict: upload films, see class and heatmap",
             icon=":material/image_search:")
st.page_link("pages/runs.py", label="Runs: compare, download, delete",
             icon=":material/folder_open:")

st.subheader("The seven mini-MIAS classes")
st.table({"id": list(range(len(MIAS_CLASSES))), "class": list(MIAS_CLASSES),
          "meaning": [CLASS_NAMES[c] for c in MIAS_CLASSES]})

with st.expander("The same from the command line"):
    st.code(
        "python -m core data summary --dataset mias --root PATH/TO/MIAS --json\n"
        "python -m core data synth --out demo_films --n 70 --seed 0   # SYNTHETIC films\n"
        "python -m core train --dataset mias --root PATH/TO/MIAS --json\n"
        "python -m core cv --dataset mias --root PATH/TO/MIAS --folds 5 --json\n"
        "python -m core jobs list   # the queue the app trains through",
        language="bash",
    )
st.caption(f"core {__version__}. Synthetic films are drawn by the program and are labelled "
           "as synthetic wherever they appear; they are not mammograms.")
