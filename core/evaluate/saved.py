"""A run's evaluation, computed once and kept in the run folder.

Evaluating reloads the model and re-reads every test film, which takes seconds to minutes;
the figures only change when the model does. So the evaluation and its report are written
into ``<run>/report/`` and read back while they are newer than the model file: the Evaluate
page is instant on a second visit, the downloadable report always exists, and the Runs
table can show test figures without evaluating anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.errors import BadConfigError
from core.evaluate.evaluate import evaluate_run
from core.evaluate.report import write_report
from core.metrics.headline import HEADLINE
from core.metrics.per_class import rows_with_f1_intervals
from core.metrics.scores import classification_report, report_rows
from core.runs.files import served_file
from core.runs.folder import REPORT, Run, saved_evaluation

GALLERY = "gallery"


def run_evaluation(run: Run, again: bool = False) -> dict[str, Any]:
    """The run's evaluation on its own test split: the saved one while it is newer than the
    model, otherwise a fresh one, saved with its report (tables, plots, gallery, HTML).
    ``again``: a fresh one even so (an evaluation saved by an older version lacks figures
    added since, such as the operating points, and the model has not changed to say so)."""
    status = run.manifest.get("status")
    if status != "done":
        raise BadConfigError(f"{run.name}: only a finished run can be evaluated (status "
                             f"{status!r})")
    saved = None if again else saved_evaluation(run)
    if saved is not None:
        return _rebased(saved, run)
    report = run.path / REPORT
    evaluation = evaluate_run(run, gallery_dir=report / GALLERY)
    write_report(evaluation, report, gallery=evaluation.get("gallery") or ())
    return evaluation


def _rebased(evaluation: dict[str, Any], run: Run) -> dict[str, Any]:
    """Gallery paths pointing into this run's own report, wherever the folder was when the
    evaluation was written (runs are copied and moved as whole folders); an overlay that
    the run cannot serve (missing, or a link in a copied folder) is left out, and a film
    view it cannot serve is dropped from its entry (the page then shows the PNG alone)."""
    gallery = []
    for entry in evaluation.get("gallery") or ():
        file = _gallery_file(run, entry.get("overlay"))
        if file is None:
            continue
        rebased = {key: value for key, value in entry.items() if key != "view"}
        view = _gallery_file(run, entry.get("view"))
        gallery.append({**rebased, "overlay": str(file),
                        **({"view": str(view)} if view is not None else {})})
    return {**evaluation, "gallery": gallery}


def _gallery_file(run: Run, recorded: Any) -> Path | None:
    if not recorded:
        return None
    return served_file(run, Path(REPORT, GALLERY, Path(str(recorded)).name))


def headline_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """Each headline figure (in the registry's order, keyed ``figure``) beside its 95%
    interval and what two models that learnt nothing score on the same films: always
    answering the training split's majority class, and chance (a uniform guess among the
    classes; 0.5 for an AUC; a random point in the breast for the pointing game). Figures
    that do not apply here (None) are left out."""
    intervals = evaluation.get("confidence_intervals") or {}
    rows = []
    for metric in HEADLINE:
        if evaluation.get(metric.key) is None:
            continue
        interval = intervals.get(metric.key) or {}
        rows.append({"figure": metric.key, "model": evaluation[metric.key],
                     "ci_low": interval.get("low"), "ci_high": interval.get("high"),
                     "majority": metric.majority_baseline(evaluation),
                     "chance": metric.chance_baseline(evaluation)})
    return rows


def report_table(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """The first paper's classification report (per class, then the micro, macro and
    weighted averages), rebuilt from the evaluation's confusion matrix so that it can never
    disagree with it, each F1 with its patient-level 95% interval (``f1_low``, ``f1_high``;
    None in an evaluation saved before they were kept)."""
    cm = np.asarray(evaluation["confusion_matrix"], dtype=np.int64)
    actual, predicted = np.indices(cm.shape)
    rows = report_rows(classification_report(np.repeat(actual.ravel(), cm.ravel()),
                                             np.repeat(predicted.ravel(), cm.ravel()),
                                             list(evaluation["labels"])))
    return rows_with_f1_intervals(rows, evaluation)
