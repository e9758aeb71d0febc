"""Run folders: never overwritten, manifests atomic, progress readable while written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import BadConfigError
from core.runs.folder import MANIFEST, PROGRESS, create_run, list_runs, open_run


def test_runs_with_one_name_get_their_own_folders(tmp_path: Path) -> None:
    first = create_run("same name", {"note": 1}, tmp_path)
    second = create_run("same name", {"note": 2}, tmp_path)
    assert first.path != second.path
    assert first.manifest["note"] == 1 and second.manifest["note"] == 2
    assert first.manifest["status"] == "running"
    assert {r.path for r in list_runs(tmp_path)} == {first.path, second.path}


def test_status_and_manifest_updates_leave_no_temporary_files(tmp_path: Path) -> None:
    run = create_run("x", {}, tmp_path)
    run.set_status("done", val={"macro_f1": 0.5})
    manifest = run.manifest
    assert manifest["status"] == "done" and "ended" in manifest
    assert manifest["val"] == {"macro_f1": 0.5}
    assert sorted(p.name for p in run.path.iterdir()) == [MANIFEST]
    with pytest.raises(ValueError):
        run.set_status("exploded")


def test_events_skip_a_half_written_last_line(tmp_path: Path) -> None:
    run = create_run("x", {}, tmp_path)
    run.log("epoch", epoch=1, loss=0.5)
    with open(run.path / PROGRESS, "a") as handle:
        handle.write('{"event": "epo')  # a writer caught mid-line
    events = run.events()
    assert [e["event"] for e in events] == ["epoch"] and events[0]["loss"] == 0.5


def test_open_run_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match="not a run folder"):
        open_run(tmp_path)
    (tmp_path / MANIFEST).write_text("{broken")
    with pytest.raises(BadConfigError, match="unreadable manifest"):
        open_run(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"run": "x"}))
    assert open_run(tmp_path).manifest == {"run": "x"}
