"""The estimate of a training's time and memory, from the measured pace of earlier runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import BadConfigError
from core.runs.config import TrainConfig
from core.runs.folder import Run, create_run
from core.runs.pace import (
    DOCUMENTED,
    RUNTIME_FLOOR_GB,
    DataSize,
    closest,
    duration_words,
    estimate,
    measured_pace,
    peak_memory_gb,
    samples_of,
)
from core.runs.plan import Step

FROZEN = {"patch_epochs": 0, "fine_tune_layers": 0}
#: 100 films, the default test share (0.25) and validation share (0.2): 75 read, 15 of them
#: for validation, 60 in the training part.
DATA = DataSize(films=100, classes=2, largest_class=70)


def _run(root: Path, config: TrainConfig, events: list[tuple[float, str, dict[str, Any]]],
         seconds: float = 100.0, status: str = "done", peak: float | None = 2.0) -> Run:
    run = create_run("pace", {"config": config.to_dict()}, root)
    run.update_manifest(status=status, seconds=seconds, peak_memory_gb=peak)
    with open(run.path / "progress.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"time": at, "event": kind, **fields}) + "\n"
                          for at, kind, fields in events)
    return run


def _head_log(epoch_s: list[float], start: float = 1000.0, train: int = 60, val: int = 15,
              fit: int = 60) -> list[tuple[float, str, dict[str, Any]]]:
    events = [(start - 10.0, "data", {"train": train, "val": val, "fit_samples": fit}),
              (start, "phase_begin", {"phase": "head", "epochs": len(epoch_s)})]
    now = start
    for number, seconds in enumerate(epoch_s, start=1):
        now += seconds
        events.append((now, "epoch", {"phase": "head", "epoch": number, "loss": 1.0}))
    return [*events, (now, "phase_end", {"phase": "head"})]


def test_the_samples_follow_the_split_and_the_balancing() -> None:
    plain = samples_of(TrainConfig(), DATA)
    assert (plain.read, plain.val, plain.fit) == (75, 15, 60)
    grown = samples_of(TrainConfig(balance="augment"), DATA)
    assert grown.fit == round(0.7 * 60 * 2)  # the largest class's share, times the classes
    assert samples_of(TrainConfig(balance="augment", augment_target=500), DATA).fit == 500
    assert samples_of(TrainConfig(folds=5), DATA).read == 80  # one fold held out


def test_a_run_s_pace_is_its_steady_epoch_and_the_rest(tmp_path: Path) -> None:
    """A first epoch's tracing is not taken as the pace of every epoch: it counts once."""
    config = TrainConfig(**FROZEN, epochs=4)
    run = _run(tmp_path, config, _head_log([30.0, 10.0, 10.0, 12.0]), seconds=100.0)
    pace = measured_pace(run)
    assert pace is not None and pace.source == f"run {run.name}"
    assert pace.epoch_s[Step.HEAD] == pytest.approx(10.0 / 75)  # per sample and epoch
    assert pace.first_epochs_s == pytest.approx(20.0)
    assert pace.other_s == pytest.approx(100.0 - 62.0)
    assert (pace.films_read, pace.peak_memory_gb) == (75, 2.0)


@pytest.mark.parametrize("status", ["running", "failed", "cancelled"])
def test_only_finished_runs_give_a_pace(tmp_path: Path, status: str) -> None:
    run = _run(tmp_path, TrainConfig(**FROZEN), _head_log([10.0]), status=status)
    assert measured_pace(run) is None


def test_a_resumed_or_unlogged_run_gives_no_pace(tmp_path: Path) -> None:
    resumed = _run(tmp_path, TrainConfig(**FROZEN),
                   [(1.0, "resume_begin", {}), *_head_log([10.0])])
    assert measured_pace(resumed) is None
    assert measured_pace(_run(tmp_path, TrainConfig(**FROZEN), [])) is None


def test_the_same_config_on_the_same_films_is_estimated_at_its_measured_time(
        tmp_path: Path) -> None:
    config = TrainConfig(**FROZEN, epochs=4, image_size=256)
    pace = measured_pace(_run(tmp_path, config, _head_log([10.0] * 4), seconds=70.0))
    assert pace is not None
    found = estimate(config, DATA, [pace])
    assert found.seconds == pytest.approx(70.0)
    assert found.peak_memory_gb == pytest.approx(2.0)
    assert found.close and found.basis is pace


