"""A run's figures on films it never saw: its own held-out test split, by default.

The model is loaded from the run folder in Keras's safe mode (no code from the file runs:
no Lambda layer, no pickle, only registered layers) and fed films prepared exactly as in
training, from the preprocessing config in the run's manifest. A run folder may have been
copied from anywhere, so its manifest and model are checked against each other first, and
every fault (a damaged or foreign file, a model of another input size or class count) is
one ``BadConfigError`` naming the file. The test films are the ones the manifest lists, checked against their hashes, so
a figure always refers to the films it claims to.

With a dataset and a root, every film of that dataset is scored instead (an external test
set); its class list must be the run's, class for class, or the figures would compare
unrelated labels. Beside the classification summary come the clinical pairs' AUCs, the
pointing game of the model's heatmaps against located lesions (attention maps, or Grad-CAM
for a transfer model), and patient-grouped bootstrap intervals.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

# Saved models name the project's own layers and optimizers; loading finds them only once
# these modules have registered them (a fresh `predict` process has imported nothing else).
import core.models.backbones
import core.models.layers
import core.models.optimizers  # noqa: F401
from core.atomic import safe_stem
from core.data import load_dataset
from core.data.archive import Limits
from core.data.pairs import other_breast_by_film
from core.data.records import Dataset, FilmRecord
from core.errors import BadConfigError, MammoError
from core.evaluate.heatmaps import (
    display_film,
    encoder_and_head,
    heat_view,
    scores_and_maps,
    to_film,
)
from core.evaluate.localisation import localisation_scores
from core.films import read_film
from core.geometry import Transform
from core.metrics.calibration import calibration
from core.metrics.operating import operating_points
from core.metrics.per_class import per_class_intervals
from core.metrics.positive import screening_question
from core.metrics.scores import (
    add_confidence_intervals,
    classification_summary,
    clinical_pairs,
    one_vs_rest,
    patient_level,
)
from core.metrics.temperature import apply_temperature
from core.models.features import file_digest
from core.models.kinds import model_kind, named_outputs
from core.models.pairs import pair_parts, stack_pair
from core.prep.arrays import film_chunks, other_breast_images
from core.prep.polarity import mirror
from core.prep.preprocess import breast_mask, look_at
from core.render.film_view import DISPLAY_SIDE, FilmView, caption, overlay_picture
from core.render.overlay import save_png
from core.runs.config import TrainConfig
from core.runs.folder import MANIFEST, MODEL, Run
from core.settings import EVALUATE_HOLDS_BYTES

PREDICT_BATCH = 16
#: The most a ``.keras`` file's JSON members (``config.json``, ``metadata.json``) may expand
#: to. Keras parses them whole; the project's largest model configs are a few hundred KB.
MAX_MODEL_JSON_BYTES = 8 * 1024**2
#: Bootstrap resamples of the confidence intervals (patients drawn with replacement).
BOOTSTRAP_RESAMPLES = 1000
#: Decimals of each film's probabilities in an evaluation (``films``): finer than any figure
#: computed from them, and an evaluation of 5,000 films stays a few megabytes.
FILM_DIGITS = 5
#: Films drawn in an evaluation's gallery (the first paper's figure 11 shows a dozen).
GALLERY_FILMS = 12


@dataclass(frozen=True)
class RunSettings:
    """What a run's manifest says its model needs and means. ``temperature``: the one its
    probabilities are divided by (``core.metrics.temperature``), None where it fitted none."""

    config: TrainConfig
    classes: tuple[str, ...]
    synthetic: bool
    temperature: float | None = None


def run_settings(run: Run) -> RunSettings:
    """The run's training config, class names and SYNTHETIC flag, checked: any fault is one
    error naming the manifest rather than a KeyError deep inside an evaluation."""
    file = run.path / MANIFEST
    manifest = run.manifest
    try:
        config = TrainConfig.from_manifest(manifest["config"])
        classes, synthetic = manifest["dataset"]["classes"], manifest["dataset"]["synthetic"]
    except KeyError as error:
        raise BadConfigError(f"{file}: no {error} (not a finished run)") from None
    except MammoError as error:
        raise BadConfigError(f"{file}: {error}") from None
    except (TypeError, ValueError, AttributeError) as error:
        raise BadConfigError(f"{file}: not a run manifest ({type(error).__name__}: "
                             f"{error})") from None
    if (not isinstance(classes, list) or len(classes) < 2 or len(set(classes)) != len(classes)
            or not all(isinstance(name, str) for name in classes)):
        raise BadConfigError(f"{file}: dataset.classes must list two or more distinct names")
    return RunSettings(config, tuple(classes), bool(synthetic), _temperature(manifest, file))


def _temperature(manifest: dict[str, Any], file: Path) -> float | None:
    """The fitted temperature of a run trained with ``temperature_scaling``, checked: a
    copied manifest may hold anything there, and a zero or negative one would turn every
    probability into nonsense without a word."""
    fit = manifest.get("temperature")
    if fit is None:
        return None
    value = fit.get("temperature") if isinstance(fit, dict) else None
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value) or value <= 0):
        raise BadConfigError(f"{file}: temperature.temperature must be a positive number, got "
                             f"{value!r}")
    return float(value)


def calibrated(probabilities: np.ndarray, settings: RunSettings) -> np.ndarray:
    """The probabilities the run stands by: divided by its temperature where it has one."""
    if settings.temperature is None:
        return probabilities
    return apply_temperature(probabilities, settings.temperature)


def load_model(run: Run) -> keras.Model:
    """The run's model, in Keras's safe mode, checked against the manifest (``run_settings``):
    it takes the films the run prepares and answers with one score per class."""
    settings = run_settings(run)
    path = run.path / MODEL
    if not path.is_file():
        raise BadConfigError(f"{run.path}: the run has no trained model (status "
                             f"{run.manifest.get('status')!r})")
    if not zipfile.is_zipfile(path):
        raise BadConfigError(f"{path}: not a Keras model (a .keras file is a zip archive; "
                             "this one is truncated, damaged or another kind of file)")
    _check_archive(path)
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for foreign files
        raise BadConfigError(f"{path}: not a model this program can load "
                             f"({type(error).__name__}: {_first_line(error)})") from None
    _check_fits(model, settings, path)
    return model


def _check_archive(path: Path) -> None:
    """Judge a ``.keras`` zip by its directory before Keras expands anything: Keras reads
    ``config.json`` whole and parses it (a 307 KB file whose config expands to 300 MB once
    cost 1.43 GB), so the JSON members are held to ``MAX_MODEL_JSON_BYTES``, and every
    member, and the whole, to the upload archives' limits (``core.data.archive.Limits``:
    ``MAMMO_MAX_ARCHIVE_*``). zipfile never yields more than a member's stated size, so the
    stated sizes bound what Keras can be handed."""
    limits = Limits.from_env()
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise BadConfigError(f"{path}: not a Keras model ({_first_line(error)})") from None
    if len(members) > limits.max_members:
        raise BadConfigError(f"{path}: a zip of {len(members):,} members, not a Keras model")
    for member in members:
        _check_member(path, member, limits)
    expanded = sum(member.file_size for member in members)
    ceiling = min(limits.max_bytes, max(limits.ratio_floor,
                                        int(limits.max_ratio * path.stat().st_size)))
    if expanded > ceiling:
        raise BadConfigError(f"{path}: expands to {expanded:,} bytes, more than {ceiling:,} "
                             f"(refused as a likely zip bomb; MAMMO_MAX_ARCHIVE_BYTES and "
                             f"MAMMO_MAX_ARCHIVE_RATIO set the limits)")


def _check_member(path: Path, member: zipfile.ZipInfo, limits: Limits) -> None:
    """One member of a ``.keras`` zip: a JSON member small, any member not a bomb."""
    if member.filename.endswith(".json") and member.file_size > MAX_MODEL_JSON_BYTES:
        raise BadConfigError(f"{path}: its {member.filename} expands to {member.file_size:,} "
                             f"bytes (a model's is at most {MAX_MODEL_JSON_BYTES:,})")
    if (member.file_size > limits.ratio_floor
            and member.file_size > limits.max_ratio * max(member.compress_size, 1)):
        raise BadConfigError(f"{path}: its {member.filename} expands more than "
                             f"{limits.max_ratio:g} times its compressed size (refused as a "
                             "likely zip bomb)")


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "no message"


def _check_fits(model: keras.Model, settings: RunSettings, path: Path) -> None:
    """Refuse a model that cannot be the run's: a model file swapped for another run's, or
    for something else entirely, must not be scored against this run's class names."""
    size = settings.config.prep.size
    pairs = settings.config.both_breasts
    try:  # a model never called (a Sequential without an Input) has neither
        inputs, outputs = list(model.inputs), named_outputs(model)
    except (AttributeError, ValueError) as error:
        raise BadConfigError(f"{path}: the model has no defined inputs and outputs "
                             f"({_first_line(error)})") from None
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != (size, size, 2 if pairs else 1):
        shapes = [tuple(tensor.shape[1:]) for tensor in inputs]
        films = "pairs of grey films (a film and its other breast)" if pairs else "grey films"
        raise BadConfigError(f"{path}: the model takes {', '.join(map(str, shapes))}, but the "
                             f"run prepares {size} x {size} {films}")
    model_kind(settings.config.model).check_outputs(outputs, len(settings.classes), str(path))
    try:  # scoring and heatmaps read the encoder's map: refuse here, not once per film
        pair_parts(model) if pairs else encoder_and_head(model)
    except BadConfigError as error:
        raise BadConfigError(f"{path}: {error}") from None


