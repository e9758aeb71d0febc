"""Patch-level pretraining: teach the encoder's top what a lesion looks like before it reads
whole films.

A frozen ImageNet encoder barely tells lesion cells from normal tissue (a linear probe of
its cells reaches AUC 0.57 on MIAS, ``bench/probe_patches.py``), and every decoder on top
of it inherits that. Whole-film labels are too weak to retrain it: one label per 512 x 512
film. Patches centred on the located lesions, and patches of normal tissue, give the encoder
a label where the evidence is (``core.prep.patches``).

The encoder is copied into a network built for the patch size (the layers are convolutional,
so the weights fit any input), its top ``patch_layers`` weighted layers are trained with a
small classifier (global average pool, dropout, softmax over the dataset's classes) on the
training films' patches, early-stopped on the validation films' patches, and the tuned
weights are copied back into the film encoder, which stays frozen for the decoder. The
tuned weights are saved in the run folder (``encoder.weights.h5``), so a resumed run does
not pretrain again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import keras
import numpy as np

from core.atomic import atomic_path
from core.data.records import NORMAL_CLASS
from core.errors import BadConfigError
from core.models.backbones import Backbone, build_backbone, film_encoder
from core.models.optimizers import make_optimizer
from core.models.transfer import unfreeze_top
from core.prep.arrays import FilmArrays
from core.prep.patches import Patches, lesion_patches
from core.runs.config import TrainConfig
from core.runs.folder import Run
from core.runs.plan import Event, Step
from core.train.batches import Batches, class_weights
from core.train.progress import RunProgress

ENCODER_WEIGHTS = "encoder.weights.h5"
#: What pretraining did: tuned the encoder (or loaded a resumed run's tuning), found nothing
#: to learn from, or was cancelled by the user.
PatchOutcome = Literal["tuned", "skipped", "cancelled"]
#: Normal-tissue patches per film: with 16 per lesion, about as many as lesion patches.
NORMAL_PER_FILM = 6


def tuned_encoder_file(run: Run) -> Path:
    return run.path / ENCODER_WEIGHTS


def _normal_label(config: TrainConfig, classes: list[str]) -> int | None:
    """The class id normal-tissue patches carry. Lesion-vs-normal labels need no normal class
    in the dataset (benign vs malignant films): tissue clear of every lesion is normal, so it
    gets an id of its own past the dataset's classes."""
    if NORMAL_CLASS in classes:
        return classes.index(NORMAL_CLASS)
    return len(classes) if config.patch_labels == "lesion" else None


def _patches(config: TrainConfig, films: FilmArrays, classes: list[str], seed: int) -> Patches:
    return lesion_patches(films.images, films.labels, films.lesions,
                          _normal_label(config, classes), config.patch_size,
                          per_lesion=config.patches_per_lesion, normal_per_film=NORMAL_PER_FILM,
                          seed=seed)


def _patch_classifier(config: TrainConfig, backbone: Backbone,
                      n_classes: int) -> tuple[keras.Model, keras.Model]:
    """The film encoder's network at the patch size, with its weights, and a small head;
    returns the classifier and the network inside it that is being tuned."""
    small = build_backbone(config.backbone, config.patch_size, "none",
                           feature_layer=config.feature_layer)
    small.model.set_weights(backbone.model.get_weights())
    encoder = film_encoder(small)
    unfreeze_top(encoder, n_layers=config.patch_layers)
    pooled = keras.layers.GlobalAveragePooling2D(name="patch_pool")(encoder.output)
    pooled = keras.layers.Dropout(config.dropout, name="patch_dropout")(pooled)
    probs = keras.layers.Dense(n_classes, activation="softmax", name="patch_class",
                               dtype="float32")(pooled)  # float32 whatever the policy
    model = keras.Model(encoder.input, probs, name="patch_classifier")
    optimizer = make_optimizer(config.optimizer, config.learning_rate * config.fine_tune_lr_scale,
                               momentum=config.momentum)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)
    return model, small.model


def pretrain_on_patches(run: Run, config: TrainConfig, backbone: Backbone, classes: list[str],
                        fit: FilmArrays, val: FilmArrays, warnings: list[str]) -> PatchOutcome:
    """Tune ``backbone.model`` in place on lesion and normal patches.

    A run folder that already holds tuned weights (a resumed run) loads them instead. Films
    without a single located lesion (class folders, CBIS crops) leave nothing to learn from:
    the encoder stays as it was and ``warnings`` says so, because patch pretraining is on by
    default and such a dataset should still train.
    """
    saved = tuned_encoder_file(run)
    if saved.is_file():
        try:
            backbone.model.load_weights(saved)
        except Exception as error:  # noqa: BLE001 (Keras and h5py raise many types for a bad file)
            raise BadConfigError(f"{saved}: unreadable tuned encoder weights "
                                 f"({type(error).__name__}); start a new run instead") from None
        run.log(Event.PATCHES, loaded=saved.name)
        return "tuned"
    if not any(len(found) for found in fit.lesions):
        warnings.append("patch pretraining skipped: no training film has a located lesion, "
                        "so the encoder stays as loaded")
        run.log(Event.PATCHES, skipped="no located lesions")
        return "skipped"
    train = _patches(config, fit, classes, config.seed)
    held = _patches(config, val, classes, config.seed + 1)
    if config.patch_labels == "lesion":  # lesion or not: more examples per class
        names = ["lesion", NORMAL_CLASS]
        normal = _normal_label(config, classes)
        train = Patches(train.images, (train.labels == normal).astype(np.int64))
        held = Patches(held.images, (held.labels == normal).astype(np.int64))
    else:
        names = list(classes)
    present = sorted({names[i] for i in train.labels})
    if len(present) < 2:
        raise BadConfigError(
            f"patch pretraining needs patches of at least two classes, but the training films "
            f"give only {', '.join(present) or 'none'}; use lesion-vs-normal patch labels or "
            f"turn it off with patch_epochs 0"
        )
    n_classes = len(names)
    counts = np.bincount(train.labels, minlength=n_classes)
    run.log(Event.PATCHES, train=len(train), val=len(held), size=config.patch_size,
            counts={names[i]: int(c) for i, c in enumerate(counts) if c})
    model, tuned = _patch_classifier(config, backbone, n_classes)
    one_hot = np.eye(n_classes, dtype=np.float32)
    batches = Batches(train.images, one_hot[train.labels], config.batch_size,
                      class_weights(train.labels, n_classes), config.seed, films=True)
    progress = RunProgress(run, Step.PATCHES, config.patch_epochs)
    callbacks: list[keras.callbacks.Callback] = [progress]
    validation = None
    if len(held):
        validation = Batches(held.images, one_hot[held.labels], config.batch_size, films=True)
        if config.patience > 0:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.patience, restore_best_weights=True))
    model.fit(batches, validation_data=validation, epochs=config.patch_epochs,
              callbacks=callbacks, verbose=0)
    if progress.cancelled:
        return "cancelled"
    backbone.model.set_weights(tuned.get_weights())
    with atomic_path(saved) as tmp:
        backbone.model.save_weights(tmp)
    return "tuned"
