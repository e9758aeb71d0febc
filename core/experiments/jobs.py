"""Training jobs that outlive the page that started them: one runs at a time, the rest queue.

A browser tab must not own a training: the user reloads, opens a second tab, or closes the
laptop, and the training must go on, be seen from everywhere as the same job, and never be
started twice. So a job is a small JSON file under ``<runs root>/.jobs/``, and one worker
process (``python -m core jobs work``) takes queued jobs in submission order and runs each in
its own child process (``python -m core jobs run ID``) that it supervises:

* the child trains (``core.train.fit.train`` and friends) and records each run folder in the
  job as soon as it exists, so every page can follow the run's ``progress.jsonl``;
* cancelling a running job drops a ``CANCEL`` file into its run (training stops after the
  current batch and marks the run cancelled); a child that does not stop in
  ``CANCEL_GRACE_S``, or has no run yet, is terminated;
* a child that dies (killed, out of memory) leaves its job failed and its run marked failed,
  with the last epoch's checkpoint intact for ``train --resume``.

"One worker" is enforced by an exclusive lock (``flock``) on ``worker.lock``; every change
to a job file happens under ``queue.lock``, so a cancel can never race a start. A submitter
that finds the worker lock free starts a worker; a worker that has drained the queue lets
the lock go and looks once more, so a job submitted in that instant is never stranded.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import make_folder, write_json_atomic
from core.errors import BadConfigError, MammoError
from core.runs.config import TrainConfig
from core.runs.folder import Run, default_root, open_run, utc_now
from core.settings import REPO

log = logging.getLogger(__name__)

JOBS = ".jobs"
KINDS = ("train", "sweep", "demo")
FINISHED = ("done", "failed", "cancelled")
#: Seconds a cancelled child gets to stop at a batch boundary before it is terminated.
CANCEL_GRACE_S = 20.0
POLL_S = 0.5


@dataclass
class Job:
    """One unit of work: ``spec`` says what (a training config, a sweep grid, a demo), the
    rest records how it went. ``runs`` are the run folders it has made so far."""

    id: str
    kind: str
    spec: dict[str, Any]
    label: str = ""
    state: str = "queued"
    submitted: str = ""
    started: str | None = None
    ended: str | None = None
    runs: list[str] = field(default_factory=list)
    stage: str = ""
    error: str | None = None
    cancel: bool = False
    pid: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def latest_run(self) -> Run | None:
        """The run the job is on now (the last it made), if it still exists."""
        for path in reversed(self.runs):
            try:
                return open_run(path)
            except MammoError:
                continue
        return None


# -- the queue on disk ---------------------------------------------------------------------------
def _queue_path(root: Path | None) -> Path:
    """Where the queue lives, without creating it: reading the queue (listing, looking a job
    up) must leave the disk as it was, also for a mistyped ``--root``."""
    return Path(root or default_root()) / JOBS


def jobs_dir(root: Path | None = None) -> Path:
    """The queue's folder, created: for what writes to the queue or locks it."""
    return make_folder(_queue_path(root), "jobs folder")


@contextmanager
def _locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (True), or, not blocking, say it is taken
    (False). The kernel drops the lock when its holder dies, so a crash never wedges it."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _file(root: Path | None, job_id: str) -> Path:
    return _queue_path(root) / f"{job_id}.json"