def _split_part(run: Run, manifest: dict[str, Any], part: str) -> dict[str, str]:
    """Film id -> SHA-256 of one part of the run's recorded split."""
    try:
        return {str(entry["film"]): str(entry["sha256"]) for entry in manifest["split"][part]}
    except (KeyError, TypeError) as error:
        raise BadConfigError(f"{run.path / MANIFEST}: no usable {part} split ({error!r})") \
            from None


def _test_records(run: Run, manifest: dict[str, Any], dataset: Dataset) -> list[Any]:
    wanted = _split_part(run, manifest, "test")
    records = [r for r in dataset.records if r.film_id in wanted]
    if len(records) != len(wanted):
        raise BadConfigError(f"{run.path}: {len(wanted) - len(records)} test film(s) of this "
                             f"run are not in {dataset.root}")
    changed = [r.film_id for r in records if file_digest(r.path) != wanted[r.film_id]]
    if changed:
        raise BadConfigError(f"{run.path}: test films changed since training: "
                             f"{', '.join(changed[:5])}")
    return records


def evaluate_run(run: Run, dataset: str | None = None, root: str | None = None,
                 dataset_options: dict[str, Any] | None = None,
                 gallery_dir: str | Path | None = None) -> dict[str, Any]:
    """A run's figures: on its own test split (with the training split's majority class as
    the always-majority baseline) or, with ``dataset`` and ``root``, on every film of that
    dataset (whose own majority class is then the baseline: its training films may not be
    at hand).

    The ``classification_summary`` keys, plus ``auc_malignant`` (MIAS: benign vs malignant
    among films with a severity, None without; a two-class dataset with a positive class:
    positive vs negative over every film), ``patient_level`` (two-class datasets with a
    positive class, else None: each woman scored by her highest film, ``patient_level``)
    with its ``patient_auc`` and ``patient_sensitivity_at_90_specificity`` as headline
    figures, ``pointing_game`` (share of films with a located
    lesion whose heatmap maximum falls on it; None when no film has one), ``localisation``
    (``localisation_scores`` with chance rates), ``confidence_intervals`` (patient-grouped
    bootstrap intervals), ``heatmap`` (which kind was scored), ``temperature`` (the one the
    probabilities were divided by, None without), ``operating_points`` and ``calibration``
    of the screening question's score (cancer, or abnormal: ``core.metrics.positive``; None
    where the classes have neither), ``per_class_intervals`` (each class's F1 with its
    patient interval), ``source``, ``synthetic``,
    ``curves`` (ROC points of the clinical pairs and of each class against the rest, for
    plots) and ``films`` (per film: actual and predicted class).

    With ``gallery_dir``, up to ``GALLERY_FILMS`` films (spread over the classes) are also
    drawn there as overlays with their lesion circles and predicted vs actual class, listed
    under ``gallery``: the report's figure of films (``overlay``: its PNG) and the Evaluate
    page's (``view``: the film view it is drawn from, redrawn there at any contrast).
    """
    manifest = run.manifest
    settings = run_settings(run)
    config, classes = settings.config, settings.classes
    if dataset is None:
        data = load_dataset(config.dataset, config.root, **config.dataset_options)
        records = _test_records(run, manifest, data)
        train_ids = set(_split_part(run, manifest, "train"))
        train_labels = [r.class_id for r in data.records if r.film_id in train_ids]
        majority: int | None = int(np.bincount(train_labels,
                                               minlength=len(data.classes)).argmax())
        source = {"kind": "test split", "dataset": config.dataset, "root": str(config.root)}
    else:
        if root is None:
            raise BadConfigError("an external dataset needs its root folder (--root)")
        data = load_dataset(dataset, root, **(dataset_options or {}))
        records, majority = list(data.records), None
        source = {"kind": "external", "dataset": dataset, "root": str(root)}
    if tuple(data.classes) != classes:
        raise BadConfigError(f"{data.root}: classes {list(data.classes)} differ from the "
                             f"run's {list(classes)}: a run of another class set cannot be "
                             "scored on it")
    left_out: list[str] = []
    model = load_model(run)
    try:
        scored = score_films(model, config, records, left_out)
    except BadConfigError as error:  # a model of this shape but not of our making
        raise BadConfigError(f"{run.path / MODEL}: {error}") from None
    probabilities, grid_maps = calibrated(scored.probabilities, settings), scored.grid_maps
    kind = model_kind(config.model).heatmap
    summary = classification_summary(scored.labels, probabilities, data.classes, majority)
    severities = [r.severity for r in scored.records]
    pairs = clinical_pairs(scored.labels, probabilities, data.classes,
                           severities=severities if any(severities) else None)
    summary["auc_malignant"] = pairs["malignant"]["auc"] if pairs["malignant"] else None
    summary["malignancy_score"] = pairs["malignant"]["score"] if pairs["malignant"] else None
    patients = [r.patient_id for r in scored.records]
    summary.update(_patient_figures(scored.labels, probabilities, data.classes, patients))
    localisation = _localisation(scored, grid_maps)
    summary["pointing_game"] = localisation["overall"]["pointing_game"]
    summary["localisation"] = localisation
    summary["heatmap"] = kind
    summary["temperature"] = settings.temperature
    summary.update(inspection_figures(scored.labels, probabilities, data.classes, patients))
    summary["source"] = source
    summary["synthetic"] = bool(data.synthetic)
    # What the loader skipped (films cut short, bad rows) and films that failed to read later.
    summary["warnings"] = [*data.warnings, *left_out]
    ovr = one_vs_rest(scored.labels, probabilities, data.classes)
    summary["curves"] = {
        "abnormal": pairs["abnormal"]["roc"] if pairs["abnormal"] else None,
        # with the pair's own class names, so the curve is labelled "cancer vs no_cancer"
        "malignant": {**pairs["malignant"]["roc"], "positive": pairs["malignant"]["positive"],
                      "negative": pairs["malignant"]["negative"]}
                     if pairs["malignant"] else None,
        "per_class": {name: entry["roc"] if entry else None
                      for name, entry in ovr["per_class"].items()}}
    predicted = probabilities.argmax(axis=1)
    # Each film's probabilities are kept so that models scored on the same films can be
    # combined afterwards (an ensemble of runs of one fold) without scoring anything again.
    summary["films"] = [{"film": r.film_id, "patient": r.patient_id, "actual": r.label,
                         "predicted": data.classes[int(p)],
                         "probabilities": dict(zip(data.classes,
                                                   np.round(row, FILM_DIGITS).tolist()))}
                        for r, p, row in zip(scored.records, predicted, probabilities)]
    if gallery_dir is not None:
        summary["gallery"] = _gallery(scored, grid_maps, predicted, data.classes,
                                      Path(gallery_dir))
    return add_confidence_intervals(summary, scored.labels, probabilities, groups=patients,
                                    n=BOOTSTRAP_RESAMPLES)


