"""Predict: upload films and see, for each, the class a trained run gives it, its
probabilities and where the model looked.

The model runs once per (run, file name, content): each film's shrunken pixels and heatmap
are kept in the session, so moving an opacity slider or switching the side-by-side view only
redraws the overlay. Uploaded bytes stay in memory; nothing is written to disk.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from core.data.records import CLASS_NAMES
from core.evaluate.predict import loaded_run, predict_uploads
from core.films import SUPPORTED_SUFFIXES
from core.render.charts import probability_bars
from core.render.overlay import png_bytes, viridis_overlay
from ui.runs import choose_run, finished_runs, is_synthetic, trained_on
from ui.state import (
    enter_through_app,
    show_error,
)

enter_through_app()

#: Streamlit filters uploads by suffix; ``.dicom`` is a common spelling the reader also takes
#: (it tells formats apart by content, not by name).
FILE_TYPES = [suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES] + ["dicom"]
DEFAULT_OPACITY = 0.45
_RUN_WIDGET = "predict_run"
_CACHE = "predict_cache"


def predictions(run: str, uploads: list[UploadedFile]) -> list[dict[str, Any]]:
    """One entry per upload, in order. The model sees only films this session has not
    scored with this run yet, one at a time, so an unexpected fault in one file names that
    file and spares the rest. The cache keeps just the current uploads, so a session's
    memory follows what its page shows."""
    keys = [(run, upload.name, hashlib.sha256(upload.getvalue()).hexdigest())
            for upload in uploads]
    cache: dict[tuple[str, str, str], dict[str, Any]] = st.session_state.get(_CACHE, {})
    todo = [(key, upload) for key, upload in zip(keys, uploads) if key not in cache]
    if todo:
        bar = st.progress(0.0)
        for done, (key, upload) in enumerate(todo):
            bar.progress(done / len(todo), text=f"Predicting {upload.name}")
            try:
                cache[key] = predict_uploads(run, [(upload.name, upload.getvalue())])[0]
            except Exception as error:  # noqa: BLE001 (a bug on one film must not hide the rest)
                cache[key] = {"file": upload.name, "error": f"{type(error).__name__}: {error}"}
        bar.empty()
    st.session_state[_CACHE] = {key: cache[key] for key in keys}
    return [cache[key] for key in keys]


def show_entry(entry: dict[str, Any], key: str) -> None:
    """One film's result; ``key`` keeps its widgets apart from other uploads' widgets."""
    name = entry["file"]
    with st.container(border=True):
        st.subheader(_escape(name), anchor=False)
        if "error" in entry:
            message = entry["error"]
            st.error(message if message.startswith(name) else f"{name}: {message}",
                     icon=":material/error:")
            return
        label = entry["label"]
        meaning = CLASS_NAMES.get(label)
        left, right = st.columns([2, 3])
        with left:
            st.metric("Predicted class", label + (f" ({meaning})" if meaning else ""))
            if entry["synthetic"]:
                st.caption("From a model trained on SYNTHETIC films.")
            st.plotly_chart(probability_bars(entry["probabilities"]), key=f"bars-{key}")
            opacity = st.slider("Heatmap opacity", 0.0, 1.0, DEFAULT_OPACITY, 0.05,
                                key=f"opacity-{key}")
            side_by_side = st.toggle("Side by side with the plain film", key=f"side-{key}")
        caption = label + (" (SYNTHETIC model)" if entry["synthetic"] else "")
        overlay = viridis_overlay(entry["film"], entry["heat"], opacity, predicted=caption,
                                  stretch=False)
        with right:
            if side_by_side:
                plain, heat = st.columns(2)
                plain.image(entry["film"], caption="film", width="stretch")
                heat.image(overlay, caption=f"heatmap at opacity {opacity:.2f}", width="stretch")
            else:
                st.image(overlay, caption=f"heatmap at opacity {opacity:.2f}", width="stretch")
            st.download_button("Download the overlay (PNG)", png_bytes(overlay, name),
                               file_name=f"{Path(name).stem or 'film'}-heatmap.png",
                               mime="image/png", key=f"download-{key}", on_click="ignore",
                               icon=":material/download:")


def _escape(text: str) -> str:
    """A file name shown as itself, not as Markdown (``_x_`` is not meant in italics)."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~$])", r"\\\1", text)


st.title("Predict")
st.caption("Upload films to see the class a trained model gives each one and where it "
           "looked. Research software: not a medical device, not for diagnosis.")

runs = finished_runs()
if not runs:
    st.info("No trained model yet. Train one on the Train page, or try the demo on the Home "
            "page, which trains a small model on SYNTHETIC films.", icon=":material/info:")
    st.page_link("pages/home.py", label="Home: the demo", icon=":material/home:")
    st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
    st.stop()

run = choose_run(runs, "Model", _RUN_WIDGET)
st.caption(trained_on(runs[run]))
if is_synthetic(runs[run]):
    st.warning("SYNTHETIC: this model was trained on synthetic films drawn by the program, "
               "not on mammograms; what it predicts says nothing about real films.",
               icon=":material/warning:")
try:
    loaded_run(run)  # a model that cannot load is one message, not one per film
except Exception as error:  # noqa: BLE001 (shown as one line, never a traceback)
    show_error(error, f"Loading {Path(run).name}")
    st.stop()

uploads = st.file_uploader(
    "Films", type=FILE_TYPES, accept_multiple_files=True,
    help="PGM, PNG, JPEG, TIFF or DICOM; a DICOM file without a suffix needs one (.dcm).")
if not uploads:
    st.caption("Upload one or more films to predict them.")
    st.stop()
for upload, result in zip(uploads, predictions(run, uploads)):
    show_entry(result, upload.file_id)