def _read(path: Path) -> Job | None:
    try:
        return Job(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None  # vanished, or not one of ours: never fatal to the queue


def _write(root: Path | None, job: Job) -> None:
    write_json_atomic(jobs_dir(root) / f"{job.id}.json", asdict(job))


def get_job(job_id: str, root: Path | None = None) -> Job:
    job = _read(_file(root, job_id))
    if job is None:
        raise BadConfigError(f"no job {job_id} under {_queue_path(root)}")
    return job


def list_jobs(root: Path | None = None) -> list[Job]:
    """Every job, oldest first (ids start with their submission time). A queue that does not
    exist holds no jobs: a fresh install, before anything was submitted, lists nothing, and
    listing never creates the folder (a mistyped root would otherwise be made on disk)."""
    folder = _queue_path(root)
    if not folder.is_dir():
        return []
    jobs = (_read(path) for path in sorted(folder.glob("*.json")))
    return [job for job in jobs if job is not None]


def active_jobs(root: Path | None = None) -> tuple[Job | None, list[Job]]:
    """The running job (or None) and the queued ones in the order they will run."""
    jobs = list_jobs(root)
    running = next((job for job in jobs if job.state == "running"), None)
    return running, [job for job in jobs if job.state == "queued"]


def update_job(job_id: str, root: Path | None = None, **fields: Any) -> Job:
    """Change fields of a job under the queue lock and return it as now stored."""
    with _locked(jobs_dir(root) / "queue.lock"):
        job = get_job(job_id, root)
        for name, value in fields.items():
            setattr(job, name, value)
        _write(root, job)
    return job


def _validate(kind: str, spec: dict[str, Any]) -> None:
    """Refuse a bad spec now, in the page that submitted it, not minutes later in a log."""
    if kind not in KINDS:
        raise BadConfigError(f"job kind must be one of {', '.join(KINDS)}, got {kind!r}")
    config = TrainConfig.from_dict(spec.get("config") or {})
    if kind == "sweep":
        from core.experiments.sweep import configs

        grid = spec.get("grid") or {}
        if not grid:
            raise BadConfigError("a sweep needs at least one setting with several values")
        configs(config, grid)
    if kind == "demo":
        films = spec.get("films") or {}
        if not {"out", "n"} <= set(films):
            raise BadConfigError("a demo job needs films.out and films.n")


def submit(kind: str, spec: dict[str, Any], label: str = "", root: Path | None = None,
           start_worker: bool = True) -> Job:
    """Queue a job (checked first) and make sure a worker will run it."""
    _validate(kind, spec)
    job_id = f"{time.time_ns():020d}-{secrets.token_hex(3)}"
    job = Job(id=job_id, kind=kind, spec=spec, label=label or kind, submitted=utc_now())
    with _locked(jobs_dir(root) / "queue.lock"):
        _write(root, job)
    if start_worker:
        ensure_worker(root)
    return job


def cancel(job_id: str, root: Path | None = None) -> Job:
    """A queued job is dropped at once; a running one is asked to stop (its worker does the
    asking, through the run's CANCEL file, and the terminating if need be)."""
    get_job(job_id, root)  # an unknown job (or queue) is an error before anything is created
    with _locked(jobs_dir(root) / "queue.lock"):
        job = get_job(job_id, root)
        if job.state == "queued":
            job.state, job.ended = "cancelled", utc_now()
        elif job.state == "running":
            job.cancel = True
        _write(root, job)
    return job


# -- the worker ------------------------------------------------------------------------------------
def worker_alive(root: Path | None = None) -> bool:
    with _locked(jobs_dir(root) / "worker.lock", blocking=False) as free:
        return not free


def ensure_worker(root: Path | None = None) -> None:
    """Start a worker unless one holds the lock. Two racing starters are harmless: the
    second worker finds the lock taken and exits."""
    if worker_alive(root):
        return
    folder = jobs_dir(root)
    with open(folder / "worker.log", "a") as out:
        subprocess.Popen(_core_command("work", "--root", str(folder.parent)), cwd=REPO,
                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, env=_child_env())


def _core_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "core", "jobs", *args]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def work(root: Path | None = None) -> int:
    """Run queued jobs until none is left; returns how many ran. Exits at once (0) if
    another worker holds the lock."""
    folder = jobs_dir(root)
    ran = 0
    while True:
        with _locked(folder / "worker.lock", blocking=False) as mine:
            if not mine:
                return ran
            _recover_orphans(root)
            while (job := _claim_next(root)) is not None:
                _supervise(job, root)
                ran += 1
        if active_jobs(root)[1] == []:
            return ran


def _recover_orphans(root: Path | None) -> None:
    """Jobs left "running" by a worker that died: with the worker lock held, none can be
    alive, so they and their running runs are marked failed."""
    for job in list_jobs(root):
        if job.state == "running":
            _finish_dead(job, root, "the worker stopped while this job ran")


