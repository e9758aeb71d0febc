"""A Keras callback that makes a run folder tell the world how training goes.

It appends events to ``progress.jsonl`` (what the dashboard follows), keeps ``history.csv``,
saves a checkpoint after every epoch so that a killed run can resume, and stops cleanly when
someone drops a ``CANCEL`` file into the run folder (how the app cancels a job that runs in
another process).

A process may be killed at any instant, so every file here is replaced atomically, and the
checkpoint is two files that must agree: each epoch's model gets its own name, and only
once it is complete does ``state.json`` (itself replaced in one step) name it; older models
are removed after that. A kill at any point therefore leaves a state naming a complete model
of the epoch it states.
"""

from __future__ import annotations

import csv
import json
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import keras

from core.atomic import WriteError, atomic_path, write_json_atomic
from core.errors import BadConfigError
from core.runs.folder import CHECKPOINT, HISTORY, Run
from core.runs.plan import Event, Step

CANCEL = "CANCEL"
#: The checkpoint model of runs written before models were named by epoch.
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
    """The last completed epoch's state (``phase``, ``epoch`` and its ``model`` file), or
    None when no epoch has completed."""
    file = run.path / CHECKPOINT / CHECKPOINT_STATE
    if not file.is_file():
        return None
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadConfigError(f"{file}: unreadable checkpoint state ({error})") from None
    if not isinstance(state, dict) or not {"phase", "epoch"} <= set(state):
        raise BadConfigError(f"{file}: not a checkpoint state (needs phase and epoch)")
    return state


class RunProgress(keras.callbacks.Callback):
    """Progress events, history rows, per-epoch checkpoints and cancellation for one phase.

    ``first_epoch`` is where a resumed phase starts; ``phase`` names the stage (``Step.HEAD``,
    ``Step.FINE_TUNE``) so that a two-phase training reads as one story in the log.
    """

    def __init__(self, run: Run, phase: Step, epochs: int, first_epoch: int = 0,
                 every_seconds: float = 1.0) -> None:
        super().__init__()
        self.run = run
        self.phase = phase
        self.epochs = epochs
        self.first_epoch = first_epoch
        self.every_seconds = every_seconds
        self.cancelled = False
        self._last = 0.0
        self._steps = 0

    # -- helpers -------------------------------------------------------------------------------
    def _append_history(self, epoch: int, logs: dict[str, float]) -> None:
        """Add this epoch's row by rewriting the (small) file atomically: a kill never
        leaves half a row, a resumed phase replaces the rows of the epochs it redoes
        instead of repeating them, and a later phase's new metrics widen the header."""
        file = self.run.path / HISTORY
        row: dict[str, Any] = {"phase": self.phase, "epoch": epoch + 1, **logs}
        rows = [old for old in _history_rows(file)
                if not (old.get("phase") == self.phase and _epoch(old) >= epoch + 1)]
        rows.append(row)
        columns = list(dict.fromkeys(key for old in rows for key in old))
        with atomic_path(file) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    # -- Keras hooks -----------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._steps = int(self.params.get("steps") or 0)
        self.run.log(Event.PHASE_BEGIN, phase=self.phase, epochs=self.epochs,
                     first_epoch=self.first_epoch, steps=self._steps)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if cancel_requested(self.run):
            self.cancelled = True
            self.model.stop_training = True
        now = time.time()
        if now - self._last >= self.every_seconds:
            self._last = now
            epoch = getattr(self, "_epoch", self.first_epoch)
            self.run.log(Event.BATCH, phase=self.phase, epoch=epoch + 1, epochs=self.epochs,
                         batch=batch + 1, steps=self._steps, **_floats(logs))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = _floats(logs)
        self._append_history(epoch, values)
        # Logged before the checkpoint names this epoch, so a kill in between leaves the
        # epoch logged twice (the resumed run redoes it; readers keep the last) and never
        # leaves a checkpointed epoch missing from the log.
        self.run.log(Event.EPOCH, phase=self.phase, epoch=epoch + 1, epochs=self.epochs, **values)
        self._save_checkpoint(epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.run.log(Event.PHASE_END, phase=self.phase, cancelled=self.cancelled)

    def _save_checkpoint(self, epoch: int) -> None:
        folder = self.run.path / CHECKPOINT
        try:
            folder.mkdir(exist_ok=True)
        except OSError as error:
            raise WriteError(folder, error) from error
        name = f"model-{self.phase}-{epoch + 1}.keras"
        with atomic_path(folder / name) as tmp:
            self.model.save(tmp)
        write_json_atomic(folder / CHECKPOINT_STATE,
                          {"phase": self.phase, "epoch": epoch + 1, "model": name})
        for old in folder.iterdir():  # earlier epochs' models, and temporary files of kills
            if old.name not in (name, CHECKPOINT_STATE):
                with suppress(OSError):  # the checkpoint is saved: leftovers only cost disk
                    old.unlink()


def checkpoint_model_path(run: Run) -> Path:
    """The model file of the last completed epoch (see ``checkpoint_state``)."""
    state = checkpoint_state(run) or {}
    return run.path / CHECKPOINT / str(state.get("model", CHECKPOINT_MODEL))


def _history_rows(file: Path) -> list[dict[str, str]]:
    if not file.is_file():
        return []
    with open(file, newline="", encoding="utf-8") as handle:
        return [{key: value for key, value in row.items() if key} for row in csv.DictReader(handle)]


def _epoch(row: dict[str, str]) -> int:
    try:
        return int(float(row.get("epoch") or 0))
    except ValueError:
        return 0
