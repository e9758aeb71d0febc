"""The runs list as a table, comparison of settings, history, saved evaluations and deletion.

Manifests are written the way ``fit.train`` writes them (create_run with the config, the
dataset and the pid, then ``set_status("done", seconds=..., val=classification_summary)``),
without training, so these tests take milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import BadConfigError
from core.metrics.scores import classification_summary
from core.runs.config import TrainConfig
from core.runs.folder import (
    DISPLAY_NAME_MAX,
    EVALUATION,
    HISTORY,
    MANIFEST,
    MODEL,
    REPORT,
    Run,
    column_label,
    config_differences,
    create_run,
    delete_run,
    is_live,
    list_runs,
    read_history,
    rename_run,
    run_title,
    runs_table,
    saved_evaluation,
)

CLASSES = ("BENIGN", "MALIGNANT")


def _run(root: Path, name: str, synthetic: bool = False, pid: int | None = None,
         status: str = "done", **config: object) -> Run:
    settings = TrainConfig(dataset="mias", root="/films", model="transfer",
                           backbone="alexnet", weights="none", image_size=64, epochs=3,
                           patch_epochs=0)
    run = create_run(name, {"config": settings.with_overrides(**config).to_dict(),
                            "dataset": {"name": "cbis", "root": "/films",
                                        "synthetic": synthetic, "classes": list(CLASSES),
                                        "films": 8},
                            "seed": 0, "pid": os.getpid() if pid is None else pid}, root)
    if status != "running":
        val = classification_summary([0, 1, 1, 0], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4],
                                                    [0.9, 0.1]], CLASSES)
        run.set_status(status, seconds=12.5, warnings=[], val=val)
        (run.path / MODEL).write_bytes(b"model")
    return run


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_runs_table_has_one_flat_row_per_run(tmp_path: Path) -> None:
    done = _run(tmp_path, "a", synthetic=True)
    failed = _run(tmp_path, "b", status="failed")
    rows = {row["name"]: row for row in runs_table(list_runs(tmp_path))}
    row = rows[done.name]
    assert row["status"] == "done" and row["seconds"] == 12.5
    assert row["started"] == done.manifest["started"]
    assert (row["dataset"], row["synthetic"]) == ("cbis", True)
    assert (row["model"], row["backbone"], row["weights"], row["image_size"],
            row["epochs"]) == ("transfer", "alexnet", "none", 64, 3)
    assert row["val_n"] == 4
    assert row["val_accuracy"] == pytest.approx(0.75)
    assert row["val_auc"] == pytest.approx(1.0)
    assert row["test_accuracy"] is None  # never evaluated
    assert rows[failed.name]["status"] == "failed"
    assert all(not isinstance(value, dict | list) for value in row.values())
    assert rows[failed.name].keys() == row.keys()


def test_runs_table_adds_the_saved_test_figures_while_they_are_fresh(tmp_path: Path) -> None:
    run = _run(tmp_path, "a")
    report = run.path / REPORT
    report.mkdir()
    (report / EVALUATION).write_text(json.dumps({"n": 9, "accuracy": 0.6,
                                                 "pointing_game": 0.5}))
    row = runs_table([run])[0]
    assert (row["test_n"], row["test_accuracy"], row["test_pointing_game"]) == (9, 0.6, 0.5)
    later = (report / EVALUATION).stat().st_mtime + 10
    os.utime(run.path / MODEL, (later, later))  # the model was retrained after evaluating
    assert saved_evaluation(run) is None
    assert runs_table([run])[0]["test_accuracy"] is None


def test_runs_table_marks_a_run_whose_process_died_and_survives_a_broken_manifest(
        tmp_path: Path) -> None:
    live = _run(tmp_path, "live", status="running")
    dead = _run(tmp_path, "dead", status="running", pid=_dead_pid())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MANIFEST).write_text("{not json")
    rows = {row["name"]: row for row in runs_table(list_runs(tmp_path))}
    assert rows[live.name]["status"] == "running"
    assert rows[dead.name]["status"] == "interrupted"
    assert rows["broken"]["status"] == "unreadable"


def test_is_live_sees_through_dead_and_zombie_processes(tmp_path: Path) -> None:
    assert is_live(_run(tmp_path, "me", status="running"))
    assert not is_live(_run(tmp_path, "dead", status="running", pid=_dead_pid()))
    assert not is_live(_run(tmp_path, "finished"))  # done: its pid no longer matters
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.time() + 10
        stat = Path(f"/proc/{child.pid}/stat")
        while stat.exists() and " Z " not in stat.read_text() and time.time() < deadline:
            time.sleep(0.05)
        assert not is_live(_run(tmp_path, "zombie", status="running", pid=child.pid))
    finally:
        child.wait()


def test_delete_run_refuses_a_run_that_is_still_training(tmp_path: Path) -> None:
    run = _run(tmp_path, "busy", status="running")
    with pytest.raises(BadConfigError, match="still training") as refused:
        delete_run(run)
    assert run.path.is_dir()
    assert str(os.getpid()) not in str(refused.value)  # a process id means nothing to a reader


def test_delete_run_removes_the_folder_and_leaves_no_run_behind(tmp_path: Path) -> None:
    keep = _run(tmp_path, "keep")
    gone = _run(tmp_path, "gone")
    crashed = _run(tmp_path, "crashed", status="running", pid=_dead_pid())
    delete_run(gone)
    delete_run(crashed)
    assert not gone.path.exists() and not crashed.path.exists()
    assert [run.name for run in list_runs(tmp_path)] == [keep.name]
    assert list((tmp_path / ".trash").iterdir()) == []


def test_delete_run_while_half_deleted_never_lists_the_run(tmp_path: Path) -> None:
    """An interrupted delete leaves the folder in the trash, where listings never look; the
    next delete clears it."""
    left = tmp_path / ".trash" / "20260101-000000-old-1234abcd"
    left.mkdir(parents=True)
    (left / MANIFEST).write_text("{}")
    run = _run(tmp_path, "a")
    assert [r.name for r in list_runs(tmp_path)] == [run.name]
    delete_run(run)
    assert list_runs(tmp_path) == [] and not left.exists()


def test_delete_run_refuses_what_is_not_a_run_folder(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(BadConfigError, match="not a run folder"):
        delete_run(Run(tmp_path / "plain"))
    target = _run(tmp_path, "target")
    (tmp_path / "link").symlink_to(target.path)
    with pytest.raises(BadConfigError, match="not a run folder"):
        delete_run(Run(tmp_path / "link"))
    assert (target.path / MANIFEST).is_file()


def test_config_differences_lists_only_settings_that_differ(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", learning_rate=0.01)
    b = _run(tmp_path, "b", learning_rate=0.001, synthetic=True)
    rows = {row["setting"]: row for row in config_differences([a, b])}
    assert set(rows) == {"learning_rate", "synthetic"}
    assert (rows["learning_rate"][a.name], rows["learning_rate"][b.name]) == (0.01, 0.001)
    c = _run(tmp_path, "c", image_size=32)
    assert "prep.size" in {row["setting"] for row in config_differences([a, c])}


def test_read_history_types_the_columns_and_keeps_later_phases_metrics(
        tmp_path: Path) -> None:
    run = _run(tmp_path, "a")
    (run.path / HISTORY).write_text("phase,epoch,loss,val_loss\nhead,1,2.5,2.75\n"
                                    "fine-tune,1,1.5,\n")
    assert read_history(run) == [
        {"phase": "head", "epoch": 1, "loss": 2.5, "val_loss": 2.75},
        {"phase": "fine-tune", "epoch": 1, "loss": 1.5, "val_loss": None}]
    assert read_history(_run(tmp_path, "b")) == []


def test_a_run_is_read_by_its_given_name_or_its_folder_with_a_date(tmp_path: Path) -> None:
    assert run_title("20261207-043048-mias-attention-64") == "mias-attention-64, 7 Dec 2026 04:30"
    assert run_title("00000000-000000-other") == "00000000-000000-other"  # no real date
    assert run_title("copied-by-hand") == "copied-by-hand"
    run = _run(tmp_path, "a")
    default = run_title(run.name, run.manifest)
    assert rename_run(run, "  Baseline,\n  frozen encoder ") == "Baseline, frozen encoder"
    assert run_title(run.name, run.manifest) == "Baseline, frozen encoder"
    row = runs_table([run])[0]
    assert (row["name"], row["title"]) == (run.name, "Baseline, frozen encoder")  # id stays
    assert rename_run(run, "") == default  # an empty name goes back to the default
    with pytest.raises(BadConfigError, match="at most"):
        rename_run(run, "x" * (DISPLAY_NAME_MAX + 1))
    with pytest.raises(BadConfigError, match="control"):
        rename_run(run, "bell\x07")
    assert run_title(run.name, run.manifest) == default


def test_columns_and_settings_read_as_words(tmp_path: Path) -> None:
    for column in runs_table([_run(tmp_path, "a")])[0]:
        label = column_label(column)
        assert "_" not in label, column  # no snake_case on screen
