"""How long a training will take and how much memory it will hold, before it starts: the
measured pace of earlier runs, scaled to the new run's films, input size and epochs.

Why from earlier runs: the time of a training is dominated by things nothing in the config
says (this machine's cores, the backbone's cost, a busy neighbour), so the only honest
figure is one measured here. Every finished run already logs when each epoch ended
(``progress.jsonl``) and records its seconds and, since this module, its peak memory
(``peak_memory_gb`` in the manifest, ``peak_memory_gb()`` below); ``measured_pace`` reads
those into a ``Pace``, and ``estimate`` scales the most similar one:

* each epoch phase (patches, head, fine-tuning) at its steady pace (the median epoch), per
  sample and epoch, times the new run's samples and epochs and the ratio of input areas
  (patch areas for patches);
* what a first epoch takes beyond the steady pace (building and tracing the graph) once,
  whatever the films;
* everything else (reading and preprocessing films, encoding them, scoring and saving) in
  proportion to the films read;
* memory: a fixed runtime floor, the films held in memory (one byte per pixel), and the rest
  of the measured peak (model and activations) in proportion to the input area.

The epochs counted are those configured: early stopping (``patience``) can end a run sooner,
so the time is an upper bound. With no measured run here it falls back to the documented
figure of the default training (``python bench/bench_train.py``, the README's Speed table),
and says so.
"""

from __future__ import annotations

import math
import resource
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from core.errors import BadConfigError, MammoError
from core.runs.config import TrainConfig
from core.runs.folder import Run
from core.runs.follow import STEP_SECONDS
from core.runs.plan import Event, Step, training_plan

#: The phases made of epochs, whose pace is measured per sample and epoch.
EPOCH_PHASES = (Step.PATCHES, Step.HEAD, Step.FINE_TUNE)
#: Resident memory of a training process before any film or model activation: Python,
#: TensorFlow, Keras and MobileNetV2 built at 512 px (0.77 GB measured with
#: ``resource.getrusage`` after ``build_backbone("mobilenet_v2", 512, "none")``, 2 CPU cores).
RUNTIME_FLOOR_GB = 0.75
GB = 1024 ** 3


@dataclass(frozen=True)
class DataSize:
    """What an estimate needs of a dataset: its films, classes and largest class (the
    largest class sizes a balancing augmentation)."""

    films: int
    classes: int
    largest_class: int

    @classmethod
    def of(cls, labels: Sequence[int], classes: int) -> DataSize:
        counts = [0] * max(classes, 1)
        for label in labels:
            counts[int(label)] += 1
        return cls(films=len(labels), classes=classes, largest_class=max(counts))


@dataclass(frozen=True)
class Samples:
    """How many films a run of a config reads and how many samples each epoch sees."""

    read: int  # films read: the training and validation parts
    fit: int  # the training part, after any balancing augmentation
    val: int

    @property
    def per_epoch(self) -> int:
        return self.fit + self.val


def samples_of(config: TrainConfig, data: DataSize) -> Samples:
    """The parts a run of ``config`` on ``data`` trains on, as the split will make them
    (to within rounding: the split groups films by patient)."""
    held_out = 1.0 / config.folds if config.folds > 1 else config.test_size
    read = max(round(data.films * (1.0 - held_out)), 1)
    val = round(read * config.val_fraction)
    train = max(read - val, 1)
    fit = train
    if config.balance == "augment":
        share = data.largest_class / max(data.films, 1)
        grown = config.augment_target or round(share * train * data.classes)
        fit = max(train, grown)
    return Samples(read=read, fit=fit, val=val)


@dataclass(frozen=True)
class Pace:
    """One training's measured pace. ``epoch_s`` is the steady seconds of one epoch of each
    phase that ran, per sample (head, fine-tuning: the training and validation samples;
    patches: per film read, since patches are cut from the films); ``first_epochs_s`` what
    the phases' first epochs took beyond that pace (tracing: once per run); ``other_s``
    every other second of the run; ``patches_per_lesion`` and ``patch_size`` size the
    patch phase it measured."""

    source: str
    model: str
    backbone: str
    image_size: int
    patch_size: int
    patches_per_lesion: int
    films_read: int
    seconds: float
    other_s: float
    epoch_s: Mapping[Step, float] = field(default_factory=dict)
    first_epochs_s: float = 0.0
    peak_memory_gb: float | None = None
    measured_here: bool = True

    def covers(self, config: TrainConfig) -> bool:
        """Whether every epoch phase ``config`` goes through was measured in this run."""
        return all(step in self.epoch_s for step in training_plan(config)
                   if step in EPOCH_PHASES)


