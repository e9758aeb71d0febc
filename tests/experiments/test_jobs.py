"""The training queue: one job at a time, the rest queued, cancellable, and honest about
jobs whose process died. Jobs run real (tiny) trainings in child processes, as in the app."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

import factories
from core.errors import BadConfigError
from core.experiments.jobs import (
    Job,
    active_jobs,
    cancel,
    get_job,
    list_jobs,
    submit,
    update_job,
    work,
    worker_alive,
)
from core.runs.config import TrainConfig
from core.runs.folder import open_run
from core.train.progress import checkpoint_state
from factories import wait_for

TINY = {**factories.TINY, "epochs": 1}


def _spec(root: Path, **overrides: object) -> dict[str, object]:
    config = TrainConfig(dataset="mias", root=str(root)).with_overrides(**{**TINY, **overrides})
    return {"config": config.to_dict()}



def _idle(runs: Path) -> bool:
    running, queued = active_jobs(runs)
    return running is None and not queued and not worker_alive(runs)


def test_two_sessions_submitting_at_once_get_one_job_running_and_one_queued(
        synthetic_root: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    jobs: list[Job] = []
    threads = [threading.Thread(target=lambda name=name: jobs.append(
        submit("train", _spec(synthetic_root), name, runs))) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: active_jobs(runs)[0] is not None, "a job to start")
    running, queued = active_jobs(runs)
    assert running is not None and len(queued) == 1
    assert {running.id, queued[0].id} == {job.id for job in jobs}

    wait_for(lambda: _idle(runs), "both jobs to finish")
    finished = list_jobs(runs)
    assert [job.state for job in finished] == ["done", "done"]
    assert finished[0].ended <= finished[1].started  # one after the other, never together
    for job in finished:
        assert len(job.runs) == 1 and open_run(job.runs[0]).manifest["status"] == "done"


def test_cancel_drops_a_queued_job_and_stops_a_running_one(synthetic_root: Path,
                                                           tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    long = submit("train", _spec(synthetic_root, epochs=200), "long", runs)
    behind = submit("train", _spec(synthetic_root), "behind", runs)
    assert cancel(behind.id, runs).state == "cancelled"

    wait_for(lambda: get_job(long.id, runs).latest_run is not None
          and checkpoint_state(get_job(long.id, runs).latest_run) is not None,
          "the first epoch")
    cancel(long.id, runs)
    wait_for(lambda: _idle(runs), "the cancelled job to stop")
    stopped = get_job(long.id, runs)
    assert stopped.state == "cancelled"
    run = open_run(stopped.runs[0])
    assert run.manifest["status"] == "cancelled"
    assert checkpoint_state(run)["epoch"] < 200
    assert get_job(behind.id, runs).runs == []  # it never started


def test_a_killed_job_is_failed_and_its_run_keeps_its_checkpoint(synthetic_root: Path,
                                                                 tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    job = submit("train", _spec(synthetic_root, epochs=200), "doomed", runs)
    wait_for(lambda: get_job(job.id, runs).latest_run is not None
          and checkpoint_state(get_job(job.id, runs).latest_run) is not None,
          "the first epoch")
    os.kill(get_job(job.id, runs).pid, signal.SIGKILL)
    wait_for(lambda: _idle(runs), "the worker to notice")
    dead = get_job(job.id, runs)
    assert dead.state == "failed" and "died" in dead.error
    run = open_run(dead.runs[0])
    assert run.manifest["status"] == "failed"
    assert checkpoint_state(run)["epoch"] >= 1


def test_a_job_left_running_by_a_dead_worker_is_marked_failed(synthetic_root: Path,
                                                              tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    job = submit("train", _spec(synthetic_root), "orphan", runs, start_worker=False)
    update_job(job.id, runs, state="running")  # as a worker killed mid-job leaves it
    assert work(runs) == 0
    orphan = get_job(job.id, runs)
    assert orphan.state == "failed" and "worker stopped" in orphan.error


@pytest.mark.parametrize(("kind", "spec", "fault"), [
    ("train", {"config": {"epochs": 0}}, "epochs must be positive"),
    ("train", {"config": {"epoch": 3}}, "epoch"),
    ("sweep", {"config": {}, "grid": {}}, "at least one setting"),
    ("nap", {"config": {}}, "job kind"),
])
def test_a_bad_job_is_refused_when_submitted(kind: str, spec: dict[str, object], fault: str,
                                             tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match=fault):
        submit(kind, spec, root=tmp_path)
    assert list_jobs(tmp_path) == []


def test_a_foreign_file_in_the_queue_is_ignored(tmp_path: Path) -> None:
    submit("train", {"config": {}}, "real", tmp_path, start_worker=False)
    (tmp_path / ".jobs" / "0-junk.json").write_text("{not json")
    (tmp_path / ".jobs" / "1-other.json").write_text('{"hello": 1}')
    assert [job.label for job in list_jobs(tmp_path)] == ["real"]
