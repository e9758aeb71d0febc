"""Splits: no patient on both sides, every film placed once, classes on both sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data import load_dataset
from core.errors import BadConfigError
from core.prep.splits import kfold, train_test_split


def _patients(n_patients: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two films per patient, like MIAS; a few rare classes, many normals."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"p{i:03d}" for i in range(n_patients)], 2)
    labels = rng.choice(5, size=len(groups), p=[0.55, 0.2, 0.1, 0.1, 0.05])
    return labels, groups


def _assert_partition(train: np.ndarray, test: np.ndarray, groups: np.ndarray) -> None:
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(groups)))
    assert not set(groups[train]) & set(groups[test])


@st.composite
def _datasets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    size = draw(st.integers(4, 60))
    labels = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
    groups = draw(st.lists(st.integers(0, size // 2), min_size=size, max_size=size))
    return np.array(labels), np.array(groups)


@settings(max_examples=60, deadline=None)
@given(data=_datasets(), seed=st.integers(0, 2**31), test_size=st.floats(0.1, 0.6))
def test_train_test_split_properties(data: tuple, seed: int, test_size: float) -> None:
    labels, groups = data
    if len(np.unique(groups)) < 2:
        with pytest.raises(BadConfigError):
            train_test_split(labels, groups, test_size, seed)
        return
    train, test = train_test_split(labels, groups, test_size, seed)
    _assert_partition(train, test, groups)
    assert len(train) and len(test)
    again = train_test_split(labels, groups, test_size, seed)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)


@settings(max_examples=60, deadline=None)
@given(data=_datasets(), seed=st.integers(0, 2**31), k=st.integers(2, 6))
def test_kfold_properties(data: tuple, seed: int, k: int) -> None:
    labels, groups = data
    if len(np.unique(groups)) < k:
        with pytest.raises(BadConfigError, match=f"{k} folds need at least {k} patients"):
            kfold(labels, groups, k, seed)
        return
    folds = kfold(labels, groups, k, seed)
    assert len(folds) == k
    for train, test in folds:
        _assert_partition(train, test, groups)
    tested = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(labels)))  # each film tested once
    again = kfold(labels, groups, k, seed)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))


def test_default_is_the_papers_75_25_and_seed_matters() -> None:
    labels, groups = _patients(100)
    _train, test = train_test_split(labels, groups)
    assert len(test) / len(labels) == pytest.approx(0.25, abs=0.03)
    other = train_test_split(labels, groups, seed=1)[1]
    assert not np.array_equal(test, other)
    thirty = train_test_split(labels, groups, test_size=0.3)[1]
    assert len(thirty) / len(labels) == pytest.approx(0.3, abs=0.03)


def test_stratified_and_rare_classes_land_on_both_sides() -> None:
    labels, groups = _patients(60)
    for seed in range(5):
        train, test = train_test_split(labels, groups, seed=seed)
        for klass in np.unique(labels):
            if len(np.unique(groups[labels == klass])) >= 2:
                assert klass in labels[train] and klass in labels[test], (seed, klass)
        overall = np.bincount(labels, minlength=5) / len(labels)
        assert np.abs(np.bincount(labels[test], minlength=5) / len(test) - overall).max() < 0.1
    # Two patients with the rare class: one each side, whatever the seed.
    labels = np.array([0] * 40 + [1, 1, 1, 1])
    groups = np.array([f"n{i // 2}" for i in range(40)] + ["r0", "r0", "r1", "r1"])
    for seed in range(5):
        train, test = train_test_split(labels, groups, seed=seed)
        assert 1 in labels[train] and 1 in labels[test]


def test_kfold_puts_common_classes_in_every_fold() -> None:
    labels, groups = _patients(80)
    folds = kfold(labels, groups, k=4)
    for klass in np.unique(labels):
        if len(np.unique(groups[labels == klass])) >= 4:
            assert all(klass in labels[test] for _, test in folds)


def test_impossible_requests_say_why() -> None:
    labels, groups = _patients(3)
    with pytest.raises(BadConfigError, match="5 folds need at least 5 patients, got 3"):
        kfold(labels, groups, k=5)
    for bad in (0.0, 1.0, -0.2, 1.5, "a quarter"):
        with pytest.raises(BadConfigError, match="test_size must be between 0 and 1"):
            train_test_split(labels, groups, test_size=bad)
    # Three patients: the nearest split to 5% is one patient of three.
    train, test = train_test_split(labels, groups, test_size=0.05)
    assert len(np.unique(groups[test])) == 1 and len(np.unique(groups[train])) == 2
    with pytest.raises(BadConfigError, match="at least 2 patients"):
        train_test_split([0, 1], ["a", "a"])
    with pytest.raises(BadConfigError, match="differ in length"):
        train_test_split([0, 1, 0], ["a", "b"])
    with pytest.raises(BadConfigError, match="k must be an integer"):
        kfold(labels, groups, k=1)


def test_real_mias_split_keeps_patients_together(mias_root: Path) -> None:
    dataset = load_dataset("mias", mias_root)
    labels, groups = dataset.labels, dataset.groups
    assert len(np.unique(groups)) == 128
    train, test = train_test_split(labels, groups, seed=0)
    _assert_partition(train, test, groups)
    assert len(test) / len(labels) == pytest.approx(0.25, abs=0.02)
    for klass in range(len(dataset.classes)):  # every MIAS class has several patients
        assert klass in labels[train] and klass in labels[test]
    for train, test in kfold(labels, groups, k=5, seed=0):
        _assert_partition(train, test, groups)