def _documented() -> Pace:
    """The README's figure for the default training (256 mini-MIAS films, 512 px, 2 CPU
    cores: 2.8 min and 2.78 GB, ``python bench/bench_train.py``), split into its steps as
    that run's log split it (``STEP_SECONDS``, what the progress bar shares its length by),
    on the shared films (166 of them NORM, the largest class). Its log was not kept, so the epochs are counted as configured (10 patch, 30 head and 8
    fine-tuning epochs) and its films as the default split makes them (192 read, 154 in
    the training part)."""
    total = 2.8 * 60
    defaults = TrainConfig()
    samples = samples_of(defaults, DataSize(films=256, classes=7, largest_class=166))
    fine_tune = STEP_SECONDS[Step.FINE_TUNE] * 0.9  # its first tenth is the frozen pass
    epochs = {Step.PATCHES: (STEP_SECONDS[Step.PATCHES], defaults.patch_epochs, samples.read),
              Step.HEAD: (STEP_SECONDS[Step.HEAD], defaults.epochs, samples.per_epoch),
              Step.FINE_TUNE: (fine_tune, defaults.fine_tune_epochs, samples.per_epoch)}
    return Pace(
        source="the default training's documented figure (python bench/bench_train.py: "
               "2.8 min and 2.78 GB for 256 mini-MIAS films at 512 px on 2 CPU cores)",
        model=defaults.model, backbone=defaults.backbone, image_size=defaults.image_size,
        patch_size=defaults.patch_size, patches_per_lesion=defaults.patches_per_lesion,
        films_read=samples.read, seconds=total,
        other_s=total - sum(seconds for seconds, _, _ in epochs.values()),
        epoch_s={step: seconds / count / per for step, (seconds, count, per) in epochs.items()},
        peak_memory_gb=2.78, measured_here=False)


DOCUMENTED = _documented()


def peak_memory_gb() -> float | None:
    """This process's peak resident memory so far, in GB (what training records in its
    manifest: a job trains in a process of its own, so this is that training's peak)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if peak <= 0:
        return None
    return round(peak * (1 if sys.platform == "darwin" else 1024) / GB, 2)


# -- reading a run -----------------------------------------------------------------------------
def measured_pace(run: Run) -> Pace | None:
    """The pace of a finished run, from its manifest and log; ``None`` for a run that cannot
    give one (not done, resumed, an unreadable manifest or log, a log without epochs)."""
    try:
        manifest = run.manifest
        if manifest.get("status") != "done" or not _number(manifest.get("seconds")):
            return None
        config = TrainConfig.from_manifest(manifest.get("config"))
        return _pace(run.name, config, float(manifest["seconds"]), run.events(),
                     manifest.get("peak_memory_gb"))
    except (MammoError, OSError, KeyError, TypeError, ValueError):
        return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value) and value > 0


def _pace(name: str, config: TrainConfig, seconds: float, events: list[dict[str, Any]],
          peak: Any) -> Pace | None:
    if any(event.get("event") == Event.RESUME_BEGIN for event in events):
        return None  # two processes' worth of start-up and a phase in two pieces
    data = next((e for e in events if e.get("event") == Event.DATA), None)
    if data is None:
        return None
    read = int(data["train"]) + int(data["val"])
    per_epoch = int(data["fit_samples"]) + int(data["val"])
    epoch_s: dict[Step, float] = {}
    in_epochs = first_epochs = 0.0
    for step in EPOCH_PHASES:
        durations = _epoch_durations(events, step)
        if not durations:
            continue
        steady = median(durations[1:] or durations)
        in_epochs += sum(durations)
        first_epochs += max(durations[0] - steady, 0.0)
        epoch_s[step] = steady / (read if step == Step.PATCHES else per_epoch)
    if Step.HEAD not in epoch_s:
        return None
    return Pace(source=f"run {name}", model=config.model, backbone=config.backbone,
                image_size=config.image_size, patch_size=config.patch_size,
                patches_per_lesion=config.patches_per_lesion, films_read=read,
                seconds=seconds, other_s=max(seconds - in_epochs, 0.0), epoch_s=epoch_s,
                first_epochs_s=first_epochs,
                peak_memory_gb=float(peak) if _number(peak) else None)


def _epoch_durations(events: list[dict[str, Any]], step: Step) -> list[float]:
    """Seconds of each epoch of ``step``: from the phase's start or the previous epoch's
    end to the epoch's end."""
    durations: list[float] = []
    last: float | None = None
    for event in events:
        if event.get("phase") != step:
            continue
        if event.get("event") == Event.PHASE_BEGIN:
            last = float(event["time"])
        elif event.get("event") == Event.EPOCH and last is not None:
            now = float(event["time"])
            durations.append(max(now - last, 0.0))
            last = now
    return durations


