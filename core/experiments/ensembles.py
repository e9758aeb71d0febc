"""Cross-validations combined afterwards: ensembles scored from films' kept probabilities.

Every cv fold's evaluation keeps each test film's probabilities (``core.evaluate``), so
models can be combined without scoring anything again, in two ways:

* ``averaged_fold``: models of the same fold (the same ``--seed``, trained on the same women)
  averaged on its test films: an ensemble of configurations.
* ``fold_model_ensembles``: one configuration's *fold models*, from cross-validations with
  different seeds. Each seed splits the same women into different folds, so every film was
  scored by exactly one fold model per seed, none of which saw its woman; averaging those
  scores gives each film the answer of an ensemble of fold models, each trained on (k-1)/k
  of the women, as a new woman is answered by a cv's fold models (``predict --also``). Each
  seed's folds are then scored from the averages, so the result pairs fold by fold with the
  configuration's own documents. A film keeps one averaged score in every seed's folds,
  which makes those folds depend on each other more than a single model's repeats do.

Both score the averages as an evaluation scores one model: ``classification_summary``,
``clinical_pairs`` (MIAS's severities where given; the positive class of a two-class set)
and, where films name their women and the classes pose a screening question, the per-woman
figures (``patient_level``). Not scored: localisation (maps are not kept).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from core.errors import BadConfigError
from core.experiments.cv import summarise_folds
from core.metrics.scores import classification_summary, clinical_pairs, patient_level

#: A scored film as an evaluation keeps it: ``film``, ``patient``, ``actual``,
#: ``probabilities`` (class name to probability), ...
Film = dict[str, Any]
#: The test films of one fold of one cv document (the caller's: kept in the document, or
#: found by evaluating its run again).
FilmsOf = Callable[[int, dict[str, Any]], list[Film]]


def averaged_fold(member_folds: Sequence[dict[str, Any]], members: Sequence[Mapping[str, Film]],
                  names: Sequence[str],
                  severities: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """The films ``names`` scored from the mean of ``members``' probabilities (each member:
    film name to its scored film), as one fold: its figures, its run(s) and, from the first
    of ``member_folds`` (the cv folds the scores come from), its number, class names and
    always-majority baseline (the training women's majority, which the members share)."""
    first = member_folds[0]
    classes = tuple(first["labels"])
    labels = np.array([classes.index(members[0][name]["actual"]) for name in names])
    probabilities = np.mean([[[member[name]["probabilities"][c] for c in classes]
                              for name in names] for member in members], axis=0)
    summary = classification_summary(labels, probabilities, classes)
    pairs = clinical_pairs(labels, probabilities, classes,
                           severities=[(severities or {}).get(name) for name in names])
    summary["auc_malignant"] = pairs["malignant"]["auc"] if pairs["malignant"] else None
    summary["pointing_game"] = None
    patients = [members[0][name].get("patient") for name in names]
    patient = (patient_level(labels, probabilities, classes, patients)
               if all(patients) else None)
    summary.update(patient_level=patient,
                   patient_auc=patient["auc"] if patient else None,
                   patient_sensitivity_at_90_specificity=(
                       patient["sensitivity_at_90_specificity"] if patient else None))
    summary["baselines"] = first["baselines"]
    return {"fold": first["fold"], "runs": [fold["run"] for fold in member_folds], **summary}


def fold_model_ensembles(documents: Mapping[int, dict[str, Any]], films_of: FilmsOf,
                         severities: Mapping[str, str | None] | None = None
                         ) -> dict[int, dict[str, Any]]:
    """Per seed, a cv-shaped document (``folds``, ``mean``, ...) of one configuration's
    fold-model ensemble: each seed's folds scored from each film's probabilities averaged
    over every seed's out-of-fold score. ``documents``: the configuration's cv documents by
    seed; ``films_of(seed, fold)``: that fold's scored test films."""
    out_of_fold: dict[int, dict[str, Film]] = {}
    tested: dict[int, list[list[str]]] = {}
    for seed, document in documents.items():
        films: dict[str, Film] = {}
        tested[seed] = []
        for fold in document["folds"]:
            names = []
            for film in films_of(seed, fold):
                if film["film"] in films:
                    raise BadConfigError(f"seed {seed}: {film['film']} is tested in two "
                                         "folds: not a cross-validation")
                films[film["film"]] = film
                names.append(film["film"])
            tested[seed].append(sorted(names))
        out_of_fold[seed] = films
    everyone = sorted(next(iter(out_of_fold.values())))
    if any(sorted(films) != everyone for films in out_of_fold.values()):
        raise BadConfigError("the seeds tested different films (not the same dataset)")
    members = list(out_of_fold.values())
    result = {}
    for seed, document in documents.items():
        folds = [averaged_fold([fold], members, names, severities)
                 for fold, names in zip(document["folds"], tested[seed], strict=True)]
        result[seed] = {"config": {"fold_model_ensemble_of_seeds": sorted(documents),
                                   "member": document["config"],
                                   "note": ("each film's probabilities: the mean over the "
                                            "seeds' fold models that tested it (none saw its "
                                            "woman); a film's score is the same in every "
                                            "seed's folds")},
                        "folds": folds, **summarise_folds(folds)}
    return result
