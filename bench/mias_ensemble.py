"""An ensemble of cross-validated configurations, scored fold by fold on the same films.

Why: issue 15's MIAS candidate (d) asks whether averaging several models beats the shipped
default. Models trained on the same fold's training patients can be averaged honestly on
that fold's test patients; this takes two or more ``core cv`` documents measured on the same
folds (the same ``--seed``), averages each test film's class probabilities over them and
scores the average as ``core.evaluate`` scores one model (``core.experiments.ensembles``,
with MIAS's severities). The result is a ``core cv``-shaped document
(``folds``, ``mean``, ...) that ``bench/results.py`` pairs with the default like any other
candidate. Not measured: the pointing game (averaging attention maps is not the same
question, and the maps are not kept), so that column stays empty for an ensemble.

Documents written before evaluations kept each film's probabilities are completed by
evaluating their fold runs again (``--runs``, where ``core cv`` left them); those films are
kept beside the documents (``films-evaluated-again.json``), so a rerun needs no runs.

    python bench/mias_ensemble.py --members effnet-lite0 rsna-encoder --name ensemble

``--across-seeds`` asks the issue's other question, an ensemble of one configuration's *fold
models*, without training anything again (``fold_model_ensembles``): every film was scored
by one fold model per seed that never saw its woman, and those three scores are averaged.

    python bench/mias_ensemble.py --members default-again --across-seeds --name fold-ensemble-default
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.settings import REPO, SHARED

#: Where each seed's candidate documents are kept (as ``bench/results.py`` reads them).
CANDIDATES = REPO / "bench" / "out" / "results" / "candidates"
SEED_FOLDERS = {seed: CANDIDATES / f"seed{seed}" for seed in (0, 1, 2)}
#: Per seed: the films (with probabilities) of fold runs evaluated again, by run name, so a
#: rerun of this script (or one on another machine, without the runs) need not evaluate them.
KEPT_FILMS = "films-evaluated-again.json"
#: Figures a fold run evaluated again must give as its cv document does.
SAME_AGAIN = ("accuracy", "macro_f1", "auc_abnormal", "auc_malignant")


def fold_films(fold: dict[str, Any], runs: Path,
               kept: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The fold's test films with their probabilities: from the document where it has them,
    from ``kept`` (films of runs evaluated again before), otherwise from evaluating the
    fold's run again, which is then added to ``kept``."""
    films = fold.get("films") or []
    if films and all("probabilities" in film for film in films):
        return films
    name = Path(fold["run"]).name
    if name not in kept:
        kept[name] = _evaluated_again(fold, runs)
    return kept[name]


def _evaluated_again(fold: dict[str, Any], runs: Path) -> list[dict[str, Any]]:
    from core.evaluate.evaluate import evaluate_run
    from core.runs.folder import open_run

    print(f"evaluating {fold['run']} again for its films' probabilities", file=sys.stderr)
    again = evaluate_run(open_run(runs / Path(fold["run"]).name))
    for key in SAME_AGAIN:  # the run scored again must be the run the document scored
        if abs((again[key] or 0.0) - (fold[key] or 0.0)) > 1e-6:
            raise SystemExit(f"{fold['run']}: {key} {again[key]} evaluated again, "
                             f"{fold[key]} in the cv document: not the same model or films")
    return again["films"]


