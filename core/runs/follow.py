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

from core.errors import BadConfigError
from core.runs.config import TrainConfig
from core.runs.folder import Run
from core.runs.plan import Event, Step, training_plan

#: Typical seconds of each step of a training, from the log of the default MIAS training
#: (``bench/bench_train.py``, 2 CPU cores): the bar gives each step of a run's plan its
#: share of these, so it moves at about the pace of the clock and never goes back.
STEP_SECONDS = {Step.PREPARING: 6.0, Step.PATCHES: 60.0, Step.ENCODING: 10.0, Step.HEAD: 33.0,
                Step.FINE_TUNE: 56.0}
_STEP_NAMES = {Step.PREPARING: "loading and preparing films",
               Step.PATCHES: "pretraining the encoder on patches",
               Step.ENCODING: "encoding films",
               Step.HEAD: "training the head on the encoder's features",
               Step.FINE_TUNE: "fine-tuning the encoder"}
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
    manifest = run.manifest  # one read: followers poll this every second
    status = str(manifest.get("status", "running"))
    tracker = _Tracker(_plan(manifest.get("config")))
    for event in run.events():
        tracker.apply(event)
    progress = tracker.progress
    if status != "running":
        progress.stage, progress.eta_s = status, None
        progress.fraction = 1.0 if status == "done" else progress.fraction
    progress.status = status
    return progress


def _plan(config: Any) -> tuple[Step, ...]:
    """The steps the run goes through, as training plans them; a manifest whose config
    cannot be read (damaged, or from a future version) gets the steps every run has."""
    try:
        return training_plan(TrainConfig.from_manifest(config))
    except (BadConfigError, TypeError, ValueError):
        return (Step.PREPARING, Step.ENCODING, Step.HEAD)


class _Tracker:
    """Where a run is in its plan, event by event. The fine-tuning step begins with a pass
    of the films through the encoder's frozen bottom (``_BOTTOM_SHARE`` of the step)."""

    def __init__(self, plan: tuple[Step, ...]) -> None:
        self.plan = plan
        total = sum(STEP_SECONDS[step] for step in plan)
        self.starts: dict[str, float] = {}
        self.shares: dict[str, float] = {}
        done = 0.0
        for step in plan:
            self.starts[step], self.shares[step] = done / total, STEP_SECONDS[step] / total
            done += STEP_SECONDS[step]
        self.step = Step.PREPARING
        self.clock: tuple[float, float] | None = None  # (time, fraction) the ETA counts from
        self.progress = Progress(status="running", stage=self._label(), fraction=0.0)

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if self.clock is None or kind in (Event.RESUME_BEGIN, Event.RESUME):
            self.clock = (float(event.get("time") or 0.0), self.progress.fraction)
        if kind == Event.DATA:
            self._move(Step.PREPARING, 1.0, "", event)
            self.progress.counts_before = event.get("counts_before")
            self.progress.counts_after = event.get("counts_after")
        elif (kind in (Event.UNFREEZE, Event.RESUME)
              and event.get("phase", Step.FINE_TUNE) == Step.FINE_TUNE):
            self._move(Step.FINE_TUNE, 0.0, "", event)
        elif kind == Event.FEATURES and "total" in event:
            done, total = int(event["done"]), max(int(event["total"]), 1)
            detail = f"{event.get('part')} films, {done} of {total}"
            if self.step == Step.FINE_TUNE:
                self._move(Step.FINE_TUNE, _BOTTOM_SHARE * done / total, f"frozen layers: {detail}",
                           event)
            else:
                self._move(Step.ENCODING, done / total, detail, event)
        elif kind in (Event.BATCH, Event.EPOCH) and event.get("phase") in self.starts:
            self._apply_epoch(event)

    def _apply_epoch(self, event: dict[str, Any]) -> None:
        phase = Step(event["phase"])
        epochs = max(int(event.get("epochs") or 1), 1)
        epoch = int(event.get("epoch") or 1)
        within = 1.0 if event["event"] == Event.EPOCH else \
            int(event.get("batch") or 0) / max(int(event.get("steps") or 1), 1)
        done = min((epoch - 1 + within) / epochs, 1.0)
        detail = f"epoch {epoch} of {epochs}"
        if event["event"] == Event.BATCH:
            detail += f", batch {event.get('batch')} of {event.get('steps')}"
        if phase == Step.FINE_TUNE:
            done = _BOTTOM_SHARE + (1.0 - _BOTTOM_SHARE) * done
        self._move(phase, done, detail, event)
        if event["event"] == Event.EPOCH:  # a resumed phase redoes epochs: its rows replace theirs
            self.progress.curves = [row for row in self.progress.curves
                                    if not (row["phase"] == phase and row["epoch"] >= epoch)]
            self.progress.curves.append({"phase": phase, "epoch": epoch, **{
                k: v for k, v in event.items() if k not in _CURVE_SKIP}})

    def _move(self, step: Step, within: float, detail: str, event: dict[str, Any]) -> None:
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
