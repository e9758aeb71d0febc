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

from core.runs.folder import Run

#: Typical seconds of each step of a training, from the log of the default MIAS training
#: (``bench/bench_train.py``, 2 CPU cores): the bar gives each step of a run's plan its
#: share of these, so it moves at about the pace of the clock and never goes back.
_STEP_SECONDS = {"preparing": 6.0, "patches": 60.0, "encoding": 10.0, "head": 33.0,
                 "fine-tune": 56.0}
_STEP_NAMES = {"preparing": "loading and preparing films",
               "patches": "pretraining the encoder on patches",
               "encoding": "encoding films", "head": "training the head on the encoder's features",
               "fine-tune": "fine-tuning the encoder"}
#: Share of the fine-tuning step taken by its pass through the frozen bottom (7 of 56 s).
_BOTTOM_SHARE = 0.1
#: Share of the run done before an estimate of the time left is given (earlier ones swing).
_ETA_AFTER = 0.05
#: Logged fields that are not curves (``eta_s``: a per-phase estimate older logs carry).
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
    tracker = _Tracker(_plan(run.manifest.get("config") or {}))
    for event in run.events():
        tracker.apply(event)
    progress = tracker.progress
    if status != "running":
        progress.stage, progress.eta_s = status, None
        progress.fraction = 1.0 if status == "done" else progress.fraction
    progress.status = status
    return progress


def _plan(config: dict[str, Any]) -> list[str]:
    """The steps a run of this config goes through, in order."""
    steps = ["preparing"]
    if config.get("patch_epochs"):
        steps.append("patches")
    steps += ["encoding", "head"]
    if config.get("fine_tune_layers") and config.get("fine_tune_epochs"):
        steps.append("fine-tune")
    return steps


class _Tracker:
    """Where a run is in its plan, event by event. The fine-tuning step begins with a pass
    of the films through the encoder's frozen bottom (``_BOTTOM_SHARE`` of the step)."""

    def __init__(self, plan: list[str]) -> None:
        self.plan = plan
        total = sum(_STEP_SECONDS[step] for step in plan)
        self.starts: dict[str, float] = {}
        self.shares: dict[str, float] = {}
        done = 0.0
        for step in plan:
            self.starts[step], self.shares[step] = done / total, _STEP_SECONDS[step] / total
            done += _STEP_SECONDS[step]
        self.step = "preparing"
        self.clock: tuple[float, float] | None = None  # (time, fraction) the ETA counts from
        self.progress = Progress(status="running", stage=self._label(), fraction=0.0)

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if self.clock is None or kind in ("resume_begin", "resume"):
            self.clock = (float(event.get("time") or 0.0), self.progress.fraction)
        if kind == "data":
            self._move("preparing", 1.0, "", event)
            self.progress.counts_before = event.get("counts_before")
            self.progress.counts_after = event.get("counts_after")
        elif kind in ("unfreeze", "resume") and event.get("phase", "fine-tune") == "fine-tune":
            self._move("fine-tune", 0.0, "", event)
        elif kind == "features" and "total" in event:
            done, total = int(event["done"]), max(int(event["total"]), 1)
            detail = f"{event.get('part')} films, {done} of {total}"
            if self.step == "fine-tune":
                self._move("fine-tune", _BOTTOM_SHARE * done / total, f"frozen layers: {detail}",
                           event)
            else:
                self._move("encoding", done / total, detail, event)
        elif kind in ("batch", "epoch") and event.get("phase") in self.starts:
            self._apply_epoch(event)

    def _apply_epoch(self, event: dict[str, Any]) -> None:
        phase = str(event["phase"])
        epochs = max(int(event.get("epochs") or 1), 1)
        epoch = int(event.get("epoch") or 1)
        within = 1.0 if event["event"] == "epoch" else \
            int(event.get("batch") or 0) / max(int(event.get("steps") or 1), 1)
        done = min((epoch - 1 + within) / epochs, 1.0)
        detail = f"epoch {epoch} of {epochs}"
        if event["event"] == "batch":
            detail += f", batch {event.get('batch')} of {event.get('steps')}"
        if phase == "fine-tune":
            done = _BOTTOM_SHARE + (1.0 - _BOTTOM_SHARE) * done
        self._move(phase, done, detail, event)
        if event["event"] == "epoch":  # a resumed phase redoes epochs: its rows replace theirs
            self.progress.curves = [row for row in self.progress.curves
                                    if not (row["phase"] == phase and row["epoch"] >= epoch)]
            self.progress.curves.append({"phase": phase, "epoch": epoch, **{
                k: v for k, v in event.items() if k not in _CURVE_SKIP}})

    def _move(self, step: str, within: float, detail: str, event: dict[str, Any]) -> None:
        if step not in self.starts:  # a step the plan does not know (an older log)
            return
        self.step = step
        fraction = self.starts[step] + self.shares[step] * min(max(within, 0.0), 1.0)
        self.progress.fraction = max(self.progress.fraction, fraction)
        self.progress.stage = self._label()
        self.progress.detail = detail
        self.progress.eta_s = self._eta(float(event.get("time") or 0.0))

    def _label(self) -> str:
        number = self.plan.index(self.step) + 1
        return f"step {number} of {len(self.plan)}: {_STEP_NAMES[self.step]}"

    def _eta(self, now: float) -> float | None:
        """Seconds left for the whole run, at the pace since the clock started."""
        if self.clock is None:
            return None
        since, at = self.clock
        done = self.progress.fraction - at
        if done < _ETA_AFTER or now <= since:
            return None
        return (now - since) / done * (1.0 - self.progress.fraction)