def ensemble_fold(member_folds: list[dict[str, Any]], runs: Path,
                  severities: dict[str, str | None],
                  kept: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One fold scored from the mean of its members' probabilities."""
    from core.experiments.ensembles import averaged_fold

    members = [{film["film"]: film for film in fold_films(fold, runs, kept)}
               for fold in member_folds]
    names = sorted(members[0])
    if any(sorted(member) != names for member in members[1:]):
        raise SystemExit(f"fold {member_folds[0]['fold']}: the members were tested on "
                         "different films (not the same folds: compare their --seed)")
    return averaged_fold(member_folds, members, names, severities)


def ensemble_document(documents: list[dict[str, Any]], names: list[str], runs: Path,
                      severities: dict[str, str | None],
                      kept: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    from core.experiments.cv import summarise_folds

    by_fold = [{fold["fold"]: fold for fold in document["folds"]} for document in documents]
    folds = [ensemble_fold([member[index] for member in by_fold], runs, severities, kept)
             for index in sorted(by_fold[0])]
    return {"config": {"ensemble_of": names,
                       "members": [document["config"] for document in documents]},
            "folds": folds, **summarise_folds(folds)}


def _kept(folder: Path) -> dict[str, list[dict[str, Any]]]:
    kept_file = folder / KEPT_FILMS
    return json.loads(kept_file.read_text()) if kept_file.is_file() else {}


def _write(folder: Path, name: str, document: dict[str, Any], command: str) -> None:
    (folder / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    (folder / f"{name}.cmd").write_text(command + "\n")
    print(f"{folder.name}: {folder / name}.json, AUC abnormal "
          f"{document['mean']['auc_abnormal']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", nargs="+", required=True,
                        help="names of cv documents (without .json) kept for each seed")
    parser.add_argument("--name", required=True, help="the ensemble document's name")
    parser.add_argument("--mias", type=Path, default=SHARED / "data" / "mias")
    parser.add_argument("--runs", type=Path, default=REPO / "models")
    parser.add_argument("--across-seeds", action="store_true",
                        help="one member: average each film over the seeds' fold models "
                             "that tested it (an ensemble of the fold models)")
    args = parser.parse_args()
    from core.data import load_dataset

    severities = {r.film_id: r.severity for r in load_dataset("mias", args.mias).records}
    command = (f"python bench/mias_ensemble.py --members {' '.join(args.members)}"
               + (" --across-seeds" if args.across_seeds else "") + f" --name {args.name}")
    kept = {seed: _kept(folder) for seed, folder in SEED_FOLDERS.items()}
    try:
        if args.across_seeds:
            _across_seeds(args, severities, kept, command)
        else:
            _per_seed(args, severities, kept, command)
    finally:  # what was evaluated is kept, even when a later fold fails
        for seed, folder in SEED_FOLDERS.items():
            if kept[seed]:
                (folder / KEPT_FILMS).write_text(json.dumps(kept[seed]) + "\n")


def _per_seed(args: argparse.Namespace, severities: dict[str, str | None],
              kept: dict[int, dict[str, list[dict[str, Any]]]], command: str) -> None:
    for seed, folder in SEED_FOLDERS.items():
        files = [folder / f"{name}.json" for name in args.members]
        if not all(file.is_file() for file in files):
            print(f"seed {seed}: not every member is measured; skipped", file=sys.stderr)
            continue
        documents = [json.loads(file.read_text()) for file in files]
        _write(folder, args.name, ensemble_document(documents, args.members, args.runs,
                                                    severities, kept[seed]), command)


def _across_seeds(args: argparse.Namespace, severities: dict[str, str | None],
                  kept: dict[int, dict[str, list[dict[str, Any]]]], command: str) -> None:
    if len(args.members) != 1:
        raise SystemExit("--across-seeds takes one member (one configuration's fold models)")
    files = {seed: folder / f"{args.members[0]}.json" for seed, folder in SEED_FOLDERS.items()}
    missing = [str(file) for file in files.values() if not file.is_file()]
    if missing:
        raise SystemExit(f"--across-seeds needs every seed measured; missing: {missing}")
    documents = {seed: json.loads(file.read_text()) for seed, file in files.items()}
    from core.errors import MammoError
    from core.experiments.ensembles import fold_model_ensembles

    try:
        ensembles = fold_model_ensembles(
            documents, lambda seed, fold: fold_films(fold, args.runs, kept[seed]), severities)
    except MammoError as error:
        raise SystemExit(f"{args.members[0]}: {error}") from None
    for seed, document in ensembles.items():
        _write(SEED_FOLDERS[seed], args.name, document, command)


if __name__ == "__main__":
    main()
