"""Patient-grouped k-fold cross-validation: k runs, each scored on the fold it never saw.

One split of 83 films (the first paper's protocol) says little; k folds give every film
one turn in a test set and a spread across folds. Each fold is an ordinary run folder.

Every cross-validation also leaves its summary (per-fold headline figures, mean, standard
deviation, 95% interval of the mean, and the configuration, ``split_by_patient`` included)
in ``<runs root>/cv/``, where the Runs page finds it. Two summaries whose configurations
differ only in ``split_by_patient`` are a leakage measurement: the same model scored on a
film-level split (the first paper's protocol, where a woman's other film may sit in
training) and on the patient-grouped split; ``split_pairs`` finds them and
``split_comparison`` sets their figures side by side with the difference.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import make_folder, write_json_atomic
from core.errors import BadConfigError
from core.metrics.headline import HEADLINE
from core.runs.config import TrainConfig
from core.runs.folder import default_root, utc_now

log = logging.getLogger(__name__)

#: The folder under the runs root that holds the saved cross-validation summaries (one JSON
#: file each). ``list_runs`` never looks inside it: it holds no manifest.
CV_FOLDER = "cv"
#: Written into every saved summary, so a later format can still tell old files apart.
SUMMARY_KIND = "cross-validation"
#: Confidence of the intervals of the mean across folds.
CONFIDENCE = 0.95


def summarise_folds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample standard deviation and 95% t-interval of the mean of each headline
    figure across folds (None where undefined), and the mean always-majority baseline of
    each figure that has one."""
    mean, std, interval = {}, {}, {}
    for metric in HEADLINE:
        values = [r[metric.key] for r in results if r.get(metric.key) is not None]
        mean[metric.key] = float(np.mean(values)) if values else None
        std[metric.key] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        interval[metric.key] = mean_interval(values)
    baseline = [r["baselines"]["majority"] for r in results]
    return {"mean": mean, "std": std, "interval": interval, "baseline_majority_mean": {
        metric.key: float(np.mean([b[metric.key] for b in baseline]))
        for metric in HEADLINE if metric.majority}}


