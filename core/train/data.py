"""From a dataset to arrays a model can train on: splits, model inputs, lesion targets.

Splits are grouped by patient at both levels: the test split (held out for ``evaluate``) and,
inside the rest, the validation split that early stopping and the reported ``val`` metrics
use. Lesions travel with their films as ``(row, col, radius)`` on the model-input grid,
computed through each film's ``Transform`` and nowhere else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from core.data.records import Dataset, FilmRecord
from core.errors import MammoError
from core.prep.geometry import Transform
from core.prep.preprocess import PrepConfig, preprocess_files
from core.prep.splits import kfold, train_test_split

log = logging.getLogger(__name__)


@dataclass
class FilmArrays:
    """Model inputs for some films, in the order of ``records``."""

    records: list[FilmRecord]
    images: np.ndarray  # uint8 [N, S, S]
    transforms: list[Transform]  # original film grid -> model-input grid
    lesions: list[np.ndarray]  # per film: (n, 3) rows of (row, col, radius) on the input grid
    labels: np.ndarray  # int64 class ids

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True)
class Splits:
    """Indices into ``Dataset.records``; a patient's films are all in one part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_dict(self, dataset: Dataset) -> dict[str, list[str]]:
        return {part: [dataset.records[int(i)].film_id for i in getattr(self, part)]
                for part in ("train", "val", "test")}


def split_dataset(dataset: Dataset, test_size: float, val_fraction: float, seed: int,
                  folds: int = 0, fold: int = 0, by_patient: bool = True) -> Splits:
    """Test split first (as the paper's 75/25, or fold ``fold`` of ``folds`` for
    cross-validation), then validation patients from the rest.

    ``by_patient=False`` splits films, not patients: the first paper's protocol, kept only to
    reproduce it; a patient's left and right films can then fall on both sides.
    """
    labels = dataset.labels
    groups = dataset.groups if by_patient else np.arange(len(labels))
    if folds:
        rest, test = kfold(labels, groups, k=folds, seed=seed)[fold]
    else:
        rest, test = train_test_split(labels, groups, test_size=test_size, seed=seed)
    fit, val = train_test_split(labels[rest], groups[rest], test_size=val_fraction,
                                seed=seed + 1)
    return Splits(train=np.sort(rest[fit]), val=np.sort(rest[val]), test=np.sort(test))


def lesions_on_grid(record: FilmRecord, transform: Transform) -> np.ndarray:
    """The film's located lesions as ``(row, col, radius)`` on the transform's output grid."""
    located = record.located_lesions
    if not located:
        return np.zeros((0, 3), np.float32)
    centres = transform.forward([lesion.center for lesion in located])
    radii = [transform.forward_radius(float(lesion.radius)) for lesion in located]
    return np.column_stack([centres, radii]).astype(np.float32)


def load_arrays(records: list[FilmRecord], prep: PrepConfig,
                warnings: list[str] | None = None) -> FilmArrays:
    """Read and preprocess films; a film that cannot be read is left out with a warning
    (appended to ``warnings``) instead of stopping the run."""
    failures: list[str] = []
    images, transforms = preprocess_files([r.path for r in records], prep, failures=failures)
    keep = [i for i, t in enumerate(transforms) if t is not None]
    for failure in failures:
        log.warning("film left out: %s", failure)
    if warnings is not None:
        warnings.extend(f"film left out: {failure}" for failure in failures)
    if not keep:
        raise MammoError("no film could be read; see the warnings above")
    kept_records = [records[i] for i in keep]
    kept_transforms = [t for t in transforms if t is not None]
    return FilmArrays(
        records=kept_records,
        images=images[keep] if len(keep) < len(records) else images,
        transforms=kept_transforms,
        lesions=[lesions_on_grid(r, t) for r, t in zip(kept_records, kept_transforms)],
        labels=np.array([r.class_id for r in kept_records], dtype=np.int64),
    )
