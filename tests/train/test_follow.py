"""What a follower reads from a run's log, and the presets the Train page starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.train.follow import follow
from core.train.presets import PRESETS, demo_job
from core.train.runs import create_run


def test_progress_grows_through_the_steps_and_keeps_one_curve_row_per_epoch(
        tmp_path: Path) -> None:
    run = create_run("follow", {}, tmp_path)
    seen = [follow(run).fraction]
    run.log("data", train=16, val=4, fit_samples=21, counts_before=[3, 1], counts_after=[3, 3])
    seen.append(follow(run).fraction)
    run.log("features", part="train", done=8, total=21)
    seen.append(follow(run).fraction)
    assert follow(run).detail == "8 of 21"
    run.log("phase_begin", phase="head", epochs=2)
    for epoch in (1, 2):
        run.log("batch", phase="head", epoch=epoch, epochs=2, batch=1, steps=2, eta_s=3.0,
                loss=2.0)
        seen.append(follow(run).fraction)
        run.log("epoch", phase="head", epoch=epoch, epochs=2, eta_s=1.0, loss=1.5 / epoch,
                val_loss=1.8 / epoch)
        seen.append(follow(run).fraction)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    progress = follow(run)
    assert progress.stage == "training (head)" and progress.eta_s == 1.0
    assert [row["epoch"] for row in progress.curves] == [1, 2]
    assert progress.curves[1]["val_loss"] == pytest.approx(0.9)
    assert progress.counts_after == [3, 3]

    run.log("batch", phase="head", epoch=3, epochs=4, batch=1, steps=2, eta_s=3.0, loss=1.0)
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
    run.log("epoch", phase="finetune", epoch=1, epochs=2, loss=0.5)
    for epoch in (3, 4):  # the resumed run redoes epoch 3 from epoch 2's checkpoint
        run.log("epoch", phase="head", epoch=epoch, epochs=4, loss=0.1)
    rows = [(row["phase"], row["epoch"], row["loss"]) for row in follow(run).curves]
    assert rows == [("head", 1, 1.0), ("head", 2, 1.0), ("finetune", 1, 0.5),
                    ("head", 3, 0.1), ("head", 4, 0.1)]


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

