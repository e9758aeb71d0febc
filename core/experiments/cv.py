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
from core.metrics.headline import HEADLINE
from core.runs.config import TrainConfig
from core.train.fit import train

log = logging.getLogger(__name__)


def summarise_folds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of each headline figure across folds (None where
    undefined), and the mean always-majority baseline of each figure that has one."""
    mean, std = {}, {}
    for metric in HEADLINE:
        values = [r[metric.key] for r in results if r.get(metric.key) is not None]
        mean[metric.key] = float(np.mean(values)) if values else None
        std[metric.key] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    baseline = [r["baselines"]["majority"] for r in results]
    return {"mean": mean, "std": std, "baseline_majority_mean": {
        metric.key: float(np.mean([b[metric.key] for b in baseline]))
        for metric in HEADLINE if metric.majority}}


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
