"""Patient-grouped k-fold cross-validation: k runs, each scored on the fold it never saw.

One split of 83 films (the first paper's protocol) says little; k folds give every film
one turn in a test set and a spread across folds. Each fold is an ordinary run folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.errors import BadConfigError
from core.evaluate.evaluate import evaluate_run
from core.runs.config import TrainConfig
from core.train.fit import train

log = logging.getLogger(__name__)

#: Figures summarised as mean and standard deviation across folds.
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "auc_abnormal",
            "auc_malignant", "auc", "pointing_game")


def summarise_folds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of each headline figure (None where undefined)."""
    mean, std = {}, {}
    for name in HEADLINE:
        values = [r[name] for r in results if r.get(name) is not None]
        mean[name] = float(np.mean(values)) if values else None
        std[name] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    baseline = [r["baselines"]["majority"] for r in results]
    return {"mean": mean, "std": std, "baseline_majority_mean": {
        name: float(np.mean([b[name] for b in baseline]))
        for name in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")}}


def run_cv(base: TrainConfig, folds: int = 5, out_root: Path | None = None) -> dict[str, Any]:
    """Train and test ``folds`` runs; returns per-fold test figures and their summary."""
    if folds < 2:
        raise BadConfigError(f"cross-validation needs at least 2 folds, got {folds}")
    results = []
    for fold in range(folds):
        log.info("fold %d of %d", fold + 1, folds)
        run = train(base.with_overrides(folds=folds, fold=fold), out_root)
        if run.manifest["status"] != "done":
            raise BadConfigError(f"fold {fold}: run {run.path} ended {run.manifest['status']}")
        results.append({"fold": fold, "run": str(run.path), **evaluate_run(run)})
        keras.backend.clear_session()  # each fold's graphs would otherwise pile up in memory
    # The settings travel with the figures: a saved result then says what it measured even
    # after the defaults have moved on.
    return {"config": base.to_dict(), "folds": results, **summarise_folds(results)}
