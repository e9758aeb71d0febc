"""Predict: upload films and see, for each, the class a trained run gives it, its
probabilities and where the model looked.

The model runs once per (run, file name, content): each film's shrunken pixels and heatmap
are kept in the session, so moving a slider or switching the side-by-side view only
redraws the overlay. Uploaded bytes stay in memory; nothing is written to disk.

The last results are kept in the session too, keyed by their run and uploads: leaving the
page empties the upload box (Streamlit forgets a widget that is not drawn), but coming back
shows the same results until the films are removed from the box or cleared.

A model trained to read both breasts (``both_breasts``) reads each film beside the other
breast of the same view: the page asks, for each upload, which other upload that is (none by
default, and then the film is read against itself, which its result says).

Other models can join the chosen one as an ensemble (the fold models of one cross-validation,
say): each film's probabilities and heatmap are then their mean (``core.evaluate.predict``).
Only runs whose answers can be averaged with the chosen one's are offered.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from core.data.records import CLASS_NAMES
from core.errors import MammoError
from core.evaluate.evaluate import run_settings
from core.evaluate.predict import ensemble_mismatch, loaded_ensemble, predict_uploads
from core.films import SUPPORTED_SUFFIXES, describe_gate
from core.render.charts import probability_bars
from core.render.film_view import FilmView, caption
from core.runs.folder import open_run
from ui.film_view import show_view, view_controls
from ui.runs import choose_run, finished_runs, is_synthetic, run_label, trained_on
from ui.state import (
    enter_through_app,
    show_error,
)

enter_through_app()

#: Streamlit filters uploads by suffix; ``.dicom`` is a common spelling the reader also takes
#: (it tells formats apart by content, not by name).
FILE_TYPES = [suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES] + ["dicom"]
_RUN_WIDGET = "predict_run"
_ENSEMBLE_WIDGET = "predict_also"
_UPLOADER = "predict_films"
_CACHE = "predict_cache"
#: ``{"run": path, "models": the runs scoring them, one a line, "keys": [cache keys]}``: the
#: results last shown, for coming back.
_LAST = "predict_last"

#: A result's key: (the run folders scoring it, one a line, file name, sha256 of the
#: content, sha256 of the other breast's content or "" where the film is read alone).
ResultKey = tuple[str, str, str, str]
#: The other-breast menu's first choice.
ALONE = "none: read this film alone"


def _digest(upload: UploadedFile | None) -> str:
    return "" if upload is None else hashlib.sha256(upload.getvalue()).hexdigest()


def predictions(run: str, uploads: list[UploadedFile],
                others: list[UploadedFile | None] | None = None, also: tuple[str, ...] = ()
                ) -> list[tuple[ResultKey, dict[str, Any]]]:
    """One entry per upload, in order, with its key. The model sees only films this
    session has not scored with this run yet, one at a time, so an unexpected fault in one
    file names that file and spares the rest. The cache keeps just the current uploads, so
    a session's memory follows what its page shows; they become the results kept for
    coming back. ``others``: for a run that reads both breasts, each upload's other breast
    (None: read alone). ``also``: runs averaged with ``run`` (an ensemble)."""
    mates = others if others is not None else [None] * len(uploads)
    models = _models_key(run, also)
    keys = [(models, upload.name, _digest(upload), _digest(other))
            for upload, other in zip(uploads, mates)]
    cache: dict[ResultKey, dict[str, Any]] = st.session_state.get(_CACHE, {})
    todo = [(key, upload, other) for key, upload, other in zip(keys, uploads, mates)
            if key not in cache]
    if todo:
        bar = st.progress(0.0)
        for done, (key, upload, other) in enumerate(todo):
            bar.progress(done / len(todo), text=f"Predicting {upload.name}")
            pair = None if others is None else [
                None if other is None else (other.name, other.getvalue())]
            try:
                cache[key] = predict_uploads(run, [(upload.name, upload.getvalue())],
                                             others=pair, also=also)[0]
            except Exception as error:  # noqa: BLE001 (a bug on one film must not hide the rest)
                cache[key] = {"file": upload.name, "error": f"{type(error).__name__}: {error}"}
        bar.empty()
    st.session_state[_CACHE] = {key: cache[key] for key in keys}
    st.session_state[_LAST] = {"run": run, "models": models, "keys": keys}
    return [(key, cache[key]) for key in keys]


def _models_key(run: str, also: tuple[str, ...]) -> str:
    return "\n".join((run, *also))


def kept_results(run: str, also: tuple[str, ...] = ()) -> list[tuple[ResultKey, dict[str, Any]]]:
    """The results last shown, when they came from ``run`` (with ``also``) and are all still
    kept."""
    last = st.session_state.get(_LAST) or {}
    cache: dict[ResultKey, dict[str, Any]] = st.session_state.get(_CACHE, {})
    keys = last.get("keys") or []
    if last.get("models") != _models_key(run, also) or not all(key in cache for key in keys):
        return []
    return [(key, cache[key]) for key in keys]


def ensemble_partners(run: str, runs: dict[str, dict[str, Any]]) -> list[str]:
    """The other finished runs whose answers can be averaged with ``run``'s (a run whose
    manifest cannot be read is left out, as the model menu leaves it out)."""
    lead = run_settings(open_run(run))
    partners = []
    for path in runs:
        try:
            if path != run and not ensemble_mismatch(lead, run_settings(open_run(path))):
                partners.append(path)
        except MammoError:
            continue
    return partners


def forget_results() -> None:
    st.session_state.pop(_LAST, None)
    st.session_state.pop(_CACHE, None)


def _on_upload_change() -> None:
    """Films removed from the box take their results with them (leaving the page does not
    call this: the box is then emptied without a change of the user's)."""
    if not st.session_state.get(_UPLOADER):
        forget_results()


def show_entry(entry: dict[str, Any], key: str, models: int = 1) -> None:
    """One film's result; ``key`` keeps its widgets apart from other uploads' widgets;
    ``models``: how many runs' answers it is the mean of."""
    name = entry["file"]
    with st.container(border=True):
        st.subheader(_escape(name), anchor=False)
        if "dicom" in entry:
            st.caption(_escape(describe_gate(entry["dicom"])))
        if "error" in entry:
            message = entry["error"]
            st.error(message if message.startswith(name) else f"{name}: {message}",
                     icon=":material/error:")
            return
        doubts = entry.get("warnings") or []
        if doubts:
            st.warning("Doubts about this film. The model answered anyway, so read its class "
                       "and heatmap as what it does with such a picture, not as a finding:\n"
                       + "\n".join(f"- {_escape(doubt)}" for doubt in doubts),
                       icon=":material/warning:")
        label = entry["label"]
        meaning = CLASS_NAMES.get(label)
        left, right = st.columns([2, 3])
        with left:
            st.metric("Predicted class", label + (f" ({meaning})" if meaning else ""))
            if entry["synthetic"]:
                st.caption("From a model trained on SYNTHETIC films.")
            if models > 1:
                st.caption(f"The mean of {models} models' answers (an ensemble).")
            st.plotly_chart(probability_bars(entry["probabilities"]), key=f"bars-{key}")
            settings = view_controls(key)
        with right:
            show_view(FilmView(entry["film"], entry["heat"]),
                      caption(label, synthetic=bool(entry["synthetic"])),
                      settings, key, name)


def other_breasts(uploads: list[UploadedFile], run: str) -> list[UploadedFile | None]:
    """For a run that reads both breasts: which upload is each film's other breast, as the
    user says in one menu per film (read alone unless told)."""
    names = [upload.name for upload in uploads]
    chosen: list[UploadedFile | None] = []
    with st.expander("The other breast of each film (this model reads both breasts)",
                     expanded=True, icon=":material/compare:"):
        st.caption("Pick, for each film, the film of the same woman's other breast in the "
                   "same view. A film read alone is read against itself: the model then "
                   "sees no asymmetry, and its result says so.")
        for index, upload in enumerate(uploads):
            options = [ALONE, *(name for number, name in enumerate(names) if number != index)]
            picked = st.selectbox(_escape(upload.name), options,
                                  key=f"other-{run}-{index}-{upload.name}")
            chosen.append(None if picked == ALONE else uploads[names.index(picked)])
    return chosen


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
try:
    partners = ensemble_partners(run, runs)
except Exception as error:  # noqa: BLE001 (shown as one line, never a traceback)
    show_error(error, f"Loading {Path(run).name}")
    st.stop()
also = tuple(st.multiselect(
    "Average with other models (an ensemble)", partners, key=f"{_ENSEMBLE_WIDGET}-{run}",
    format_func=lambda path: run_label(path, runs[path]),
    placeholder="none: this model alone" if partners else "no other model answers the same way",
    help="Each film's probabilities and heatmap become the mean over these models and the one "
         "above, e.g. the fold models of one cross-validation (each trained without the "
         "others' test women). Offered: models with the same classes, preprocessing and "
         "model family."))
if any(is_synthetic(runs[path]) for path in (run, *also)):
    st.warning("SYNTHETIC: this model was trained on synthetic films drawn by the program, "
               "not on mammograms; what it predicts says nothing about real films.",
               icon=":material/warning:")
try:
    # A model that cannot load is one message, not one per film.
    loaded = loaded_ensemble(run, also)[0]
except Exception as error:  # noqa: BLE001 (shown as one line, never a traceback)
    show_error(error, f"Loading {Path(run).name}" + (f" and {len(also)} more" if also else ""))
    st.stop()
reads_both = loaded.settings.config.both_breasts
if reads_both:
    st.caption("This model reads each film beside the other breast of the same view: upload "
               "both films of a woman and say which goes with which below.")

uploads = st.file_uploader(
    "Films", type=FILE_TYPES, accept_multiple_files=True, key=_UPLOADER,
    on_change=_on_upload_change,
    help="PGM, PNG, JPEG, TIFF or DICOM; a DICOM file without a suffix needs one (.dcm).")
if uploads:
    results = predictions(run, uploads, other_breasts(uploads, run) if reads_both else None,
                          also)
else:
    results = kept_results(run, also)
    if not results:
        st.caption("Upload one or more films to predict them.")
        elsewhere = (st.session_state.get(_LAST) or {}).get("run")
        if elsewhere and elsewhere != run and elsewhere in runs:
            st.caption(f"Your last results came from {Path(elsewhere).name}: choose it "
                       "above to see them again.")
        st.stop()
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.info(f"Your last results, kept while you were away ({len(results)} "
              f"film{'s' if len(results) != 1 else ''}). Upload films to predict others.",
              icon=":material/history:")
    if right.button("Clear these results", icon=":material/close:"):
        forget_results()
        st.rerun()
for index, (key, result) in enumerate(results):
    show_entry(result, f"{index}-{key[2][:12]}", models=1 + len(also))
