"""A run's figures on films it never saw: its own held-out test split, by default.

The model is loaded from the run folder in Keras's safe mode (no code from the file runs)
and fed films prepared exactly as in training, from the preprocessing config in the run's
manifest. The test films are the ones the manifest lists, checked against their hashes, so
a figure always refers to the films it claims to.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from core.data import load_dataset
from core.data.records import Dataset
from core.errors import BadConfigError
from core.evaluate.metrics import classification_summary
from core.train.config import TrainConfig
from core.train.data import load_arrays
from core.train.features import file_digest
from core.train.runs import MODEL, Run

PREDICT_BATCH = 16


def load_model(run: Run) -> keras.Model:
    path = run.path / MODEL
    if not path.is_file():
        raise BadConfigError(f"{run.path}: the run has no trained model (status "
                             f"{run.manifest.get('status')!r})")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many kinds for foreign or corrupt files
        raise BadConfigError(f"{path}: not a model this program can load "
                             f"({type(error).__name__}: {str(error).splitlines()[0]})") from None


def _test_records(run: Run, dataset: Dataset) -> list[Any]:
    wanted = {entry["film"]: entry["sha256"] for entry in run.manifest["split"]["test"]}
    records = [r for r in dataset.records if r.film_id in wanted]
    if len(records) != len(wanted):
        raise BadConfigError(f"{run.path}: {len(wanted) - len(records)} test film(s) of this "
                             f"run are not in {dataset.root}")
    changed = [r.film_id for r in records if file_digest(r.path) != wanted[r.film_id]]
    if changed:
        raise BadConfigError(f"{run.path}: test films changed since training: "
                             f"{', '.join(changed[:5])}")
    return records


def evaluate_run(run: Run) -> dict[str, Any]:
    """Metrics of a run on its own test split (with the training split's majority class as
    the always-majority baseline)."""
    manifest = run.manifest
    config = TrainConfig.from_dict(manifest["config"])
    dataset = load_dataset(config.dataset, config.root, **config.dataset_options)
    arrays = load_arrays(_test_records(run, dataset), config.prep)
    model = load_model(run)
    output = model.predict(arrays.images[..., None].astype(np.float32),
                           batch_size=PREDICT_BATCH, verbose=0)
    probabilities = np.asarray(output["class"] if isinstance(output, dict) else output)
    train_ids = {entry["film"] for entry in manifest["split"]["train"]}
    train_labels = [r.class_id for r in dataset.records if r.film_id in train_ids]
    majority = int(np.bincount(train_labels, minlength=len(dataset.classes)).argmax())
    return classification_summary(arrays.labels, probabilities, dataset.classes, majority)
