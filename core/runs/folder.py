"""Run folders: one trained model per folder under ``models/``, never overwritten.

A run folder is the unit the dashboard lists, evaluates and downloads. It is created with an
exclusive ``mkdir`` (so two jobs can never share one), every file in it is written to a
temporary name and renamed into place (so a reader never sees half a manifest, and a crash
never leaves one), and ``progress.jsonl`` is append-only so that a follower can tail it.

Layout::

    models/<stamp>-<name>/
        manifest.json     config, dataset and split (film ids + content hashes), versions,
                          seed, status, start/end times, and the name a person gave the
                          run (``display_name``; the folder name stays its id)
        progress.jsonl    one JSON object per event, appended as training goes
        history.csv       per-epoch loss and metrics
        model.keras       the trained model (native Keras format)
        model.weights.h5  its weights as HDF5 (the first paper saved .h5)
        checkpoint/       the latest epoch's model and state, for resuming
        report/           the latest evaluation (evaluation.json, tables, plots, gallery)
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.atomic import WriteError, make_folder, read_json_object, write_json_atomic
from core.errors import BadConfigError
from core.metrics.headline import TEST_ONLY, VALIDATION, by_key, keys
from core.runs.config import SETTINGS
from core.runs.plan import Event
from core.settings import models_root

MANIFEST = "manifest.json"
PROGRESS = "progress.jsonl"
HISTORY = "history.csv"
MODEL = "model.keras"
WEIGHTS = "model.weights.h5"
CHECKPOINT = "checkpoint"
REPORT = "report"
EVALUATION = "evaluation.json"
#: Where deleted runs wait for removal: inside the root (so the rename is atomic) but one
#: level down, where ``list_runs`` never looks.
TRASH = ".trash"

def default_root() -> Path:
    """Where runs go unless told otherwise (``core.settings.models_root``)."""
    return models_root()

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
        """The manifest as a JSON object, read afresh (another process may be training into
        the folder) and checked: a run folder may have been copied from elsewhere or
        damaged, so any fault is one ``BadConfigError`` naming the file, never a traceback."""
        file = self.path / MANIFEST
        if not file.exists():
            raise BadConfigError(f"{self.path}: not a run folder (no {MANIFEST})")
        return read_json_object(file, "manifest")

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

    def log(self, event: Event, **fields: Any) -> None:
        """Append one progress event; the line is flushed so a follower sees it at once.

        Appending (rather than rewriting the file atomically) keeps each event one small
        write, and a follower can read the file at any moment: every line but possibly the
        last is complete, and ``events`` skips an incomplete last line. A process killed
        mid-line leaves such a line behind for good, so the next event starts on a fresh
        line rather than being glued to it and lost.
        """
        line = json.dumps({"time": round(time.time(), 3), "event": event, **fields},
                          default=float)
        file = self.path / PROGRESS
        try:
            with open(file, "ab+") as handle:
                handle.seek(0, os.SEEK_END)
                fresh = handle.tell() == 0 or _last_byte(handle) == b"\n"
                handle.write((line + "\n" if fresh else "\n" + line + "\n").encode())
                handle.flush()
        except OSError as error:
            raise WriteError(file, error) from error

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


def _last_byte(handle: Any) -> bytes:
    handle.seek(-1, os.SEEK_END)
    return handle.read(1)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "run"


def create_run(name: str, manifest: dict[str, Any], root: Path | None = None) -> Run:
    """Make a new run folder whose name no other run has, with its first manifest."""
    root = make_folder(Path(root or default_root()), "runs folder")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_slug(name)}"
    for attempt in range(1000):
        path = root / (base if attempt == 0 else f"{base}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            raise BadConfigError(f"{path}: cannot create the run folder ({error.strerror})") \
                from None
        try:
            write_json_atomic(path / MANIFEST, {"run": path.name, "status": "running",
                                                "started": utc_now(), **manifest})
        except WriteError:
            with suppress(OSError):  # empty again: no folder without a manifest stays behind
                path.rmdir()
            raise
        return Run(path)
    raise BadConfigError(f"{root}: could not find a free run name for {base}")


def open_run(path: str | Path) -> Run:
    """An existing run folder, or one clear error saying why it is not one."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise BadConfigError(f"{path}: not a run folder (no {MANIFEST})")
    run = Run(path)
    run.manifest  # noqa: B018 (a folder without a readable manifest is refused here)
    return run