def _t_quantile(df: float) -> float:
    """The two-sided ``CONFIDENCE`` quantile of Student's t with ``df`` degrees of freedom
    (SciPy comes with scikit-learn; imported here only, so the module loads without it)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def mean_interval(values: Sequence[float]) -> list[float] | None:
    """The 95% t-interval of the mean of ``values`` (the folds' figures); None for fewer
    than two values. Folds are few (2 to 10), so t, not the normal's 1.96."""
    if len(values) < 2:
        return None
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = _t_quantile(len(values) - 1) * sd / math.sqrt(len(values))
    return [mean - half, mean + half]


def difference_interval(first: Sequence[float], second: Sequence[float]) -> list[float] | None:
    """The 95% Welch interval of mean(first) - mean(second). The two cross-validations split
    the films differently, so their folds are not paired: each mean keeps its own variance,
    with the Welch-Satterthwaite degrees of freedom. None with fewer than two values a side."""
    if len(first) < 2 or len(second) < 2:
        return None
    a, b = np.asarray(first, float), np.asarray(second, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    difference = float(a.mean() - b.mean())
    if va + vb == 0:
        return [difference, difference]
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = _t_quantile(df) * math.sqrt(va + vb)
    return [difference - half, difference + half]


def run_cv(base: TrainConfig, folds: int = 5, out_root: Path | None = None,
           save: bool = True) -> dict[str, Any]:
    """Train and test ``folds`` runs; returns per-fold test figures and their summary, and
    (``save``) keeps the summary in ``<out_root>/cv/`` (``saved`` names the file)."""
    if folds < 2:
        raise BadConfigError(f"cross-validation needs at least 2 folds, got {folds}")
    import keras

    from core.evaluate.evaluate import evaluate_run
    from core.train.fit import train

    results, synthetic = [], False
    for fold in range(folds):
        log.info("fold %d of %d", fold + 1, folds)
        run = train(base.with_overrides(folds=folds, fold=fold), out_root)
        manifest = run.manifest
        if manifest["status"] != "done":
            raise BadConfigError(f"fold {fold}: run {run.path} ended {manifest['status']}")
        synthetic = synthetic or bool((manifest.get("dataset") or {}).get("synthetic"))
        results.append({"fold": fold, "run": str(run.path), **evaluate_run(run)})
        keras.backend.clear_session()  # each fold's graphs would otherwise pile up in memory
    # The settings travel with the figures: a saved result then says what it measured even
    # after the defaults have moved on.
    document = {"config": base.to_dict(), "synthetic": synthetic, "folds": results,
                **summarise_folds(results)}
    if save:
        document["saved"] = str(save_summary(document, out_root))
    return document


def run_split_pair(base: TrainConfig, folds: int = 5,
                   out_root: Path | None = None) -> dict[str, Any]:
    """The same configuration cross-validated twice, on the patient-grouped split and on a
    film-level split (the first paper's protocol), and the two set side by side: what
    leakage between a woman's films is worth, measured rather than told."""
    patient = run_cv(base.with_overrides(split_by_patient=True), folds, out_root)
    film = run_cv(base.with_overrides(split_by_patient=False), folds, out_root)
    return {"patient_grouped": patient, "film_level": film,
            "comparison": split_comparison(film, patient)}


# -- saved summaries ------------------------------------------------------------------------------
def cv_folder(root: Path | None = None) -> Path:
    """Where the summaries of cross-validations into runs root ``root`` are kept."""
    return Path(root or default_root()) / CV_FOLDER


def slim_summary(document: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a ``run_cv`` document: each fold's run, test-film count and headline
    figures (not its curves and tables, which its run folder keeps), the summary and the
    configuration."""
    keys = [metric.key for metric in HEADLINE]
    folds = [{"fold": fold.get("fold"), "run": fold.get("run"), "n": fold.get("n"),
              **{key: fold.get(key) for key in keys}} for fold in document["folds"]]
    return {"kind": SUMMARY_KIND, "created": utc_now(), "config": document["config"],
            "synthetic": bool(document.get("synthetic")), "folds": folds,
            **{part: document.get(part) for part in
               ("mean", "std", "interval", "baseline_majority_mean")}}


def save_summary(document: Mapping[str, Any], root: Path | None = None) -> Path:
    """Write the slim summary of a ``run_cv`` document into ``cv_folder(root)`` under a new
    name (``<stamp>-<dataset>-<model>-<split>.json``), never over an earlier one."""
    folder = make_folder(cv_folder(root), "cross-validation summaries folder")
    config = document["config"]
    split = "patients" if config.get("split_by_patient", True) else "films"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{config.get('dataset')}-{config.get('model')}-"
                  f"{config.get('backbone')}-{len(document['folds'])}folds-{split}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = folder / f"{stamp}-{slug}{'' if attempt == 0 else f'-{attempt}'}.json"
        if not path.exists():
            write_json_atomic(path, slim_summary(document))
            return path
    raise BadConfigError(f"{folder}: could not find a free name for {stamp}-{slug}")


def read_summaries(root: Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The saved summaries under runs root ``root``, newest first, each with ``file`` (its
    path), and one line for each file that is not a readable summary (it is left out)."""
    folder = cv_folder(root)
    if not folder.is_dir():
        return [], []
    summaries, problems = [], []
    for file in sorted(folder.glob("*.json"), key=_written, reverse=True):
        if file.name.startswith("."):  # a write in progress
            continue
        try:
            summary = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as error:
            problems.append(f"{file}: unreadable ({type(error).__name__})")
            continue
        fault = _fault(summary)
        if fault:
            problems.append(f"{file}: not a cross-validation summary ({fault})")
            continue
        summaries.append({**summary, "file": str(file)})
    return summaries, problems


def _written(file: Path) -> tuple[int, str]:
    try:
        return file.stat().st_mtime_ns, file.name
    except OSError:
        return 0, file.name


def _fault(summary: Any) -> str:
    if not isinstance(summary, dict):
        return "not a JSON object"
    if not isinstance(summary.get("config"), dict):
        return "no config"
    if not isinstance(summary["config"].get("split_by_patient"), bool):
        return "no split_by_patient in its config"
    folds = summary.get("folds")
    if not isinstance(folds, list) or not all(isinstance(fold, dict) for fold in folds):
        return "no folds"
    if not isinstance(summary.get("mean"), dict):
        return "no mean"
    return ""


def _pair_key(summary: Mapping[str, Any]) -> str:
    """Everything that must match for two summaries to be a pair: the configuration but its
    split, and the fold count."""
    config = {key: value for key, value in summary["config"].items()
              if key != "split_by_patient"}
    return json.dumps([config, len(summary["folds"])], sort_keys=True, default=str)


def split_pairs(summaries: Sequence[Mapping[str, Any]]
                ) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(film-level, patient-grouped) pairs of summaries whose configurations differ only in
    ``split_by_patient`` (and have as many folds), newest pair first. A configuration
    measured more than once pairs its newest film-level with its newest patient-grouped
    summary; one without its other half makes no pair."""
    newest: dict[str, dict[bool, Mapping[str, Any]]] = {}
    order: list[str] = []
    for summary in sorted(summaries, key=lambda s: str(s.get("created", "")), reverse=True):
        key = _pair_key(summary)
        if key not in newest:
            newest[key] = {}
            order.append(key)
        newest[key].setdefault(summary["config"]["split_by_patient"], summary)
    return [(newest[key][False], newest[key][True]) for key in order if len(newest[key]) == 2]


def _fold_values(summary: Mapping[str, Any], key: str) -> list[float]:
    return [float(fold[key]) for fold in summary["folds"]
            if isinstance(fold.get(key), int | float) and math.isfinite(fold[key])]


def split_comparison(film: Mapping[str, Any],
                     patient: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per headline figure both summaries have: its label, each split's mean and
    95% interval across folds, and film-level minus patient-grouped with its Welch
    interval (positive: the film-level split scores higher, which is what leakage does)."""
    rows = []
    for metric in HEADLINE:
        film_values = _fold_values(film, metric.key)
        patient_values = _fold_values(patient, metric.key)
        if not film_values or not patient_values:
            continue
        film_mean, patient_mean = float(np.mean(film_values)), float(np.mean(patient_values))
        rows.append({"key": metric.key, "figure": metric.label,
                     "film_level": film_mean, "film_level_interval": mean_interval(film_values),
                     "patient_grouped": patient_mean,
                     "patient_grouped_interval": mean_interval(patient_values),
                     "difference": film_mean - patient_mean,
                     "difference_interval": difference_interval(film_values, patient_values)})
    return rows