def _claim_next(root: Path | None) -> Job | None:
    with _locked(jobs_dir(root) / "queue.lock"):
        queued = [job for job in list_jobs(root) if job.state == "queued"]
        if not queued:
            return None
        job = queued[0]
        job.state, job.started = "running", utc_now()
        _write(root, job)
        return job


def _supervise(job: Job, root: Path | None) -> None:
    """Run one job in a child process; cancel it on request; account for its death."""
    folder = jobs_dir(root)
    with open(folder / f"{job.id}.log", "a") as out:
        child = subprocess.Popen(_core_command("run", job.id, "--root", str(folder.parent)),
                                 cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=_child_env())
    update_job(job.id, root, pid=child.pid)
    asked_at: float | None = None
    while child.poll() is None:
        time.sleep(POLL_S)
        current = get_job(job.id, root)
        if not current.cancel:
            continue
        if asked_at is None:
            asked_at = time.time()
            from core.train.progress import request_cancel

            run = current.latest_run
            if run is not None:
                request_cancel(run)
            else:
                child.send_signal(signal.SIGTERM)
        elif time.time() - asked_at > CANCEL_GRACE_S:
            child.send_signal(signal.SIGTERM)
            asked_at = time.time()  # and again, if it still hangs on
    current = get_job(job.id, root)
    if not current.finished:
        why = "cancelled" if current.cancel else f"the job's process died (exit {child.returncode})"
        _finish_dead(current, root, why)


def _finish_dead(job: Job, root: Path | None, why: str) -> None:
    """Close a job whose process is gone, and any of its runs still marked running."""
    state = "cancelled" if job.cancel else "failed"
    for path in job.runs:
        try:
            run = open_run(path)
            if run.manifest.get("status") == "running":
                run.set_status(state, error=None if job.cancel else why)
        except (MammoError, OSError, ValueError):
            continue
    update_job(job.id, root, state=state, ended=utc_now(),
               error=None if job.cancel else why)


# -- inside the child ------------------------------------------------------------------------------
def run_job(job_id: str, root: Path | None = None) -> Job:
    """Do one job in this process (the child the worker started) and record the outcome."""
    signal.signal(signal.SIGTERM, _interrupt)  # terminate -> KeyboardInterrupt -> cancelled
    job = get_job(job_id, root)
    runs_root = jobs_dir(root).parent

    def created(run: Run) -> None:
        update_job(job_id, root, runs=[*get_job(job_id, root).runs, str(run.path)],
                   stage="training")

    try:
        state = _dispatch(job, runs_root, created, root)
        error = None
    except KeyboardInterrupt:
        state, error = "cancelled", None
    except MammoError as fault:
        state, error = "failed", str(fault)
    except Exception as fault:  # noqa: BLE001 (a bug: keep the record honest, log complete)
        traceback.print_exc()
        state, error = "failed", f"{type(fault).__name__}: {fault}"
    return update_job(job_id, root, state=state, ended=utc_now(), error=error, stage="")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _dispatch(job: Job, runs_root: Path, created: Any, root: Path | None) -> str:
    from core.train.fit import train

    config = TrainConfig.from_dict(job.spec["config"])
    if job.kind == "sweep":
        from core.experiments.sweep import run_sweep

        rows = run_sweep(config, job.spec["grid"], runs_root, on_created=created,
                         stop=lambda: get_job(job.id, root).cancel)
        if get_job(job.id, root).cancel:
            return "cancelled"
        return "done" if any(row["status"] == "done" for row in rows) else "failed"
    if job.kind == "demo":
        from core.data.synthetic import generate

        films = job.spec["films"]
        update_job(job.id, root, stage=f"drawing {films['n']} SYNTHETIC films")
        generate(films["out"], int(films["n"]), seed=int(films.get("seed", 0)),
                 size=int(films.get("size", 256)))
        update_job(job.id, root, stage="preparing the training")
    run = train(config, runs_root, on_created=created)
    return str(run.manifest["status"])
