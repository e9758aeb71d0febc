"""The training plan: one list of steps that training runs and followers size their bar by."""

from __future__ import annotations

from pathlib import Path

from core.runs.config import TrainConfig
from core.runs.folder import create_run
from core.runs.follow import follow
from core.runs.plan import Event, Step, training_plan


def test_the_plan_has_a_step_for_each_phase_that_will_run() -> None:
    default = TrainConfig(dataset="mias")
    assert training_plan(default) == (Step.PREPARING, Step.PATCHES, Step.ENCODING, Step.HEAD,
                                      Step.FINE_TUNE)
    frozen = default.with_overrides(patch_epochs=0, fine_tune_layers=0)
    assert training_plan(frozen) == (Step.PREPARING, Step.ENCODING, Step.HEAD)
    # Layers to unfreeze but no epochs to train them: no fine-tuning step (training skips it).
    assert Step.FINE_TUNE not in training_plan(default.with_overrides(fine_tune_epochs=0))


def test_the_follower_counts_the_steps_training_plans(tmp_path: Path) -> None:
    config = TrainConfig(dataset="mias").with_overrides(fine_tune_epochs=0)
    run = create_run("plan", {"config": config.to_dict(), "status": "running"}, tmp_path)
    assert follow(run).stage.startswith(f"step 1 of {len(training_plan(config))}:")
    run.log(Event.DATA, train=1, val=1, counts_before=[1], counts_after=[1])
    assert follow(run).fraction > 0


def test_a_damaged_config_still_gets_a_plan(tmp_path: Path) -> None:
    run = create_run("plan", {"config": ["not", "a", "config"], "status": "running"}, tmp_path)
    assert follow(run).stage == "step 1 of 3: loading and preparing films"
