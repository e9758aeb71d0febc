"""Hyperparameter sweeps: a grid of settings, one run each, one table sorted by validation.

The second paper swept patience, weight and bias learn-rate factors and the L2 factor
(its tables 1, 2, 5 and 6); for the attention model the cell, the number of glimpse steps and
the input size are the natural axes. A sweep is nothing but many ordinary runs: each has its
own folder and can be evaluated, compared and deleted like any other.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import BadConfigError, MammoError
from core.metrics.headline import RANKED_BY, VALIDATION, by_key, keys
from core.runs.config import TrainConfig
from core.runs.folder import Run
from core.train.fit import train

log = logging.getLogger(__name__)

#: Validation figures a sweep records and can be sorted by: the headline figures that the
#: validation summary of training has.
SORT_METRICS = keys(VALIDATION)


def parse_grid(items: list[str], base: TrainConfig) -> dict[str, list[Any]]:
    """``["patience=5,10", "cell=lstm,gru"]`` -> ``{"patience": [5, 10], "cell": [...]}``,
    each value converted to the type of that field in ``base``."""
    grid: dict[str, list[Any]] = {}
    current = base.to_dict()
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise BadConfigError(f"grid item {item!r}: expected NAME=V1,V2,...")
        if name not in current or name in {"prep", "augment", "dataset_options"}:
            raise BadConfigError(f"grid item {item!r}: {name} is not a sweepable setting")
        grid[name] = [_convert(name, text.strip(), current[name]) for text in values.split(",")]
    return grid


def _convert(name: str, text: str, example: Any) -> Any:
    try:
        if isinstance(example, bool):
            if text.lower() not in {"true", "false"}:
                raise ValueError(text)
            return text.lower() == "true"
        if isinstance(example, int) or (example is None and text.isdigit()):
            return int(text)
        if isinstance(example, float):
            return float(text)
    except ValueError:
        raise BadConfigError(f"grid value {text!r} for {name} is not of type "
                             f"{type(example).__name__}") from None
    return None if text.lower() == "none" else text


def configs(base: TrainConfig, grid: dict[str, list[Any]]) -> list[TrainConfig]:
    """Every combination of the grid's values applied to ``base`` (validated up front, so a
    typo fails before hours of training, not after)."""
    names = list(grid)
    return [base.with_overrides(**dict(zip(names, values)))
            for values in itertools.product(*(grid[n] for n in names))]


def run_sweep(base: TrainConfig, grid: dict[str, list[Any]], out_root: Path | None = None,
              sort_by: str = RANKED_BY, on_created: Callable[[Run], None] | None = None,
              stop: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Train every combination and return one row per run, best first (by the validation
    figure ``sort_by``; a run without it last).

    A run that fails on bad input is recorded with its error and the sweep goes on.
    ``on_created`` is passed to each ``train``; ``stop`` is asked before each run (a
    cancelled sweep job ends after its current run instead of starting the next).
    """
    if sort_by not in SORT_METRICS:
        raise BadConfigError(f"sort metric must be one of {', '.join(SORT_METRICS)}")
    rows = []
    for index, config in enumerate(configs(base, grid), start=1):
        if stop is not None and stop():
            break
        settings = {name: getattr(config, name) for name in grid}
        log.info("sweep %d: %s", index, settings)
        try:
            run = train(config, out_root, on_created)
        except MammoError as error:
            rows.append({**settings, "run": None, "status": "failed", "error": str(error)})
            continue
        manifest = run.manifest
        val = manifest.get("val", {})
        rows.append({**settings, "run": str(run.path), "status": manifest["status"],
                     **{m: val.get(m) for m in SORT_METRICS}})
    better = 1.0 if by_key(sort_by).higher_is_better else -1.0

    def score(row: dict[str, Any]) -> float:
        value = row.get(sort_by)
        return float("-inf") if value is None else better * float(value)

    return sorted(rows, key=score, reverse=True)
