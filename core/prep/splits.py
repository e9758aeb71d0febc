"""Patient-grouped, class-stratified splits, reproducible by seed.

A patient's films (MIAS pairs its left and right films; CBIS-DDSM names its patients) must
never sit on both sides of a split: the two films of one patient share anatomy, and a model
tested on the partner of a film it trained on is partly tested on its training data.
scikit-learn's ``StratifiedGroupKFold`` does the grouping and the stratification; this module
chooses its fold count, turns folds into a train/test split, and checks what it cannot.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from core.data.records import Dataset
from core.errors import BadConfigError

#: Largest fold count used to express ``test_size`` as a fraction of folds (5% steps).
MAX_FOLDS = 20
#: Shuffles tried (from the seed) for a split that puts every class on both sides.
ATTEMPTS = 16


def train_test_split(labels: Any, groups: Any, test_size: float = 0.25,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, test)`` index arrays; the default 75/25 is the paper's.

    ``test_size`` is met as ``m`` of ``k`` stratified group folds, the fraction nearest to
    it with ``k`` at most the number of patients (and at most ``MAX_FOLDS``): 0.25 is 1 of
    4, 0.3 is 3 of 10, and with 3 patients 0.25 becomes 1 of 3. Among the first shuffles
    drawn from the seed, the first that puts every class with at least two patients on
    both sides wins; failing that, the one that leaves out the fewest such classes.
    """
    labels, groups = _check(labels, groups)
    if (not isinstance(test_size, numbers.Real) or isinstance(test_size, bool)
            or not 0.0 < test_size < 1.0):
        raise BadConfigError(f"test_size must be between 0 and 1 (exclusive), got {test_size!r}")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise BadConfigError(f"a train/test split needs at least 2 patients, got {n_groups}")
    fraction = _nearest_fraction(float(test_size), min(MAX_FOLDS, n_groups))
    shared = _classes_to_share(labels, groups, 2)
    best: tuple[int, np.ndarray, np.ndarray] | None = None
    for attempt in range(ATTEMPTS):
        folds = _folds(labels, groups, fraction.denominator, _seed(seed, attempt))
        test = np.sort(np.concatenate([t for _, t in folds[:fraction.numerator]]))
        train = np.setdiff1d(np.arange(len(labels)), test)
        missing = _missing(labels, shared, [train, test])
        if best is None or missing < best[0]:
            best = (missing, train, test)
        if missing == 0:
            break
    assert best is not None
    return best[1], best[2]


def kfold(labels: Any, groups: Any, k: int = 5,
          seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` sorted ``(train, test)`` pairs; every film is tested exactly once.

    Among the first shuffles drawn from the seed, the first where every class with at least
    ``k`` patients is in every test fold wins; failing that, the one with the fewest gaps.
    """
    labels, groups = _check(labels, groups)
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 2:
        raise BadConfigError(f"k must be an integer of at least 2, got {k!r}")
    n_groups = len(np.unique(groups))
    if n_groups < k:
        raise BadConfigError(f"{k} folds need at least {k} patients, got {n_groups}")
    shared = _classes_to_share(labels, groups, k)
    best: tuple[int, list[tuple[np.ndarray, np.ndarray]]] | None = None
    for attempt in range(ATTEMPTS):
        folds = _folds(labels, groups, k, _seed(seed, attempt))
        missing = _missing(labels, shared, [test for _, test in folds])
        if best is None or missing < best[0]:
            best = (missing, folds)
        if missing == 0:
            break
    assert best is not None
    return best[1]


def _nearest_fraction(value: float, max_folds: int) -> Fraction:
    """The ``m/k`` nearest ``value`` with ``0 < m < k <= max_folds`` (fewer folds on a tie)."""
    candidates = (Fraction(m, k) for k in range(2, max_folds + 1) for m in range(1, k))
    return min(candidates, key=lambda f: (abs(float(f) - value), f.denominator))


def _folds(labels: np.ndarray, groups: np.ndarray, k: int,
           seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    # Stratifying needs a class with a film for every fold; without one, group alone.
    counts = np.unique(labels, return_counts=True)[1]
    if len(counts) > 1 and counts.max() >= k:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Classes rarer than the fold count are expected; _missing judges what they got.
        warnings.filterwarnings("ignore", message="The least populated class")
        return [(np.sort(train), np.sort(test))
                for train, test in splitter.split(np.zeros(len(labels)), labels, groups)]


def _classes_to_share(labels: np.ndarray, groups: np.ndarray, patients: int) -> np.ndarray:
    """Classes seen in at least ``patients`` patients: enough to appear on every side."""
    classes = np.unique(labels)
    return np.array([c for c in classes if len(np.unique(groups[labels == c])) >= patients])


def _missing(labels: np.ndarray, classes: np.ndarray, parts: list[np.ndarray]) -> int:
    """How many (class, part) pairs lack the class."""
    return sum(int((~np.isin(classes, labels[part])).sum()) for part in parts)


def _seed(seed: int, attempt: int) -> int:
    """A 32-bit seed for scikit-learn from the caller's seed and the attempt number."""
    return int(np.random.SeedSequence([seed, attempt]).generate_state(1)[0])


def _check(labels: Any, groups: Any) -> tuple[np.ndarray, np.ndarray]:
    labels, groups = np.asarray(labels), np.asarray(groups)
    if labels.ndim != 1 or groups.ndim != 1:
        raise BadConfigError("labels and groups must be 1-D sequences")
    if len(labels) != len(groups):
        raise BadConfigError(f"labels ({len(labels)}) and groups ({len(groups)}) differ in length")
    if len(labels) == 0:
        raise BadConfigError("cannot split an empty dataset")
    return labels, groups


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
