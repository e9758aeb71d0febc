"""A training run's plan and the events its progress log carries: the vocabulary shared by
the process that trains (``core.train``) and everyone who follows it (``core.runs.follow``,
the app, the CLI).

Why here: the follower once re-derived the plan from the config by its own rules and drifted
from what training did (a fine-tuning phase of 0 epochs ran in training but not in the
follower's plan), and event names were bare strings typed in three writers and one reader.
Now both sides call ``training_plan`` and name events by ``Event``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Step(StrEnum):
    """The steps of a training run, in the order they happen. ``HEAD``, ``FINE_TUNE`` and
    ``PATCHES`` are also the ``phase`` of the epochs logged in them and of a checkpoint."""

    PREPARING = "preparing"
    PATCHES = "patches"
    ENCODING = "encoding"
    HEAD = "head"
    FINE_TUNE = "fine-tune"


class Event(StrEnum):
    """The ``event`` of each line of a run's ``progress.jsonl``."""

    DATA = "data"  # the films are split, read and balanced: counts before and after
    PATCHES = "patches"  # the patch phase's data, or why it was skipped or reused
    FEATURES = "features"  # films through a frozen encoder (part, done, total)
    PHASE_BEGIN = "phase_begin"
    BATCH = "batch"
    EPOCH = "epoch"  # one finished epoch with its logged figures
    PHASE_END = "phase_end"
    UNFREEZE = "unfreeze"  # fine-tuning begins: the layers made trainable
    RESUME_BEGIN = "resume_begin"  # a stopped run starts again
    RESUME = "resume"  # a phase continues from its checkpoint
    END = "end"  # the run's final status


class PlanSettings(Protocol):
    """The config fields a plan depends on (``TrainConfig`` has them)."""

    patch_epochs: int
    fine_tune_layers: int
    fine_tune_epochs: int


def training_plan(settings: PlanSettings) -> tuple[Step, ...]:
    """The steps a run of these settings goes through, in order. Training runs a step
    exactly when it is in the plan; a follower sizes its progress bar by the same list."""
    steps = [Step.PREPARING]
    if settings.patch_epochs:
        steps.append(Step.PATCHES)
    steps += [Step.ENCODING, Step.HEAD]
    if settings.fine_tune_layers and settings.fine_tune_epochs:
        steps.append(Step.FINE_TUNE)
    return tuple(steps)
