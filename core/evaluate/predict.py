"""Predict films with a trained run: a class, its probabilities, and where the model looked.

This is what ``python -m core predict`` (``predict_films``: overlays written as PNGs) and the
app's upload page (``predict_uploads``: film and heatmap arrays kept for redrawing) call. A
film of any supported format is read, prepared exactly as the run's training films were (the
preprocessing config in its manifest), and passed through the model in one compiled call
(``predict_on_batch``) for the probabilities and, for the attention model, its attention.
The heatmap is the attention model's combined map, or Grad-CAM for a transfer model, mapped
back through preprocessing and drawn as a Viridis overlay, with the prediction above it and
the colour bar below (``film_view.overlay_picture``), at a display size: long side 2,048
pixels by default, the film's own size on request (``OverlaySize``). A full-field film is
shrunk once for drawing and its map taken straight onto the shrunken grid, since upsampling
and blending at 12 megapixels cost more than everything else together. A run
trained with temperature scaling has its probabilities divided by its temperature, exactly
as evaluation scores them (``calibrated``).

Each film is shrunk, checked for polarity and segmented once (``look_at``): the same look
sets it upright, feeds the mammogram check and is preprocessed.

A film that does not look like a mammogram (``core.prep.plausibility``: no breast found, a
landscape or sliver of a picture, noise, a flat grey, a colour photo) is still scored, since
refusing would hide what the model does with it, but its entry's ``warnings`` say what is
wrong, so neither the page nor the command line presents its class as a finding.

A run trained with ``both_breasts`` reads each film beside the other breast of the same view
(``core.models.pairs``): ``others`` gives it, film by film, prepared exactly as the film is.
A film given without it, or whose other film cannot be read, is read against itself, as
training reads a film with no other breast, and its entry's ``warnings`` say so.

Several runs can score the films together (``also``: an ensemble, such as a ``core cv``'s
fold models, each trained without the others' test women): each film's probabilities are
the mean of the runs' (each calibrated as its own evaluation scores it) and its heatmap the
mean of their maps, each scaled to a peak of 1 first so that every run weighs the same. The
runs must answer the same question the same way: the same classes, preprocessing, model
family and reading of the other breast; a run that differs is one error naming it.

A bad film (unreadable, blank, a text file named ``.png``) gets one error line in its
entry and never stops the others; a run that cannot be loaded stops the call, since no
film could be scored without it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.atomic import claim_name, make_folder, safe_stem
from core.errors import BadConfigError, MammoError
from core.evaluate.evaluate import RunSettings, calibrated, load_model, run_settings
from core.evaluate.heatmaps import (
    DisplayFilm,
    display_film,
    heat_view,
    mean_map,
    scores_and_maps,
)
from core.evaluate.overlay_size import OverlaySize
from core.films import Film, film_notes, read_film
from core.models.kinds import ModelKind, model_kind
from core.models.pairs import stack_pair
from core.prep.plausibility import plausibility_warnings
from core.prep.preprocess import Look, Prepared, PrepConfig, look_at, prepare_film, upright
from core.render.film_view import DISPLAY_SIDE, FilmView, caption, overlay_picture
from core.render.overlay import save_png
from core.runs.folder import MODEL, Run, open_run

#: A film to predict: a path, or ``(name, content)`` for an upload that has no path.
FilmSource = str | Path | tuple[str, bytes]

#: Films per model call: bounds memory on long file lists (a 512-px batch of 16 is ~17 MB).
BATCH = 16
#: Models kept loaded (the app switches between a few runs, and an ensemble of a 5-fold cv's
#: fold models must stay loaded between uploads; each costs its weights in memory).
CACHE_SIZE = 6
HEATMAP_SUFFIX = "-heatmap.png"
__all__ = ["DISPLAY_SIDE", "OverlaySize", "ensemble_mismatch", "loaded_ensemble", "loaded_run",
           "predict_films", "predict_uploads"]


@dataclass(frozen=True)
class _Loaded:
    model: keras.Model
    prep: PrepConfig
    classes: tuple[str, ...]
    synthetic: bool
    kind: ModelKind
    settings: RunSettings


_CACHE: OrderedDict[tuple[str, int], _Loaded] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def loaded_run(run: Run | str | Path) -> _Loaded:
    """The run's model and settings, loaded once and kept (keyed by the run folder and the
    model file's modification time, so a retrained run is not served stale). A damaged or
    foreign run is one ``BadConfigError`` naming the file (see ``load_model``)."""
    run = run if isinstance(run, Run) else open_run(run)
    model_file = run.path / MODEL
    key = (str(run.path.resolve()), model_file.stat().st_mtime_ns if model_file.is_file() else 0)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    settings = run_settings(run)
    model = load_model(run)
    loaded = _Loaded(model, settings.config.prep, settings.classes, settings.synthetic,
                     model_kind(settings.config.model), settings)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return loaded


#: A run as callers name it: opened, or its folder.
RunSource = Run | str | Path


def loaded_ensemble(run: RunSource, also: Sequence[RunSource] = ()) -> tuple[_Loaded, ...]:
    """``run`` and the runs ``also`` names, loaded, after checking that their answers can be
    averaged; the first run's settings (classes, preprocessing) are the ensemble's."""
    runs = [item if isinstance(item, Run) else open_run(item) for item in (run, *also)]
    lead = run_settings(runs[0])
    for item in runs[1:]:  # every manifest checked before any model loads
        differences = ensemble_mismatch(lead, run_settings(item))
        if differences:
            raise BadConfigError(f"{item.path}: cannot be averaged with {runs[0].name}: they "
                                 f"differ in {', '.join(differences)}")
    return tuple(loaded_run(item) for item in runs)


def ensemble_mismatch(lead: RunSettings, member: RunSettings) -> list[str]:
    """What keeps ``member``'s answers from being averaged with ``lead``'s (nothing: [])."""
    return [what for what, same in (
        ("classes", member.classes == lead.classes),
        ("preprocessing", member.config.prep == lead.config.prep),
        ("model family", member.config.model == lead.config.model),
        ("reading of the other breast", member.config.both_breasts == lead.config.both_breasts))
        if not same]


def _model_name(members_runs: Sequence[Run]) -> dict[str, Any]:
    """How outputs name the model: the run, or the first run and how many more."""
    first = members_runs[0].name
    if len(members_runs) == 1:
        return {"name": first}
    return {"name": f"{first} + {len(members_runs) - 1} more",
            "ensemble_of": [item.name for item in members_runs]}


def predict_films(run: RunSource, files: Sequence[FilmSource], out_dir: str | Path,
                  size: OverlaySize | None = None, dicom_dir: str | Path | None = None,
                  others: Sequence[FilmSource | None] | None = None,
                  also: Sequence[RunSource] = ()) -> list[dict[str, Any]]:
    """One entry per film, in order: ``{"file", "label", "probabilities": {class: p},
    "heatmap": PNG path, "synthetic"}`` or ``{"file", "error"}``, plus ``"warnings"`` (one
    sentence each) when the film looks doubtful: not like a mammogram, or a DICOM the gate
    doubts.

    ``synthetic`` says whether the run was trained on SYNTHETIC films (its figures then say
    nothing about real mammograms). Heatmap PNGs get names no other file in ``out_dir`` has,
    so two uploads both called ``film.png`` keep both overlays. ``size``: how large the
    overlays are drawn (``OverlaySize``'s defaults: long side 2,048 pixels).

    With ``dicom_dir``, each scored film's entry also has ``"dicom_outputs"``: for a DICOM
    film the paths and UIDs of its Secondary Capture and SR (``dicom_out``), for another
    film a note that it gets none, and ``{"error": line}`` when they could not be written
    (the film's scores and PNG stand, and so do the other films' results).

    ``others``: for a run that reads both breasts, each film's other breast (same view), or
    None where there is none; one per film. A run that reads one film refuses them.

    ``also``: more runs scoring with ``run`` as one ensemble (``loaded_ensemble``); each
    entry then names them (``"ensemble_of"``).
    """
    size = size or OverlaySize()
    out = Path(out_dir)
    runs = [item if isinstance(item, Run) else open_run(item) for item in (run, *also)]
    members = loaded_ensemble(runs[0], runs[1:])
    loaded = members[0]
    make_folder(out, "output folder")  # one message up front, not one per film
    dicom_folder = None if dicom_dir is None else make_folder(Path(dicom_dir),
                                                              "DICOM output folder")
    model = {**_model_name(runs), "kind": loaded.settings.config.model}
    named = {"ensemble_of": model["ensemble_of"]} if also else {}

    def save(scored: _Scored) -> dict[str, Any]:
        overlay = overlay_picture(scored.view, caption(scored.predicted,
                                                       synthetic=loaded.synthetic))
        heatmap = claim_name(out, safe_stem(Path(scored.label).stem), HEATMAP_SUFFIX)
        try:
            save_png(overlay, heatmap)
        except MammoError:
            heatmap.unlink(missing_ok=True)
            raise
        saved: dict[str, Any] = {"heatmap": str(heatmap), **named}
        if dicom_folder is not None:
            saved["dicom_outputs"] = _dicom_outputs(scored, overlay, model, dicom_folder,
                                                    heatmap.name.removesuffix(HEATMAP_SUFFIX))
        return saved

    return _predict(members, files, save, size.side, others)


def _dicom_outputs(scored: _Scored, overlay: np.ndarray, model: dict[str, str], folder: Path,
                   stem: str) -> dict[str, Any]:
    """The film's DICOM results, a note when it is not a DICOM, or the one line saying why
    they could not be written (never raised: the film's scores are kept either way)."""
    from core.evaluate import dicom_out  # highdicom costs half a second: only when asked

    if scored.source_format != "dicom":
        return {"skipped": dicom_out.NOT_DICOM}
    try:
        raw = scored.source[1] if isinstance(scored.source, tuple) else scored.source
        header = dicom_out.source_header(raw, scored.label)
        return dicom_out.write_results(header, overlay, scored.probabilities, scored.predicted,
                                       model, folder, stem)
    except MammoError as error:
        return {"error": _one_line(error)}


def predict_uploads(run: RunSource, files: Sequence[FilmSource],
                    side: int = DISPLAY_SIDE,
                    others: Sequence[FilmSource | None] | None = None,
                    also: Sequence[RunSource] = ()) -> list[dict[str, Any]]:
    """As ``predict_films``, but nothing is written: each good film's entry holds, instead of
    a PNG path, ``"film"`` (8-bit grey, stretched as overlays are, long side at most
    ``side``) and ``"heat"`` (float32 in [0, 1], the same shape).

    The app keeps these arrays and redraws the overlay at any opacity and contrast from
    ``FilmView(film, heat)`` (``film_view``), without calling the model again. Shrinking
    bounds what a session holds (about 5 MB a film at 1024 px) however large the uploaded
    film.
    """
    if side < 1:
        raise BadConfigError(f"the display side must be at least 1 pixel, got {side}")

    def keep(scored: _Scored) -> dict[str, Any]:
        return {"film": scored.view.film, "heat": scored.view.heat}

    return _predict(loaded_ensemble(run, also), files, keep, side, others)


@dataclass(frozen=True, eq=False)
class _Scored:
    """A good film once scored: where it came from (``source``, its ``label`` and format),
    the film and its heatmap at the display size (``view``), the predicted class and every
    class's probability."""

    source: FilmSource
    label: str
    source_format: str
    view: FilmView
    predicted: str
    probabilities: dict[str, float]


#: What becomes of a scored film: extra entry fields; a MammoError becomes the entry's error.
_Finish = Callable[[_Scored], dict[str, Any]]


#: What an entry says of a film a two-breast model read without its other breast.
READ_ALONE = ("read without the other breast: this model reads each film beside the other "
              "breast of the same view, so it was read against itself (no asymmetry to see)")


def _predict(members: tuple[_Loaded, ...], files: Sequence[FilmSource], finish: _Finish,
             side: int | None, others: Sequence[FilmSource | None] | None = None
             ) -> list[dict[str, Any]]:
    pairs = members[0].settings.config.both_breasts
    if others is not None and not pairs:
        raise BadConfigError("this run reads one film at a time; other breasts go with a run "
                             "trained with both_breasts")
    if others is not None and len(others) != len(files):
        raise BadConfigError(f"{len(others)} other breast(s) for {len(files)} film(s): give "
                             "one per film (or none)")
    if pairs and others is None:
        others = [None] * len(files)
    entries: list[dict[str, Any]] = []
    for start in range(0, len(files), BATCH):
        chunk = None if others is None else others[start:start + BATCH]
        entries.extend(_predict_batch(members, files[start:start + BATCH], finish, side,
                                      chunk))
    return entries


def _read_prepared(source: FilmSource, label: str, prep: PrepConfig
                   ) -> tuple[Film, Look, Prepared]:
    """A film read, set upright and prepared as the run's films were: ``(film, look,
    prepared)``. One look decides polarity and finds the breast for everything after it."""
    film = read_film(source[1], name=label) if isinstance(source, tuple) else read_film(source)
    look = look_at(film.pixels, source=label)
    film = upright(film, look)
    return film, look, prepare_film(film, prep, label, look=look)


def _other_breast(other: FilmSource | None, own: Prepared, prep: PrepConfig
                  ) -> tuple[np.ndarray, str | None]:
    """The other breast's model input, or the film's own with the warning that says why."""
    if other is None:
        return own.image, READ_ALONE
    try:
        return _read_prepared(other, _label(other), prep)[2].image, None
    except MammoError as error:
        return own.image, f"{READ_ALONE}; the other film: {_one_line(error)}"


def _ensemble_scores(members: tuple[_Loaded, ...], inputs: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The members' mean calibrated probabilities ``(B, C)`` and mean heatmap ``(B, h, w)``
    on the first member's grid, each member's map scaled to a peak of 1 first (a run alone:
    its own, unchanged)."""
    probabilities, maps = [], []
    for member in members:
        scores, grid = scores_and_maps(member.model, member.kind, inputs, len(inputs))
        probabilities.append(calibrated(scores, member.settings))  # as evaluation scores them
        maps.append(grid)
    if len(members) == 1:
        return probabilities[0], maps[0]
    return np.mean(probabilities, axis=0), mean_map(maps)


def _predict_batch(members: tuple[_Loaded, ...], files: Sequence[FilmSource],
                   finish: _Finish, side: int | None,
                   others: Sequence[FilmSource | None] | None = None
                   ) -> list[dict[str, Any]]:
    loaded = members[0]  # the members share classes and preprocessing (loaded_ensemble)
    entries: list[dict[str, Any]] = []
    # The films wait for the model as their display copies: a batch of full-field films
    # would otherwise hold 25 MB each.
    ready: list[tuple[int, FilmSource, str, DisplayFilm, Prepared]] = []
    other_images: list[np.ndarray] = []
    for number, source in enumerate(files):
        label = _label(source)
        entries.append({"file": label})
        try:
            # Upright, so the film shown under the heatmap is the one the model saw.
            film, look, prepared = _read_prepared(source, label, loaded.prep)
            entries[-1].update(film_notes(film))  # the DICOM gate and doubts, if any
            doubts = plausibility_warnings(film, look)
            other = None
            if others is not None:
                other, alone = _other_breast(others[number], prepared, loaded.prep)
                doubts = [*doubts, alone] if alone else doubts
            if doubts:
                entries[-1]["warnings"] = [*entries[-1].get("warnings", []), *doubts]
            ready.append((len(entries) - 1, source, film.source_format,
                          display_film(film.pixels, side), prepared))
            if other is not None:  # beside its film's place in ``ready``
                other_images.append(other)
        except MammoError as error:
            entries[-1]["error"] = _one_line(error)
    if not ready:
        return entries
    images = np.stack([prepared.image for *_, prepared in ready])
    inputs = (stack_pair(images, np.stack(other_images), films=True) if others is not None
              else images[..., None])
    probabilities, maps = _ensemble_scores(members, inputs.astype(np.float32))
    synthetic = any(member.synthetic for member in members)
    for row, (index, source, source_format, shown, prepared) in enumerate(ready):
        entry = entries[index]
        predicted = loaded.classes[int(probabilities[row].argmax())]
        scores = {name: float(p) for name, p in zip(loaded.classes, probabilities[row])}
        try:
            extra = finish(_Scored(source, entry["file"], source_format,
                                   heat_view(shown, maps[row], prepared.transform), predicted,
                                   scores))
        except MammoError as error:
            entry["error"] = _one_line(error)
            continue
        entry.update(label=predicted, probabilities=scores, **extra, synthetic=synthetic)
    return entries


def _label(source: FilmSource) -> str:
    if isinstance(source, tuple):
        name, _ = source
        return str(name)
    return str(source)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
