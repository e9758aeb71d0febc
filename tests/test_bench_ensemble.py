"""``bench/mias_ensemble.py``'s fold-model ensemble: each film scored by the mean of the
seeds' out-of-fold probabilities, each seed's folds scored on their own films."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import REPO

CLASSES = ("CIRC", "NORM")
FILMS = [f"mdb{i:03d}" for i in range(1, 9)]
ACTUAL = {film: CLASSES[i % 2] for i, film in enumerate(FILMS)}


def _script():
    spec = importlib.util.spec_from_file_location(
        "mias_ensemble", REPO / "bench" / "mias_ensemble.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cv(seed: int, p_norm: dict[str, float]) -> dict:
    """A two-fold cv document of ``seed``: its folds split the films differently per seed,
    each film with the probabilities its fold's model gave."""
    from core.metrics.scores import classification_summary

    order = np.random.default_rng(seed).permutation(FILMS)
    folds = []
    for index, names in enumerate((sorted(order[:4]), sorted(order[4:]))):
        films = [{"film": name, "actual": ACTUAL[name],
                  "probabilities": {"CIRC": 1 - p_norm[name], "NORM": p_norm[name]}}
                 for name in names]
        labels = np.array([CLASSES.index(ACTUAL[name]) for name in names])
        summary = classification_summary(
            labels, np.array([[1 - p_norm[n], p_norm[n]] for n in names]), CLASSES)
        folds.append({"fold": index, "run": f"run-{seed}-{index}", "labels": list(CLASSES),
                      "films": films, "baselines": summary["baselines"]})
    return {"config": {"seed": seed}, "folds": folds}


def _probabilities(seed: int) -> dict[str, float]:
    return dict(zip(FILMS, np.random.default_rng(100 + seed).uniform(0.05, 0.95, len(FILMS)),
                    strict=True))


def test_each_film_is_scored_by_the_mean_of_its_out_of_fold_scores(tmp_path) -> None:
    script = _script()
    p_norm = {seed: _probabilities(seed) for seed in (0, 1, 2)}
    documents = {seed: _cv(seed, p_norm[seed]) for seed in (0, 1, 2)}
    result = script.across_seeds_documents(documents, "default-again", tmp_path,
                                           dict.fromkeys(FILMS), {0: {}, 1: {}, 2: {}})
    mean_norm = {film: np.mean([p_norm[seed][film] for seed in (0, 1, 2)]) for film in FILMS}
    for seed, document in result.items():
        assert [fold["runs"] for fold in document["folds"]] == [
            [fold["run"]] for fold in documents[seed]["folds"]]
        for fold, source in zip(document["folds"], documents[seed]["folds"], strict=True):
            names = [film["film"] for film in source["films"]]
            truth = [ACTUAL[name] == "CIRC" for name in names]
            expected = roc_auc_score(truth, [1 - mean_norm[name] for name in names])
            assert fold["auc_abnormal"] == pytest.approx(expected)
        assert document["mean"]["auc_abnormal"] == pytest.approx(
            np.mean([fold["auc_abnormal"] for fold in document["folds"]]))


def test_a_film_tested_twice_in_one_seed_is_refused(tmp_path) -> None:
    script = _script()
    documents = {seed: _cv(seed, _probabilities(seed)) for seed in (0, 1)}
    documents[1]["folds"][1]["films"].append(documents[1]["folds"][0]["films"][0])
    with pytest.raises(SystemExit, match="tested in two folds"):
        script.across_seeds_documents(documents, "x", tmp_path, dict.fromkeys(FILMS),
                                      {0: {}, 1: {}})


def test_seeds_that_tested_different_films_are_refused(tmp_path) -> None:
    script = _script()
    documents = {seed: _cv(seed, _probabilities(seed)) for seed in (0, 1)}
    documents[1]["folds"][1]["films"].pop()
    with pytest.raises(SystemExit, match="different films"):
        script.across_seeds_documents(documents, "x", tmp_path, dict.fromkeys(FILMS),
                                      {0: {}, 1: {}})