# -- the estimate ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A training's expected time (an upper bound: every configured epoch counted) and peak
    memory, with the pace it was scaled from and whether that pace is a close match (the
    same model kind and backbone, measured here)."""

    seconds: float
    peak_memory_gb: float | None
    basis: Pace
    close: bool

    def describe(self) -> str:
        """One line for people: rounded figures and where they come from."""
        memory = (f", about {self.peak_memory_gb:.1f} GB of memory at its peak"
                  if self.peak_memory_gb is not None else "")
        if self.basis.measured_here:
            where = (f"scaled from {self.basis.source} ({self.basis.backbone}, "
                     f"{self.basis.image_size} px, {self.basis.films_read} films read, "
                     f"{duration_words(self.basis.seconds)})")
            rough = "" if self.close else \
                "; rough, since that run trained another model or backbone"
        else:
            where = f"scaled from {self.basis.source}"
            rough = "; rough, since no such run has finished on this machine yet"
        return (f"Up to {duration_words(self.seconds)}{memory} (early stopping may end it "
                f"sooner); {where}{rough}.")


def duration_words(seconds: float) -> str:
    """``95`` -> ``"about 2 min"``; under a minute in tens of seconds; over an hour in
    hours and minutes."""
    if seconds < 60:
        return f"about {max(10, round(seconds, -1)):.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def closest(config: TrainConfig, paces: Iterable[Pace]) -> Pace:
    """The measured pace to scale for ``config``: of the runs that went through every epoch
    phase it will, the same model kind and backbone first, then the nearest input size,
    then the newest (``paces`` come newest first); the documented figure when none fits."""
    fitting = [pace for pace in paces if pace.covers(config)]
    if not fitting:
        return DOCUMENTED

    def distance(item: tuple[int, Pace]) -> tuple[int, int, float, int]:
        order, pace = item
        return (pace.backbone != config.backbone, pace.model != config.model,
                abs(math.log(config.image_size / pace.image_size)), order)

    return min(enumerate(fitting), key=distance)[1]


def estimate(config: TrainConfig, data: DataSize, paces: Iterable[Pace] = ()) -> Estimate:
    """How long ``config`` will train on ``data`` and its peak memory, from the closest of
    ``paces`` (measured runs, newest first) or the documented figure."""
    if data.films < 1 or data.classes < 1:
        raise BadConfigError("an estimate needs a dataset with at least one film")
    pace = closest(config, paces)
    samples = samples_of(config, data)
    area = (config.image_size / pace.image_size) ** 2
    epochs = {Step.PATCHES: config.patch_epochs, Step.HEAD: config.epochs,
              Step.FINE_TUNE: config.fine_tune_epochs}
    seconds = pace.first_epochs_s + pace.other_s * samples.read / pace.films_read
    for step in training_plan(config):
        if step not in EPOCH_PHASES:
            continue
        if step == Step.PATCHES:
            patches = config.patches_per_lesion / pace.patches_per_lesion
            scale = samples.read * patches * (config.patch_size / pace.patch_size) ** 2
        else:
            scale = samples.per_epoch * area
        seconds += pace.epoch_s[step] * epochs[step] * scale
    close = pace.measured_here and (pace.model, pace.backbone) == (config.model,
                                                                   config.backbone)
    return Estimate(seconds=seconds, peak_memory_gb=_memory(pace, config, samples),
                    basis=pace, close=close)


def _memory(pace: Pace, config: TrainConfig, samples: Samples) -> float | None:
    """The floor, the films held (one byte a pixel, the training part as augmented), and the
    rest of the measured peak in proportion to the input area."""
    if pace.peak_memory_gb is None:
        return None
    films_then = pace.films_read * pace.image_size ** 2 / GB
    rest = max(pace.peak_memory_gb - RUNTIME_FLOOR_GB - films_then, 0.0)
    films_now = (samples.fit + samples.val) * config.image_size ** 2 / GB
    return RUNTIME_FLOOR_GB + films_now + rest * (config.image_size / pace.image_size) ** 2