def test_the_estimate_scales_with_epochs_films_and_input_area(tmp_path: Path) -> None:
    config = TrainConfig(**FROZEN, epochs=4, image_size=256)
    pace = measured_pace(_run(tmp_path, config, _head_log([10.0] * 4), seconds=70.0))
    assert pace is not None
    twice_the_epochs = estimate(config.with_overrides(epochs=8), DATA, [pace])
    assert twice_the_epochs.seconds == pytest.approx(30.0 + 80.0)
    twice_the_films = estimate(config, DataSize(200, 2, 140), [pace])
    assert twice_the_films.seconds == pytest.approx(2 * 70.0)
    twice_the_side = estimate(config.with_overrides(image_size=512), DATA, [pace])
    assert twice_the_side.seconds == pytest.approx(30.0 + 4 * 40.0)
    films_then = 75 * 256 ** 2 / 1024 ** 3
    films_now = 75 * 512 ** 2 / 1024 ** 3
    assert twice_the_side.peak_memory_gb == pytest.approx(
        RUNTIME_FLOOR_GB + films_now + 4 * (2.0 - RUNTIME_FLOOR_GB - films_then))


def test_a_first_epoch_s_tracing_counts_once(tmp_path: Path) -> None:
    config = TrainConfig(**FROZEN, epochs=4, image_size=256)
    pace = measured_pace(_run(tmp_path, config, _head_log([30.0, 10.0, 10.0, 10.0]),
                              seconds=100.0))
    assert pace is not None
    assert estimate(config, DATA, [pace]).seconds == pytest.approx(100.0)
    # twice the films: twice the reading and the epochs, the tracing once
    assert estimate(config, DataSize(200, 2, 140), [pace]).seconds == pytest.approx(
        20.0 + 2 * 40.0 + 2 * 40.0)


def test_a_run_that_did_not_go_through_a_phase_cannot_size_it(tmp_path: Path) -> None:
    """A frozen-encoder run says nothing of fine-tuning's pace: the default config falls
    back to the documented figure, and says so."""
    frozen = measured_pace(_run(tmp_path, TrainConfig(**FROZEN), _head_log([10.0])))
    assert frozen is not None
    assert closest(TrainConfig(), [frozen]) is DOCUMENTED
    found = estimate(TrainConfig(), DATA, [frozen])
    assert not found.close
    assert "bench/bench_train.py" in found.describe()
    assert "no such run has finished on this machine" in found.describe()


def test_the_closest_run_has_the_same_backbone_then_the_nearest_size(tmp_path: Path) -> None:
    def pace(**overrides: Any) -> Any:
        return measured_pace(_run(tmp_path, TrainConfig(**FROZEN, **overrides),
                                  _head_log([10.0])))

    other_backbone = pace(backbone="vgg16", image_size=512)
    far = pace(image_size=128)
    near = pace(image_size=448)
    newer_near = pace(image_size=448)
    config = TrainConfig(**FROZEN, image_size=512)
    assert closest(config, [newer_near, other_backbone, far, near]) is newer_near
    assert closest(config, [other_backbone]) is other_backbone
    assert not estimate(config, DATA, [other_backbone]).close


def test_the_documented_figure_gives_back_its_own_time() -> None:
    """The fallback, applied to the run it was measured on, is that run's 2.8 minutes."""
    mias = DataSize(films=256, classes=7, largest_class=166)
    found = estimate(TrainConfig(), mias)
    assert found.basis is DOCUMENTED
    assert found.seconds == pytest.approx(2.8 * 60)
    assert found.peak_memory_gb == pytest.approx(2.78, abs=0.01)


def test_words_are_rounded() -> None:
    assert duration_words(4) == "about 10 s"
    assert duration_words(44) == "about 40 s"
    assert duration_words(95) == "about 2 min"
    assert duration_words(3725) == "about 1 h 02 min"
    text = estimate(TrainConfig(), DataSize(256, 7, 166)).describe()
    assert "Up to about 3 min" in text and "2.8 GB" in text


def test_an_empty_dataset_has_no_estimate() -> None:
    with pytest.raises(BadConfigError):
        estimate(TrainConfig(), DataSize(films=0, classes=0, largest_class=0))


def test_this_process_s_peak_memory_is_measured() -> None:
    peak = peak_memory_gb()
    assert peak is not None and 0.01 < peak < 1024