def _patient_figures(labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str],
                     patients: Sequence[str]) -> dict[str, Any]:
    """``patient_level`` and, lifted out of it, the two patient figures under the keys the
    headline registry reads (it reads top-level keys only); all None where they do not
    apply, so a seven-class evaluation leaves them out everywhere."""
    patient = patient_level(labels, probabilities, classes, patients)
    return {"patient_level": patient,
            "patient_auc": patient["auc"] if patient else None,
            "patient_sensitivity_at_90_specificity":
                patient["sensitivity_at_90_specificity"] if patient else None}


def inspection_figures(labels: Any, probabilities: Any, classes: Sequence[str],
                       patients: Sequence[str], n_resamples: int = BOOTSTRAP_RESAMPLES
                       ) -> dict[str, Any]:
    """What the Evaluate page inspects beyond the headline figures: the screening question's
    ``operating_points`` and ``calibration`` (None where the class set has no such question,
    ``core.metrics.positive``), and each class's F1 interval (``per_class_intervals``), all
    with the patient bootstrap of the headline intervals."""
    question = screening_question(classes)
    inspected: dict[str, Any] = {"operating_points": None, "calibration": None}
    if question is not None:
        truth, score = question.truth(labels), question.scores(probabilities)
        inspected["operating_points"] = operating_points(truth, score, question)
        inspected["calibration"] = calibration(truth, score, question, groups=patients,
                                               n_resamples=n_resamples)
    inspected["per_class_intervals"] = per_class_intervals(labels, probabilities, classes,
                                                           groups=patients, n=n_resamples)
    return inspected


