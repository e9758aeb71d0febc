"""Train one model into one run folder: the two published methods on one pipeline.

The path, in order: load the dataset; split it by patient (test held out, validation for
early stopping); preprocess the films; grow the training classes by augmentation (or weight
them); tune the encoder's top on lesion and normal-tissue patches (``core.train.patches``);
run the encoder, now frozen, once per image (through the feature cache when it was not
tuned); train the decoder (attention model) or head (transfer model) on those features;
unfreeze the encoder's top and fine-tune end to end; save the whole film -> prediction
model; with ``temperature_scaling``, fit one temperature on the validation films' probabilities
and keep it in the manifest, where evaluation and prediction read it. Both encoder phases are on by default, since together they measured best
(docs/RESULTS.md), and each can be turned off.

Every step reports to the run folder (``progress.jsonl``, ``history.csv``, the manifest), so
the dashboard can follow a job and a killed job can be resumed from its last epoch.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core import backend
from core.atomic import atomic_path
from core.data import load_dataset
from core.data.pairs import partner_positions, unpaired_note
from core.data.records import Dataset, FilmRecord
from core.errors import BadConfigError
from core.metrics.scores import classification_summary
from core.metrics.temperature import apply_temperature, fitted_temperature
from core.models.attention import attach_encoder
from core.models.backbones import Backbone, build_backbone, film_encoder
from core.models.cut import frozen_bottom
from core.models.features import cached_features, encoder_key, file_digest, weights_key
from core.models.kinds import ModelKind, model_kind
from core.models.pairs import fused_shape, head_of, pair_model
from core.models.transfer import unfreeze_top
from core.prep.arrays import load_arrays
from core.prep.augment import balance
from core.prep.splits import Splits, split_dataset
from core.runs.config import TrainConfig
from core.runs.folder import MODEL, WEIGHTS, Run, create_run, is_live, open_run
from core.runs.pace import peak_memory_gb
from core.runs.plan import Event, Step, training_plan
from core.train.batches import FeedEpochs, class_weights
from core.train.feed import (
    StreamedFilms,
    TrainingSet,
    encode_to_store,
    feed,
    streamed_training_set,
    streams,
)
from core.train.patches import pretrain_on_patches
from core.train.progress import (
    RunProgress,
    TrainingCancelled,
    cancel_requested,
    checkpoint_model_path,
    checkpoint_state,
)

log = logging.getLogger(__name__)

PACKAGES = ("keras", "tensorflow-cpu", "tensorflow", "jax", "numpy", "opencv-python-headless",
            "scikit-learn", "pydicom")


@dataclass
class Fitting:
    """What both training phases share: the run they report to, its settings and model
    kind, the films, their targets (``y_fit``, ``y_val``) and class weights, and the
    checkpoint a resumed run continues from (None for a fresh run)."""

    run: Run
    config: TrainConfig
    kind: ModelKind
    data: TrainingSet
    y_fit: Any
    y_val: Any
    weights: np.ndarray | None
    state: dict[str, Any] | None

    def resumes(self, phase: Step) -> bool:
        return bool(self.state and self.state["phase"] == phase)


# -- the run's description ----------------------------------------------------------------------
def _versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "backend": backend.name()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def _split_manifest(dataset: Dataset, splits: Splits) -> dict[str, Any]:
    """Film ids and content hashes per part: what a result was measured on, exactly."""
    return {part: [{"film": dataset.records[int(i)].film_id, "patient":
                    dataset.records[int(i)].patient_id,
                    "sha256": file_digest(dataset.records[int(i)].path)}
                   for i in getattr(splits, part)]
            for part in ("train", "val", "test")}


def _run_name(config: TrainConfig) -> str:
    model = model_kind(config.model).run_label(config)
    pairs = "-both-breasts" if config.both_breasts else ""
    return f"{config.dataset}-{model}{pairs}-{config.backbone}-{config.image_size}"


# -- data ---------------------------------------------------------------------------------------
def _training_set(config: TrainConfig, dataset: Dataset, splits: Splits, run: Run,
                  warnings: list[str]) -> TrainingSet:
    fit_records = [dataset.records[int(i)] for i in splits.train]
    val_records = [dataset.records[int(i)] for i in splits.val]
    n_classes = len(dataset.classes)
    if streams(config, len(fit_records) + len(val_records)):
        data = streamed_training_set(config, fit_records, val_records, n_classes, warnings,
                                     on_batch=lambda done, total: _listen(run))
    else:
        data = _arrays_in_memory(config, fit_records, val_records, n_classes, warnings)
    run.log(Event.DATA, train=int(data.counts_before.sum()), val=len(data.val_labels),
            fit_samples=len(data.fit_labels), counts_before=data.counts_before.tolist(),
            counts_after=data.counts_after.tolist(), streamed=data.streamed)
    return data


def _arrays_in_memory(config: TrainConfig, fit_records: list[FilmRecord],
                      val_records: list[FilmRecord],
                      n_classes: int, warnings: list[str]) -> TrainingSet:
    fit = load_arrays(fit_records, config.prep, warnings)
    val = load_arrays(val_records, config.prep, warnings)
    fit_partners = val_partners = None
    if config.both_breasts:
        fit_partners, val_partners = (partner_positions(fit.records),
                                      partner_positions(val.records))
        for part, partners in ((fit, fit_partners), (val, val_partners)):
            note = unpaired_note(part.records, partners)
            if note:
                log.info(note)
                warnings.append(note)
    if config.balance == "augment":
        grown = balance(fit.images, fit.labels, fit.lesions, n_classes,
                        target=config.augment_target, config=config.augment, seed=config.seed)
        images, labels, lesions = grown.images, grown.labels, grown.lesions
        before, after = grown.counts_before, grown.counts_after
        if fit_partners is not None:  # a copy is read beside its original's other breast
            fit_partners = fit_partners[grown.source_index]
    else:
        images, labels, lesions = fit.images, fit.labels, fit.lesions
        before = after = np.bincount(fit.labels, minlength=n_classes)
    return TrainingSet(images, labels, lesions, val.images, val.labels, val.lesions, before,
                       after, patch_films=lambda: (fit, val), fit_partners=fit_partners,
                       val_partners=val_partners)


def _listen(run: Run) -> None:
    """Stop a pass over films when the user cancels (a streamed pass takes minutes)."""
    if cancel_requested(run):
        raise TrainingCancelled(f"{run.path}: cancelled while reading films")


# -- models ---------------------------------------------------------------------------------------
def encoder_for(config: TrainConfig) -> tuple[Backbone, keras.Model, str]:
    """The frozen film encoder a config trains on, and its feature-cache key (content, not
    names: a changed weights file or preprocessing gets new features)."""
    backbone = build_backbone(config.backbone, config.image_size, config.weights,
                              feature_layer=config.feature_layer)
    weights_id = backbone.weights
    if Path(config.weights).is_file():
        weights_id = file_digest(config.weights)
    described = {"backbone": config.backbone, "layer": config.feature_layer,
                 "weights": weights_id,
                 "image_size": config.image_size, "prep": config.prep.to_dict(),
                 "keras": keras.__version__}
    if config.mixed_precision != "off":  # 16-bit features are other features (and float32
        described["precision"] = config.mixed_precision  # runs keep their keys as they were)
    key = encoder_key(described)
    return backbone, film_encoder(backbone), key


def _new_head(config: TrainConfig, kind: ModelKind, feature_shape: tuple[int, ...],
             n_classes: int) -> keras.Model:
    """The kind's head on the encoder's features; with ``both_breasts``, on the fused map
    of a film and its other breast (``core.models.pairs``)."""
    if config.both_breasts:
        feature_shape = fused_shape(feature_shape)
    return kind.build_head(config, feature_shape, n_classes)


def _callbacks(run: Run, config: TrainConfig, phase: Step, epochs: int,
               first_epoch: int) -> tuple[RunProgress, list[keras.callbacks.Callback]]:
    progress = RunProgress(run, phase, epochs, first_epoch=first_epoch)
    callbacks: list[keras.callbacks.Callback] = [progress]
    if config.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True))
    return progress, callbacks


# -- the pipeline ------------------------------------------------------------------------------------
#: Films per call when a film model only runs forward (encoding films, scoring the
#: validation films): at 512 px MobileNetV2's early activations take ~80 MB per film, so
#: a small batch bounds memory at no cost in speed (at the training batch of 32, scoring
#: was the peak of the default training, 4.2 GB).
ENCODE_BATCH = 8


def _features(run: Run, encode_model: keras.Model, images: np.ndarray | StreamedFilms,
              key: str | None, part: str, dtype: type[np.floating] = np.float16) -> Any:
    """The encoder's features of ``images``: an array, or for streamed films a
    ``FeatureStore`` on disk (keyed by the encoder's weights where ``key`` is None)."""
    started = time.time()

    def encode(batch: np.ndarray) -> np.ndarray:
        # predict_on_batch runs a compiled graph; an eager call of the same model at 512 px
        # held three times the memory (5.1 GB against 1.5 GB for 64 films, batch 8).
        return backend.forward(encode_model, batch[..., None].astype(np.float32))

    def report(done: int, total: int) -> None:
        run.log(Event.FEATURES, part=part, done=done, total=total,
                elapsed_s=round(time.time() - started, 2))
        if cancel_requested(run):  # the feature pass of a big set takes minutes: listen here too
            raise TrainingCancelled(f"{run.path}: cancelled while encoding films")

    if isinstance(images, StreamedFilms):
        features = encode_to_store(encode, images, key or weights_key(encode_model, dtype),
                                   ENCODE_BATCH, on_batch=report, dtype=dtype)
    else:
        features = cached_features(encode, images, key, batch_size=ENCODE_BATCH,
                                   on_batch=report, dtype=dtype)
    # Also when every film came from the cache, so a follower always sees the step end.
    run.log(Event.FEATURES, part=part, films=len(images), elapsed_s=round(time.time() - started, 2))
    return features


def _fit_phase(job: Fitting, model: keras.Model, phase: Step, epochs: int, batches: Any,
               val: Any, first_epoch: int) -> RunProgress:
    """``model.fit``, inside the run's distribution scope (``TrainConfig.devices``)."""
    progress, callbacks = _callbacks(job.run, job.config, phase, epochs, first_epoch)
    callbacks.insert(0, FeedEpochs(batches))  # each epoch's order is that epoch's
    with backend.distribution_scope(job.config.devices):
        model.fit(batches, validation_data=val, epochs=epochs, initial_epoch=first_epoch,
                  callbacks=callbacks, verbose=0, shuffle=False)  # the feed shuffles itself
    return progress


def _train_in(run: Run, config: TrainConfig, dataset: Dataset, splits: Splits,
              warnings: list[str]) -> dict[str, Any]:
    n_classes = len(dataset.classes)
    kind = model_kind(config.model)
    plan = training_plan(config)
    data = _training_set(config, dataset, splits, run, warnings)
    # Every model that trains is made under the run's distribution: the encoder too, since
    # fine-tuning trains its top (TensorFlow trains only variables made under its strategy).
    with backend.distribution_scope(config.devices):
        backbone, encoder, key = encoder_for(config)
    if Step.PATCHES in plan:
        outcome = pretrain_on_patches(run, config, backbone, list(dataset.classes),
                                      *data.patch_films(), warnings)
        if outcome == "cancelled":
            return {"cancelled": True}
        if outcome == "tuned":
            key = None  # a tuned encoder's features serve this run only: not worth caching
    feature_shape = tuple(int(d) for d in encoder.output.shape[1:])
    grid = feature_shape[:2]
    y_fit = kind.targets(config, data.fit_labels, data.fit_lesions, n_classes, grid)
    y_val = kind.targets(config, data.val_labels, data.val_lesions, n_classes, grid)
    weights = (class_weights(data.fit_labels, n_classes) if config.balance == "class_weights"
               else None)
    job = Fitting(run, config, kind, data, y_fit, y_val, weights, checkpoint_state(run))

    cancelled = False
    if job.resumes(Step.FINE_TUNE):  # the head was trained before the stop
        with backend.distribution_scope(config.devices):
            head = _new_head(config, kind, feature_shape, n_classes)
    else:
        head, cancelled = _train_head(job, encoder, key)
    name = f"{config.model}_{config.backbone}"
    model = (pair_model(encoder, head, name) if config.both_breasts
             else attach_encoder(encoder, head, name=name))

    if Step.FINE_TUNE in plan and not cancelled:
        cancelled = _fine_tune(job, model, encoder, head)
    if cancelled:
        return {"cancelled": True}
    _save(run, model)
    probabilities = _class_probabilities(kind, model, data.val_images, data.val_partners)
    scaling = {}
    if config.temperature_scaling:
        scaling["temperature"] = fitted_temperature(probabilities, data.val_labels)
        probabilities = apply_temperature(probabilities, scaling["temperature"]["temperature"])
    majority = int(data.counts_before.argmax())
    # On the probabilities evaluate and predict will give, scaled where the run is.
    val = classification_summary(data.val_labels, probabilities, dataset.classes, majority)
    return {"val": val, "counts_before": data.counts_before.tolist(),
            "counts_after": data.counts_after.tolist(), "feature_shape": list(feature_shape),
            "backbone_weights": backbone.weights, **scaling}


def _train_head(job: Fitting, encoder: keras.Model, key: str | None
                ) -> tuple[keras.Model, bool]:
    """Phase 1: the decoder (or head) on the frozen encoder's features, computed once per
    film; returns it and whether it was cancelled. With ``both_breasts`` the head trains
    behind ``pair_model`` on each film's features beside its other breast's; the head itself
    is returned either way."""
    run, config, data = job.run, job.config, job.data
    fit_features = _features(run, encoder, data.fit_images, key, "train")
    val_features = _features(run, encoder, data.val_images, key, "val")
    with backend.distribution_scope(config.devices):
        if job.resumes(Step.HEAD):
            trainer = _load_checkpoint(run)
            head = head_of(trainer) if config.both_breasts else trainer
            first_epoch = int((job.state or {})["epoch"])
            run.log(Event.RESUME, phase=Step.HEAD, epoch=first_epoch)
        else:
            head = _new_head(config, job.kind, tuple(fit_features.shape[1:]),
                            len(data.counts_before))
            trainer = (pair_model(None, head, name=f"{head.name}_pairs") if config.both_breasts
                       else head)
            job.kind.compile(trainer, config, config.learning_rate)
            first_epoch = 0
    replicas = config.devices
    batches = feed(fit_features, job.y_fit, config.batch_size, job.weights, config.seed,
                   replicas=replicas, partners=data.fit_partners)
    val_batches = feed(val_features, job.y_val, config.batch_size, replicas=replicas,
                       partners=data.val_partners)
    progress = _fit_phase(job, trainer, Step.HEAD, config.epochs, batches, val_batches,
                          first_epoch)
    return head, progress.cancelled


def _fine_tune(job: Fitting, model: keras.Model, encoder: keras.Model,
               head: keras.Model) -> bool:
    """Phase 2: the encoder's top layers trainable, end to end at a lower learning rate.

    The frozen layers below them are run once per film (``frozen_bottom``) and only the top
    and the head are trained, on what the bottom gave: the same training as on the films,
    without recomputing the bottom each epoch. An encoder that cannot be cut below its
    trainable layers is fine-tuned on the films. Trains ``model``'s own layers, in place;
    returns whether it was cancelled.
    """
    run, config, data = job.run, job.config, job.data
    unfrozen = unfreeze_top(encoder, n_layers=config.fine_tune_layers)
    resuming = job.resumes(Step.FINE_TUNE)
    if not resuming:
        run.log(Event.UNFREEZE, layers=unfrozen)
    cut = frozen_bottom(encoder)
    trainer = model
    first_epoch = 0
    with backend.distribution_scope(config.devices):
        if cut is not None:
            bottom, top = cut
            if config.both_breasts:
                trainer = pair_model(top, head, name=f"{model.name}_top")
            else:
                activations = keras.Input(shape=tuple(bottom.outputs[0].shape[1:]),
                                          name="activations")
                trainer = keras.Model(activations, head(top(activations)),
                                      name=f"{model.name}_top")
        fitted = trainer
        if resuming:
            fitted = _load_checkpoint(run)
            first_epoch = int((job.state or {})["epoch"])
            run.log(Event.RESUME, phase=Step.FINE_TUNE, epoch=first_epoch)
            if fitted.inputs[0].shape[1:] == model.inputs[0].shape[1:]:
                trainer, cut = model, None  # a checkpoint of a version that trained on films
        else:
            job.kind.compile(trainer, config,
                             config.learning_rate * config.fine_tune_lr_scale)
    if cut is None:
        fit_inputs, val_inputs = data.fit_images, data.val_images
    else:
        fit_inputs = _features(run, cut[0], data.fit_images, None, "train", np.float32)
        val_inputs = _features(run, cut[0], data.val_images, None, "val", np.float32)
    films = cut is None
    batches = feed(fit_inputs, job.y_fit, config.batch_size, job.weights, config.seed,
                   films=films, replicas=config.devices, partners=data.fit_partners)
    val = feed(val_inputs, job.y_val, config.batch_size, films=films, replicas=config.devices,
               partners=data.val_partners)
    progress = _fit_phase(job, fitted, Step.FINE_TUNE, config.fine_tune_epochs, batches, val,
                          first_epoch)
    if fitted is not trainer:  # the resumed checkpoint's weights go into the model's layers
        trainer.set_weights(fitted.get_weights())
    return progress.cancelled


def _class_probabilities(kind: ModelKind, model: keras.Model,
                         images: np.ndarray | StreamedFilms,
                         partners: np.ndarray | None = None) -> np.ndarray:
    output = model.predict(feed(images, np.zeros(len(images)), ENCODE_BATCH, films=True,
                                partners=partners), verbose=0)
    return kind.probabilities(output)


def _save(run: Run, model: keras.Model) -> None:
    with atomic_path(run.path / MODEL) as tmp:
        model.save(tmp)
    with atomic_path(run.path / WEIGHTS) as tmp:
        model.save_weights(tmp)


def _execute(run: Run, config: TrainConfig, dataset: Dataset, splits: Splits) -> Run:
    warnings = list(dataset.warnings)
    started = time.time()
    try:
        result = _train_in(run, config, dataset, splits, warnings)
    except TrainingCancelled:
        result = {"cancelled": True}
    except KeyboardInterrupt:
        run.set_status("cancelled", warnings=warnings)
        raise
    except BaseException as error:
        run.set_status("failed", error=f"{type(error).__name__}: {error}", warnings=warnings)
        raise
    seconds = round(time.time() - started, 1)
    # The pace a later run's estimate is scaled from (core.runs.pace): time and peak memory.
    measured = {"seconds": seconds, "peak_memory_gb": peak_memory_gb()}
    if result.pop("cancelled", False):
        run.set_status("cancelled", warnings=warnings, **measured)
    else:
        run.set_status("done", warnings=warnings, **measured, **result)
    run.log(Event.END, status=run.manifest["status"], seconds=seconds)
    return run


def _prepare(config: TrainConfig) -> tuple[Dataset, Splits, dict[str, Any]]:
    """The dataset and its split, with the backend set up for ``config``; returns also what
    the run trains on (the devices and the dtype policy), for the manifest."""
    processes = backend.join_cluster()
    devices = ["default"]
    if config.devices > 1:  # first: TensorFlow splits a CPU only before it starts
        devices = backend.use_devices(config.devices)
    backend.seed_everything(config.seed)
    policy = backend.set_mixed_precision(config.mixed_precision)
    dataset = load_dataset(config.dataset, config.root, **config.dataset_options)
    splits = split_dataset(dataset, config.test_size, config.val_fraction, config.seed,
                           folds=config.folds, fold=config.fold,
                           by_patient=config.split_by_patient)
    return dataset, splits, {"devices": devices, "processes": processes, "policy": policy}


def with_absolute_root(config: TrainConfig) -> TrainConfig:
    """``config`` with its dataset folder made absolute, as the manifest must keep it: a run
    is evaluated and resumed from wherever its user stands, and a folder typed as
    ``../shared/data/mias`` means another folder there. ``abspath`` normalises ``..`` without
    following links, so the folder stays the one that was typed."""
    if not config.root or os.path.isabs(config.root):
        return config
    return replace(config, root=os.path.abspath(config.root))


def train(config: TrainConfig, out_root: Path | None = None,
          on_created: Callable[[Run], None] | None = None) -> Run:
    """Train ``config`` into a new run folder under ``out_root`` and return the run.

    ``on_created`` hears of the folder as soon as it exists, long before training ends: how
    a job supervisor learns which run to follow and, if it must, to cancel or mark failed.
    """
    config = with_absolute_root(config)
    dataset, splits, hardware = _prepare(config)
    manifest = {
        "config": config.to_dict(),
        "dataset": {"name": dataset.name, "root": str(dataset.root),
                    "synthetic": dataset.synthetic, "classes": list(dataset.classes),
                    "films": len(dataset)},
        "split": _split_manifest(dataset, splits),
        "versions": _versions(),
        "hardware": hardware,
        "seed": config.seed,
        "pid": os.getpid(),
    }
    run = create_run(_run_name(config), manifest, out_root)
    log.info("training into %s", run.path)
    if on_created is not None:
        on_created(run)
    return _execute(run, config, dataset, splits)


def _load_checkpoint(run: Run) -> keras.Model:
    """The last epoch's model, loaded safely (no code from the file runs), or one error."""
    path = checkpoint_model_path(run)
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 (Keras raises many types for a bad file)
        raise BadConfigError(f"{path}: unreadable checkpoint ({type(error).__name__}); start "
                             "a new run instead") from None


def resume(run_path: str | Path) -> Run:
    """Continue a run that was killed or interrupted, from its last completed epoch."""
    run = open_run(run_path)
    if is_live(run):
        raise BadConfigError(f"{run.path}: still training (process {run.manifest.get('pid')}); "
                             "resume it only once it has stopped")
    manifest = run.manifest
    config = TrainConfig.from_manifest(manifest["config"])
    dataset, splits, _ = _prepare(config)
    if _split_manifest(dataset, splits) != manifest["split"]:
        raise BadConfigError(f"{run.path}: the dataset changed since this run started "
                             "(other films or other content); start a new run instead")
    run.set_status("running", error=None, pid=os.getpid())
    run.log(Event.RESUME_BEGIN, checkpoint=checkpoint_state(run))
    return _execute(run, config, dataset, splits)
