"""A Keras callback that makes a run folder tell the world how training goes.

It appends events to ``progress.jsonl`` (what the dashboard follows), keeps ``history.csv``,
saves a checkpoint after every epoch so that a killed run can resume, and stops cleanly when
someone drops a ``CANCEL`` file into the run folder (how the app cancels a job that runs in
another process).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import keras

from core.atomic import atomic_path, write_json_atomic
from core.train.runs import CHECKPOINT, HISTORY, Run

CANCEL = "CANCEL"
CHECKPOINT_MODEL = "model.keras"
CHECKPOINT_STATE = "state.json"


def _floats(logs: dict[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class TrainingCancelled(Exception):
    """Raised between batches of a step that has no Keras callback (the feature pass) when
    the run has been asked to stop; training ends the run as cancelled, not failed."""


def request_cancel(run: Run) -> None:
    (run.path / CANCEL).touch()


def cancel_requested(run: Run) -> bool:
    return (run.path / CANCEL).exists()


def checkpoint_state(run: Run) -> dict[str, Any] | None:
    """The last completed epoch's state (``epoch``, ``phase``, best so far), or None."""
    file = run.path / CHECKPOINT / CHECKPOINT_STATE
    if not file.is_file():
        return None
    return json.loads(file.read_text())


class RunProgress(keras.callbacks.Callback):
    """Progress events, history rows, per-epoch checkpoints and cancellation for one phase.

    ``first_epoch`` is where a resumed phase starts; ``phase`` names the stage ("head",
    "fine-tune") so that a two-phase training reads as one story in the log.
    """

    def __init__(self, run: Run, phase: str, epochs: int, first_epoch: int = 0,
                 every_seconds: float = 1.0) -> None:
        super().__init__()
        self.run = run
        self.phase = phase
        self.epochs = epochs
        self.first_epoch = first_epoch
        self.every_seconds = every_seconds
        self.cancelled = False
        self._start = 0.0
        self._last = 0.0
        self._steps = 0

    # -- helpers -------------------------------------------------------------------------------
    def _eta(self, epoch: int, batch: int) -> float | None:
        """Seconds left in this phase, from the pace of the epochs run in this process."""
        steps = max(self._steps, batch + 1)
        done = (epoch - self.first_epoch) + (batch + 1) / steps
        if done <= 0:
            return None
        elapsed = time.time() - self._start
        return elapsed / done * (self.epochs - self.first_epoch - done)

    def _append_history(self, epoch: int, logs: dict[str, float]) -> None:
        file = self.run.path / HISTORY
        row = {"phase": self.phase, "epoch": epoch + 1, **logs}
        new = not file.exists()
        if not new:
            with open(file, newline="") as handle:
                header = next(csv.reader(handle), [])
            if set(header) != set(row):  # a later phase may log other metrics
                row = {key: row.get(key, "") for key in header} | {
                    k: v for k, v in row.items() if k not in header}
        with open(file, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    # -- Keras hooks -----------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._start = time.time()
        self._steps = int(self.params.get("steps") or 0)
        self.run.log("phase_begin", phase=self.phase, epochs=self.epochs,
                     first_epoch=self.first_epoch, steps=self._steps)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if cancel_requested(self.run):
            self.cancelled = True
            self.model.stop_training = True
        now = time.time()
        if now - self._last >= self.every_seconds:
            self._last = now
            epoch = getattr(self, "_epoch", self.first_epoch)
            self.run.log("batch", phase=self.phase, epoch=epoch + 1, epochs=self.epochs,
                         batch=batch + 1, steps=self._steps, eta_s=self._eta(epoch, batch),
                         **_floats(logs))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = _floats(logs)
        self._append_history(epoch, values)
        self._save_checkpoint(epoch)
        self.run.log("epoch", phase=self.phase, epoch=epoch + 1, epochs=self.epochs,
                     eta_s=self._eta(epoch, self._steps - 1), **values)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.run.log("phase_end", phase=self.phase, cancelled=self.cancelled)

    def _save_checkpoint(self, epoch: int) -> None:
        folder = self.run.path / CHECKPOINT
        folder.mkdir(exist_ok=True)
        with atomic_path(folder / CHECKPOINT_MODEL) as tmp:
            self.model.save(tmp)
        write_json_atomic(folder / CHECKPOINT_STATE, {"phase": self.phase, "epoch": epoch + 1})


def checkpoint_model_path(run: Run) -> Path:
    return run.path / CHECKPOINT / CHECKPOINT_MODEL