@dataclass
class ScoredFilms:
    """What evaluation keeps of the films it scored, in order: everything but their pixels
    (``score_films``)."""

    records: list[FilmRecord]
    transforms: list[Transform]  # original film grid -> model-input grid
    labels: np.ndarray  # int64 class ids
    probabilities: np.ndarray  # (N, C), before any temperature
    grid_maps: np.ndarray  # (N, h, w) heatmaps on the encoder's grid
    #: Positions of the films found stored inverted and mirrored before the model saw them
    #: (``FilmArrays.inverted``): shown mirrored, as the model saw them.
    inverted: frozenset[int] = frozenset()


def score_films(model: keras.Model, config: TrainConfig, records: list[FilmRecord],
                warnings: list[str]) -> ScoredFilms:
    """Class probabilities and one grid heatmap per film, read and scored a part at a time
    (``core.prep.arrays.film_chunks``): at most ``EVALUATE_HOLDS_BYTES`` of films at the
    input size are held at once, and each batch becomes float32 only as the model takes it,
    so scoring an archive needs the memory of one part, whatever the number of films.
    Films that cannot be read are left out with a warning in ``warnings``."""
    kind = model_kind(config.model)
    chunk = max(PREDICT_BATCH, EVALUATE_HOLDS_BYTES // config.image_size ** 2)
    kept: list[FilmRecord] = []
    transforms: list[Transform] = []
    labels, probabilities, maps = [], [], []
    inverted: set[int] = set()
    alone = 0
    others = other_breast_by_film(records) if config.both_breasts else {}
    for part in film_chunks(records, config.prep, chunk, warnings):
        films = part.images[..., None]
        if config.both_breasts:  # each film beside its other breast, as it was trained
            other_films, unpaired = other_breast_images(part, others, config.prep)
            films, alone = stack_pair(part.images, other_films, films=True), alone + unpaired
        scores, grid = scores_and_maps(model, kind, films, PREDICT_BATCH)
        inverted.update(len(kept) + position for position in part.inverted)
        kept.extend(part.records)
        transforms.extend(part.transforms)
        labels.append(part.labels)
        probabilities.append(scores)
        maps.append(grid)
    if alone:
        warnings.append(f"{alone} film(s) were read without their other breast (none in the "
                        "scored films, or unreadable), each against itself")
    return ScoredFilms(kept, transforms, np.concatenate(labels), np.concatenate(probabilities),
                       np.concatenate(maps), frozenset(inverted))


def _localisation(scored: ScoredFilms, grid_maps: Sequence[np.ndarray]) -> dict[str, Any]:
    """Pointing game and overlap on the original films, with the chance rate from each
    film's breast mask; only films with a located lesion are mapped back and re-read."""
    maps: list[np.ndarray | None] = []
    masks: list[np.ndarray | None] = []
    for record, transform, grid_map in zip(scored.records, scored.transforms, grid_maps):
        if not record.located_lesions:
            maps.append(None)
            masks.append(None)
            continue
        maps.append(to_film(grid_map, transform))
        try:
            # One shrink: the polarity check and the segmentation share it (look_at).
            masks.append(breast_mask(look_at(read_film(record.path).pixels)))
        except MammoError as error:
            raise BadConfigError(f"{record.path}: cannot be re-read for localisation "
                                 f"({error})") from None
    return localisation_scores(maps, scored.records, breast_masks=masks)


def _gallery(scored: ScoredFilms, grid_maps: Sequence[np.ndarray], predicted: np.ndarray,
             classes: Sequence[str], out: Path) -> list[dict[str, Any]]:
    """Overlays of up to ``GALLERY_FILMS`` films, taken round-robin over the actual classes
    so a rare class is shown too, each with lesion circles and predicted vs actual class."""
    by_class: dict[str, list[int]] = {}
    for index, record in enumerate(scored.records):
        by_class.setdefault(record.label, []).append(index)
    queues = [by_class[name] for name in classes if name in by_class]
    chosen: list[int] = []
    while len(chosen) < GALLERY_FILMS and any(queues):
        for queue in queues:
            if queue and len(chosen) < GALLERY_FILMS:
                chosen.append(queue.pop(0))
    entries = []
    for index in sorted(chosen):
        record = scored.records[index]
        try:
            pixels = read_film(record.path).pixels
        except MammoError as error:
            raise BadConfigError(f"{record.path}: cannot be re-read for the gallery "
                                 f"({error})") from None
        if index in scored.inverted:  # as preprocessing found it, so as the model saw it
            pixels = mirror(pixels)
        label = classes[int(predicted[index])]
        name = safe_stem(record.film_id)
        # Drawn at the display size: a full-field film is shrunk once, not drawn in full.
        view = heat_view(display_film(pixels, DISPLAY_SIDE), grid_maps[index],
                         scored.transforms[index], record.lesions)
        # The PNG is drawn from the view as stored, so the page's redraw at the same
        # settings, its download and the report are the same picture.
        stored = FilmView.load(view.save(out / f"{name}.npz"))
        path = save_png(overlay_picture(stored, caption(label, record.label)),
                        out / f"{name}.png")
        entries.append({"film": record.film_id, "actual": record.label, "predicted": label,
                        "view": str(out / f"{name}.npz"),
                        "overlay": str(path)})
    return entries
