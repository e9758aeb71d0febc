"""Run folders: one trained model per folder under ``models/``, never overwritten.

A run folder is the unit the dashboard lists, evaluates and downloads. It is created with an
exclusive ``mkdir`` (so two jobs can never share one), every file in it is written to a
temporary name and renamed into place (so a reader never sees half a manifest, and a crash
never leaves one), and ``progress.jsonl`` is append-only so that a follower can tail it.

Layout::

    models/<stamp>-<name>/
        manifest.json     config, dataset and split (film ids + content hashes), versions,
                          seed, status, start/end times
        progress.jsonl    one JSON object per event, appended as training goes
        history.csv       per-epoch loss and metrics
        model.keras       the trained model (native Keras format)
        model.weights.h5  its weights as HDF5 (the first paper saved .h5)
        checkpoint/       the latest epoch's model and state, for resuming
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.atomic import write_json_atomic
from core.errors import BadConfigError

MANIFEST = "manifest.json"
PROGRESS = "progress.jsonl"
HISTORY = "history.csv"
MODEL = "model.keras"
WEIGHTS = "model.weights.h5"
CHECKPOINT = "checkpoint"

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def default_root() -> Path:
    """Where runs go unless told otherwise: ``models/`` beside ``core/``, or ``$MAMMO_MODELS``
    (read on every call, so a test or a second app instance can point elsewhere)."""
    return Path(os.environ.get("MAMMO_MODELS") or REPO_MODELS)

STATUSES = ("running", "done", "failed", "cancelled")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Run:
    """A run folder and its manifest."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST).read_text())

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into the manifest and rewrite it atomically."""
        manifest = self.manifest
        manifest.update(fields)
        write_json_atomic(self.path / MANIFEST, manifest)
        return manifest

    def set_status(self, status: str, **fields: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        ended = {"ended": utc_now()} if status != "running" else {}
        self.update_manifest(status=status, **ended, **fields)

    def log(self, event: str, **fields: Any) -> None:
        """Append one progress event; the line is flushed so a follower sees it at once."""
        line = json.dumps({"time": round(time.time(), 3), "event": event, **fields},
                          default=float)
        with open(self.path / PROGRESS, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()

    def events(self) -> list[dict[str, Any]]:
        """Every complete progress line so far (a half-written last line is skipped)."""
        file = self.path / PROGRESS
        if not file.exists():
            return []
        events = []
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "run"


def create_run(name: str, manifest: dict[str, Any], root: Path | None = None) -> Run:
    """Make a new run folder whose name no other run has, with its first manifest."""
    root = Path(root or default_root())
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadConfigError(f"{root}: cannot create the runs folder ({error.strerror})") from error
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_slug(name)}"
    for attempt in range(1000):
        path = root / (base if attempt == 0 else f"{base}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        run = Run(path)
        write_json_atomic(path / MANIFEST, {"run": path.name, "status": "running",
                                            "started": utc_now(), **manifest})
        return run
    raise BadConfigError(f"{root}: could not find a free run name for {base}")


def open_run(path: str | Path) -> Run:
    """An existing run folder, or one clear error saying why it is not one."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise BadConfigError(f"{path}: not a run folder (no {MANIFEST})")
    try:
        json.loads((path / MANIFEST).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadConfigError(f"{path / MANIFEST}: unreadable manifest ({error})") from error
    return Run(path)


def list_runs(root: Path | None = None) -> list[Run]:
    """All run folders under root, newest first; folders without a manifest are ignored."""
    root = Path(root or default_root())
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if (p / MANIFEST).is_file()]
    return sorted(runs, key=lambda run: run.name, reverse=True)