def list_runs(root: Path | None = None) -> list[Run]:
    """All run folders under root, newest first; folders without a manifest are ignored."""
    root = Path(root or default_root())
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if (p / MANIFEST).is_file()]
    return sorted(runs, key=lambda run: run.name, reverse=True)


def is_live(run: Run) -> bool:
    """True while the run's training process is alive on this machine.

    A run whose process was killed keeps status "running" in its manifest; its pid is dead
    (or a zombie nobody reaped), and it is no longer live. A run without a pid cannot be
    shown to be alive.
    """
    manifest = run.manifest
    pid = manifest.get("pid")
    if manifest.get("status") != "running" or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS) or the process just ended
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


#: The manifest field holding the name a person gave a run.
DISPLAY_NAME = "display_name"
#: The longest run name accepted: it has to fit a table cell and a menu.
DISPLAY_NAME_MAX = 80
_STAMPED = re.compile(r"^(\d{8})-(\d{6})-(.+)$")


def run_title(name: str, manifest: Mapping[str, Any] | None = None) -> str:
    """What a person reads for run folder ``name``: the name given to it (the manifest's
    ``display_name``), else the folder name with its stamp written as a date
    ("mias-attention-lstm-mobilenet_v2-224, 7 Dec 2026 04:30"). Every page names runs
    through this, so a run renamed on the Runs page is renamed everywhere; the folder name
    stays the run's id (paths, downloads, the CLI)."""
    given = (manifest or {}).get(DISPLAY_NAME)
    if isinstance(given, str) and given.strip():
        return given.strip()
    match = _STAMPED.match(name)
    if not match:
        return name
    try:
        when = datetime.strptime(match[1] + match[2], "%Y%m%d%H%M%S")
    except ValueError:
        return name
    return f"{match[3]}, {when.day} {when:%b %Y %H:%M}"


def _manifest_or_none(run: Run) -> dict[str, Any] | None:
    try:
        return run.manifest
    except BadConfigError:
        return None


def rename_run(run: Run, title: str) -> str:
    """Give ``run`` the name ``title`` (kept in its manifest; an empty one goes back to the
    default) and return the name it now shows. A name is one line of at most
    ``DISPLAY_NAME_MAX`` printable characters."""
    title = " ".join(str(title).split())
    if len(title) > DISPLAY_NAME_MAX:
        raise BadConfigError(f"a run name has at most {DISPLAY_NAME_MAX} characters, got "
                             f"{len(title)}")
    if any(unicodedata.category(char).startswith("C") for char in title):
        raise BadConfigError("a run name cannot hold control characters")
    manifest = run.update_manifest(**{DISPLAY_NAME: title or None})
    return run_title(run.name, manifest)


def delete_run(run: Run) -> None:
    """Remove a run folder, refusing one whose training is still going.

    The folder is first renamed into the root's trash (one atomic step, so a listing sees
    either the whole run or nothing of it) and only then removed; leftovers of an earlier
    interrupted delete go with it (the next delete retries whatever could not be removed).
    """
    path = Path(run.path)
    if path.is_symlink() or not (path / MANIFEST).is_file():
        raise BadConfigError(f"{path}: not a run folder (no {MANIFEST})")
    try:
        live = is_live(run)
    except BadConfigError:
        live = False  # an unreadable manifest names no process
    if live:
        raise BadConfigError(f"{run_title(path.name, _manifest_or_none(run))}: still "
                             "training; cancel it first (Cancel this training, on the Train "
                             "page)")
    trash = path.parent / TRASH
    target = trash / f"{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        trash.mkdir(exist_ok=True)
        path.rename(target)
    except OSError as error:
        raise BadConfigError(f"{path}: cannot delete ({error.strerror})") from None
    for leftover in trash.iterdir():  # out of sight already: a failure here only wastes disk
        shutil.rmtree(leftover, ignore_errors=True)


def saved_evaluation(run: Run) -> dict[str, Any] | None:
    """The evaluation stored in ``report/``, or None when there is none or the model was
    written after it (a resumed run's new model makes the old figures stale)."""
    file, model = run.path / REPORT / EVALUATION, run.path / MODEL
    try:
        if not model.is_file() or file.stat().st_mtime < model.stat().st_mtime:
            return None
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_history(run: Run) -> list[dict[str, Any]]:
    """``history.csv`` as rows in file order: ``phase`` a string, ``epoch`` an int, every
    other column a float or None (a later phase may log metrics an earlier one did not)."""
    file = run.path / HISTORY
    if not file.is_file():
        return []
    with open(file, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{key: _history_value(key, value) for key, value in row.items() if key}
            for row in rows]


