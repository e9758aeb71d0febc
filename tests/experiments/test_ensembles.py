"""Cross-validations combined afterwards: a configuration's fold-model ensemble scores each
film by the mean of the seeds' out-of-fold probabilities, each seed's folds on their own
films, with the per-woman figures of a screening class set."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.errors import BadConfigError
from core.experiments.ensembles import fold_model_ensembles

CLASSES = ("CIRC", "NORM")
FILMS = [f"mdb{i:03d}" for i in range(1, 9)]
ACTUAL = {film: CLASSES[i % 2] for i, film in enumerate(FILMS)}


def _cv(seed: int, p_second: dict[str, float], classes: tuple[str, str] = CLASSES,
        actual: dict[str, str] | None = None, patients: dict[str, str] | None = None) -> dict:
    """A two-fold cv document of ``seed``: its folds split the films differently per seed
    (whole women together where ``patients`` names them), each film with the probabilities
    its fold's model gave (``p_second``: of the second class)."""
    from core.metrics.scores import classification_summary

    actual = actual or ACTUAL
    women = sorted(set((patients or {}).values())) or FILMS
    order = list(np.random.default_rng(seed).permutation(women))
    halves = (order[:len(order) // 2], order[len(order) // 2:])
    folds = []
    for index, half in enumerate(halves):
        names = sorted(film for film in FILMS if (patients or {}).get(film, film) in half)
        films = [{"film": name, "actual": actual[name],
                  "probabilities": {classes[0]: 1 - p_second[name], classes[1]: p_second[name]},
                  **({"patient": patients[name]} if patients else {})} for name in names]
        labels = np.array([classes.index(actual[name]) for name in names])
        summary = classification_summary(
            labels, np.array([[1 - p_second[n], p_second[n]] for n in names]), classes)
        folds.append({"fold": index, "run": f"run-{seed}-{index}", "labels": list(classes),
                      "films": films, "baselines": summary["baselines"]})
    return {"config": {"seed": seed}, "folds": folds}


def _kept_films(seed: int, fold: dict) -> list[dict]:
    return fold["films"]


def _probabilities(seed: int) -> dict[str, float]:
    return dict(zip(FILMS, np.random.default_rng(100 + seed).uniform(0.05, 0.95, len(FILMS)),
                    strict=True))


def test_each_film_is_scored_by_the_mean_of_its_out_of_fold_scores(tmp_path) -> None:
    p_norm = {seed: _probabilities(seed) for seed in (0, 1, 2)}
    documents = {seed: _cv(seed, p_norm[seed]) for seed in (0, 1, 2)}
    result = fold_model_ensembles(documents, _kept_films)
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
    documents = {seed: _cv(seed, _probabilities(seed)) for seed in (0, 1)}
    documents[1]["folds"][1]["films"].append(documents[1]["folds"][0]["films"][0])
    with pytest.raises(BadConfigError, match="tested in two folds"):
        fold_model_ensembles(documents, _kept_films)


def test_seeds_that_tested_different_films_are_refused(tmp_path) -> None:
    documents = {seed: _cv(seed, _probabilities(seed)) for seed in (0, 1)}
    documents[1]["folds"][1]["films"].pop()
    with pytest.raises(BadConfigError, match="different films"):
        fold_model_ensembles(documents, _kept_films)


def test_screening_films_get_the_per_woman_figures_of_their_averages() -> None:
    """Cancer vs no cancer, two films a woman: each woman is scored by her highest averaged
    p(cancer), as an evaluation scores one model's films."""
    classes = ("no_cancer", "cancer")
    patients = {film: f"w{index // 2}" for index, film in enumerate(FILMS)}
    actual = {film: "cancer" if film in ("mdb001", "mdb004", "mdb007") else "no_cancer"
              for film in FILMS}
    p_cancer = {seed: _probabilities(seed) for seed in (0, 1, 2)}
    documents = {seed: _cv(seed, p_cancer[seed], classes, actual, patients)
                 for seed in (0, 1, 2)}
    mean = {film: np.mean([p_cancer[seed][film] for seed in (0, 1, 2)]) for film in FILMS}
    for seed, document in fold_model_ensembles(documents, _kept_films).items():
        for fold, source in zip(document["folds"], documents[seed]["folds"], strict=True):
            women = sorted({film["patient"] for film in source["films"]})
            highest = [max(mean[f] for f in FILMS if patients[f] == w) for w in women]
            positive = [any(actual[f] == "cancer" for f in FILMS if patients[f] == w)
                        for w in women]
            assert fold["patient_level"]["n_patients"] == len(women) == 2
            if len(set(positive)) == 2:
                assert fold["patient_auc"] == pytest.approx(roc_auc_score(positive, highest))
            else:
                assert fold["patient_auc"] is None
