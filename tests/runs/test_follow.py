"""What a follower reads from a run's log, and the presets the Train page starts from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.runs.folder import create_run
from core.runs.follow import follow
from core.runs.presets import PRESETS, demo_job


def _timed_log(run, events: list[tuple[float, str, dict]]) -> None:
    """Write events with chosen times (``run.log`` stamps the clock's)."""
    with open(run.path / "progress.jsonl", "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"time": at, "event": kind, **fields}) + "\n"
                          for at, kind, fields in events)


def _default_run_log(patch_epochs: int = 2, epochs: int = 2,
                     fine_tune_epochs: int = 2) -> list[tuple[float, str, dict]]:
    """What a default training logs, one event every ten seconds."""
    events: list[tuple[str, dict]] = [
        ("data", {"train": 16, "val": 4, "fit_samples": 21, "counts_before": [3, 1],
                  "counts_after": [3, 3]}),
        ("patches", {"train": 40, "val": 8})]
    events += [("epoch", {"phase": "patches", "epoch": e, "epochs": patch_epochs, "loss": 1.0})
               for e in range(1, patch_epochs + 1)]
    events += [("features", {"part": "train", "done": 8, "total": 16}),
               ("features", {"part": "train", "done": 16, "total": 16})]
    for epoch in range(1, epochs + 1):
        events += [("batch", {"phase": "head", "epoch": epoch, "epochs": epochs, "batch": 1,
                              "steps": 2, "loss": 2.0}),
                   ("epoch", {"phase": "head", "epoch": epoch, "epochs": epochs,
                              "loss": 1.5 / epoch, "val_loss": 1.8 / epoch})]
    events += [("unfreeze", {"layers": ["a", "b"]}),
               ("features", {"part": "train", "done": 16, "total": 16})]
    events += [("epoch", {"phase": "fine-tune", "epoch": e, "epochs": fine_tune_epochs,
                          "loss": 0.5}) for e in range(1, fine_tune_epochs + 1)]
    return [(1000.0 + 10 * i, kind, fields) for i, (kind, fields) in enumerate(events)]


DEFAULT_PLAN = {"config": {"patch_epochs": 2, "epochs": 2, "fine_tune_layers": 2,
                           "fine_tune_epochs": 2}}


def test_the_bar_crosses_every_step_of_the_plan_once_and_never_goes_back(
        tmp_path: Path) -> None:
    run = create_run("follow", DEFAULT_PLAN, tmp_path)
    seen, stages = [], []
    for event in _default_run_log():
        _timed_log(run, [event])
        progress = follow(run)
        seen.append(progress.fraction)
        stages.append(progress.stage)
    assert seen == sorted(seen) and 0.0 < seen[0] and seen[-1] == pytest.approx(1.0)
    assert list(dict.fromkeys(stages)) == [
        "step 1 of 5: loading and preparing films",
        "step 2 of 5: pretraining the encoder on patches", "step 3 of 5: encoding films",
        "step 4 of 5: training the head on the encoder's features",
        "step 5 of 5: fine-tuning the encoder"]
    progress = follow(run)
    assert progress.detail == "epoch 2 of 2" and progress.counts_after == [3, 3]
    assert [(row["phase"], row["epoch"]) for row in progress.curves] == [
        ("patches", 1), ("patches", 2), ("head", 1), ("head", 2), ("fine-tune", 1),
        ("fine-tune", 2)]
    assert progress.curves[3]["val_loss"] == pytest.approx(0.9)


def test_time_left_is_for_the_whole_run_at_the_pace_so_far(tmp_path: Path) -> None:
    run = create_run("follow", DEFAULT_PLAN, tmp_path)
    log = _default_run_log()
    _timed_log(run, log[:1])
    assert follow(run).eta_s is None  # too early to say
    middle = len(log) // 2
    _timed_log(run, log[1:middle])
    progress = follow(run)
    elapsed = log[middle - 1][0] - log[0][0]
    assert progress.eta_s == pytest.approx(elapsed / progress.fraction * (1 - progress.fraction),
                                           rel=0.1)


def test_a_run_without_encoder_phases_has_three_steps_and_stops_where_cancelled(
        tmp_path: Path) -> None:
    run = create_run("follow", {"config": {"patch_epochs": 0, "fine_tune_layers": 0}},
                     tmp_path)
    run.log("data", train=16, val=4, fit_samples=16, counts_before=[3, 1],
            counts_after=[3, 1])
    run.log("features", part="train", done=8, total=16)
    assert follow(run).stage == "step 2 of 3: encoding films"
    assert follow(run).detail == "train films, 8 of 16"
    run.log("batch", phase="head", epoch=3, epochs=4, batch=1, steps=2, loss=1.0)
    before = follow(run).fraction
    run.set_status("cancelled")
    ended = follow(run)
    assert ended.stage == "cancelled" and ended.eta_s is None
    assert ended.fraction == before < 1.0  # a cancelled run's bar stays where it stopped


def test_a_half_written_last_line_does_not_break_the_follower(tmp_path: Path) -> None:
    run = create_run("follow", {}, tmp_path)
    run.log("epoch", phase="head", epoch=1, epochs=4, loss=1.0)
    with open(run.path / "progress.jsonl", "a") as handle:
        handle.write('{"event": "epoch", "epo')
    assert len(follow(run).curves) == 1


def test_epochs_a_resumed_phase_redoes_replace_their_first_rows(tmp_path: Path) -> None:
    run = create_run("follow", {}, tmp_path)
    for epoch in (1, 2, 3):  # killed after logging epoch 3, before its checkpoint
        run.log("epoch", phase="head", epoch=epoch, epochs=4, loss=1.0)
    run.log("resume_begin", checkpoint={"phase": "head", "epoch": 2})
    run.log("resume", phase="head", epoch=2)
    for epoch in (3, 4):  # the resumed run redoes epoch 3 from epoch 2's checkpoint
        run.log("epoch", phase="head", epoch=epoch, epochs=4, loss=0.1)
    rows = [(row["phase"], row["epoch"], row["loss"]) for row in follow(run).curves]
    assert rows == [("head", 1, 1.0), ("head", 2, 1.0), ("head", 3, 0.1), ("head", 4, 0.1)]


def test_every_preset_is_a_valid_config() -> None:
    for preset in PRESETS.values():
        config = preset.config(dataset="mias", root="/films")
        assert config.root == "/films"
        for name, value in preset.overrides.items():
            assert getattr(config, name) == value


def test_the_demo_uses_imagenet_weights_only_where_installed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keras_home: Path) -> None:
    installed = demo_job(str(tmp_path))
    assert installed["config"]["weights"] == "imagenet" and installed["synthetic"]
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    assert demo_job(str(tmp_path))["config"]["weights"] == "none"