def _history_value(key: str, value: str | None) -> Any:
    if key == "phase":
        return value
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    if key == "epoch" and number is not None:
        return int(number)
    return number


#: Headline figures a runs table shows from the manifest's validation summary (``val_``)
#: and from the saved evaluation on the test split (``test_``): the test-only figures come
#: last, so that the val_ and test_ columns of the same figure line up.
VAL_METRICS = keys(VALIDATION)
TEST_METRICS = VAL_METRICS + keys(TEST_ONLY)
SPLIT_PREFIXES = ("val_", "test_")


#: Labels of the runs table's columns that are neither headline figures nor settings.
COLUMN_LABELS = {"name": "folder", "title": "run", "status": "status", "started": "started",
                 "seconds": "training time (s)", "dataset": "dataset",
                 "synthetic": "SYNTHETIC films", "val_n": "val films", "test_n": "test films",
                 "error": "error"}


def column_label(column: str) -> str:
    """What a person reads for a ``runs_table`` column: ``val_macro_f1`` -> "val macro F1"
    (the registry's label), ``image_size`` -> "Input size (px)" (the setting's label), the
    others from ``COLUMN_LABELS``; an unknown column keeps its name."""
    for prefix in SPLIT_PREFIXES:
        key = column.removeprefix(prefix)
        if column.startswith(prefix) and key in TEST_METRICS:
            return f"{prefix[:-1]} {by_key(key).label}"
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column]
    if column in SETTINGS:
        return SETTINGS[column].knob.label
    return column


def setting_label(setting: str) -> str:
    """What a person reads for a ``config_differences`` setting: its declared label, the
    runs table's for the dataset columns; a nested one (``prep.size``) as words."""
    if setting in SETTINGS:
        return SETTINGS[setting].knob.label
    if setting in COLUMN_LABELS:
        return COLUMN_LABELS[setting]
    return setting.replace(".", ": ").replace("_", " ")


def runs_table(runs: list[Run]) -> list[dict[str, Any]]:
    """One flat row per run: what it is, how it went and its figures, for a table or a
    comparison. A run whose manifest cannot be read still gets a row saying so."""
    return [_row(run) for run in runs]


def _row(run: Run) -> dict[str, Any]:
    try:
        manifest = run.manifest
    except BadConfigError as error:
        return {"name": run.name, "title": run.name, "status": "unreadable",
                "error": str(error)}
    config = manifest.get("config") or {}
    dataset = manifest.get("dataset") or {}
    status = manifest.get("status")
    if status == "running" and not is_live(run):
        status = "interrupted"
    row: dict[str, Any] = {
        "name": run.name, "title": run_title(run.name, manifest), "status": status, "started": manifest.get("started"),
        "seconds": manifest.get("seconds"), "dataset": dataset.get("name"),
        "synthetic": bool(dataset.get("synthetic")), "model": config.get("model"),
        "backbone": config.get("backbone"), "weights": config.get("weights"),
        "image_size": config.get("image_size"), "epochs": config.get("epochs"),
        "error": manifest.get("error")}
    val = manifest.get("val") or {}
    row["val_n"] = val.get("n")
    row.update({f"val_{name}": val.get(name) for name in VAL_METRICS})
    test = saved_evaluation(run) if status == "done" else None
    test = test or {}
    row["test_n"] = test.get("n")
    row.update({f"test_{name}": test.get(name) for name in TEST_METRICS})
    return row


def config_differences(runs: list[Run]) -> list[dict[str, Any]]:
    """The configuration settings on which the runs disagree, one row per setting
    (``setting`` and one column per run name); nested settings read ``prep.size``."""
    manifests = {run.name: run.manifest for run in runs}
    flat = {name: _flatten({"dataset": (manifest.get("dataset") or {}).get("name"),
                            "synthetic": (manifest.get("dataset") or {}).get("synthetic"),
                            **(manifest.get("config") or {})})
            for name, manifest in manifests.items()}
    settings = sorted({key for values in flat.values() for key in values})
    rows = []
    for setting in settings:
        values = {name: values.get(setting) for name, values in flat.items()}
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1:
            rows.append({"setting": setting, **values})
    return rows


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
