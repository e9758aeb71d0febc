"""What someone following a run sees: its stage, how far it is, how long is left, and the
curves so far, read from the run's ``progress.jsonl`` alone.

The log is the only channel between the training process and its followers (a page, a
second tab, the CLI), so this reads it from the start each time: a run logs a few hundred
lines at most, and a follower that joins late sees the same picture as one that was there
from the beginning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.train.runs import Run

#: Share of the progress bar given to each step before the epochs (the feature pass of a
#: big set is a real part of the wait; the rest is the epochs).
_DATA_SHARE = 0.05
_FEATURES_SHARE = 0.25
_CURVE_SKIP = {"time", "event", "phase", "epoch", "epochs", "eta_s", "batch", "steps"}


@dataclass
class Progress:
    """A run's state as its log tells it. ``fraction`` runs from 0 to 1 over the whole run;
    ``curves`` holds one row per finished epoch (``phase``, ``epoch`` and every logged
    number, such as ``loss`` and ``val_loss``)."""

    status: str
    stage: str
    fraction: float
    detail: str = ""
    eta_s: float | None = None
    curves: list[dict[str, Any]] = field(default_factory=list)
    counts_before: list[int] | None = None
    counts_after: list[int] | None = None


def follow(run: Run) -> Progress:
    """Read the run's log and manifest into one ``Progress``."""
    status = str(run.manifest.get("status", "running"))
    progress = Progress(status=status, stage="loading and preparing films", fraction=0.0)
    for event in run.events():
        _apply(progress, event)
    if status != "running":
        progress.stage, progress.eta_s = status, None
        progress.fraction = 1.0 if status == "done" else progress.fraction
    return progress


def _apply(progress: Progress, event: dict[str, Any]) -> None:
    kind = event.get("event")
    if kind == "data":
        progress.stage, progress.fraction = "encoding films", _DATA_SHARE
        progress.detail = f"{event.get('train')} training films ({event.get('fit_samples')} " \
                          f"after balancing), {event.get('val')} validation films"
        progress.counts_before = event.get("counts_before")
        progress.counts_after = event.get("counts_after")
    elif kind == "features" and "total" in event:
        done, total = int(event["done"]), max(int(event["total"]), 1)
        progress.stage = f"encoding {event.get('part')} films"
        progress.detail = f"{done} of {total}"
        progress.fraction = _DATA_SHARE + _FEATURES_SHARE * done / total
    elif kind in ("batch", "epoch"):
        _apply_epoch(progress, event)
    elif kind == "unfreeze":
        progress.stage = f"fine-tuning the top {event.get('layers')} encoder layers"


def _apply_epoch(progress: Progress, event: dict[str, Any]) -> None:
    epochs = max(int(event.get("epochs") or 1), 1)
    epoch = int(event.get("epoch") or 1)
    within = 1.0 if event["event"] == "epoch" else \
        int(event.get("batch") or 0) / max(int(event.get("steps") or 1), 1)
    done = min((epoch - 1 + within) / epochs, 1.0)
    start = _DATA_SHARE + _FEATURES_SHARE
    progress.fraction = start + (1.0 - start) * done
    progress.stage = f"training ({event.get('phase')})"
    progress.detail = f"epoch {epoch} of {epochs}"
    if event["event"] == "batch":
        progress.detail += f", batch {event.get('batch')} of {event.get('steps')}"
    progress.eta_s = event.get("eta_s")
    if event["event"] == "epoch":  # a resumed phase redoes epochs: its rows replace theirs
        progress.curves = [row for row in progress.curves
                           if not (row["phase"] == event.get("phase") and row["epoch"] >= epoch)]
        progress.curves.append({"phase": event.get("phase"), "epoch": epoch,
                                **{k: v for k, v in event.items() if k not in _CURVE_SKIP}})
