"""Training's split of a dataset: by patient, unless the first paper's film split is asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data import load_dataset
from core.prep.splits import split_dataset


def _patients(dataset, indices: np.ndarray) -> set[str]:  # type: ignore[no-untyped-def]
    return {dataset.records[int(i)].patient_id for i in indices}


def test_patient_split_keeps_each_patient_on_one_side_and_film_split_does_not(
        mias_root: Path) -> None:
    mias = load_dataset("mias", mias_root)
    grouped = split_dataset(mias, 0.25, 0.2, seed=0)
    assert not _patients(mias, grouped.test) & _patients(mias, np.r_[grouped.train, grouped.val])

    shared = []
    for seed in range(5):
        films = split_dataset(mias, 0.25, 0.2, seed=seed, by_patient=False)
        parts = np.concatenate([films.train, films.val, films.test])
        assert sorted(parts.tolist()) == list(range(len(mias)))  # every film, once
        shared.append(len(_patients(mias, films.test)
                          & _patients(mias, np.r_[films.train, films.val])))
    # The paper's protocol puts one breast of a patient in training and the other in test.
    assert min(shared) > 0
