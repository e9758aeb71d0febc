"""Nothing is lost or half-written: a full disk, a read-only folder or a kill at any point
leaves every file either as it was or complete, and the fault is reported naming the file.

The tests run as root here, where ``chmod`` stops nobody, so faults are injected where the
file system would raise them: ``_disk_full`` makes the rename that completes an atomic write
fail with ENOSPC, ``_killed`` stops a write midway as a ``kill -9`` would (no cleanup runs).
A real read-only folder is used as well where the tests do not run as root.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from core import atomic
from core.atomic import WriteError, write_json_atomic
from core.cli import main
from core.errors import BadConfigError
from core.evaluate import evaluate as evaluate_module
from core.evaluate.predict import predict_films
from core.evaluate.report import write_report
from core.evaluate.saved import run_evaluation
from core.models.features import cached_features
from core.runs.config import TrainConfig
from core.runs.folder import (
    CHECKPOINT,
    MANIFEST,
    PROGRESS,
    REPORT,
    Run,
    create_run,
    list_runs,
    read_history,
    saved_evaluation,
)
from core.train import progress as progress_module
from core.train.progress import RunProgress, checkpoint_model_path, checkpoint_state
from factories import TINY, shared_folder

FULL = "No space left on device"


def _disk_full(monkeypatch: pytest.MonkeyPatch, *names: str) -> list[str]:
    """Atomic writes of files with these names fail as on a full disk; returns the list of
    targets refused so far."""
    real = os.replace
    refused: list[str] = []

    def replace(source: str | Path, target: str | Path) -> None:
        if Path(target).name in names or any(Path(target).name.endswith(n) for n in names):
            refused.append(str(target))
            raise OSError(errno.ENOSPC, FULL)
        real(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace)
    return refused


class Killed(BaseException):
    """The process stopping dead: not an Exception, so nothing handles it."""


def _no_cleanup(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a kill also means: the ``finally`` that removes a temporary file never runs."""
    monkeypatch.setattr(atomic.os, "unlink", lambda path: None)


def _ours(stderr: str) -> str:
    """stderr without TensorFlow's C++ log lines (``E0000 00:00:...``), which a test process
    that trained in-process may print at any time; a real CLI process is checked whole in
    test_untrusted_models.py."""
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if not re.match(r"[EWIF]\d{4} ", line))


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


# -- a training on a hostile disk ---------------------------------------------------------------


@pytest.fixture(scope="module")
def story(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A training whose feature cache cannot be created at all and whose disk fills up while
    it saves its second checkpoint; then ``resume`` on a disk with room again. Returns what
    was seen between the two, and the finished run."""
    with shared_folder(tmp_path_factory, "hostile-disk") as folder:
        if not (folder / "seen.json").is_file():
            _tell_story(synthetic_root, folder)
        seen = json.loads((folder / "seen.json").read_text())
    return {**seen, "run": Run(Path(seen["run"]))}


def _tell_story(synthetic_root: Path, folder: Path) -> None:
    from core.train.fit import resume, train

    blocked = folder / "a-file"
    blocked.write_text("the cache folder would have to be made under this file")
    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(
        **{**TINY, "epochs": 2})
    seen: dict = {}
    warnings = _Warnings()
    logging.getLogger("core.models.features").addHandler(warnings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAMMO_CACHE", str(blocked / "cache"))
        with pytest.MonkeyPatch.context() as full:
            _disk_full(full, "model-head-2.keras")
            with pytest.raises(WriteError) as caught:
                train(config, folder / "runs")
        seen["error"] = {"errno": caught.value.errno, "path": caught.value.path}
        (run,) = list_runs(folder / "runs")
        seen["manifest"] = run.manifest
        seen["state"] = checkpoint_state(run)
        seen["checkpoint"] = sorted(p.name for p in (run.path / CHECKPOINT).iterdir())
        seen["weights"] = len(keras.models.load_model(checkpoint_model_path(run),
                                                      safe_mode=True).get_weights())
        seen["run"] = str(resume(run.path).path)
    logging.getLogger("core.models.features").removeHandler(warnings)
    seen["cache_warnings"] = warnings.messages
    (folder / "seen.json").write_text(json.dumps(seen))


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_full_disk_fails_the_run_naming_the_file_and_keeps_the_last_checkpoint(
        story: dict) -> None:
    error, manifest = story["error"], story["manifest"]
    assert error["errno"] == errno.ENOSPC and error["path"].endswith("model-head-2.keras")
    assert manifest["status"] == "failed" and "model-head-2.keras" in manifest["error"]
    assert FULL in manifest["error"]
    assert story["state"] == {"phase": "head", "epoch": 1, "model": "model-head-1.keras"}
    assert story["checkpoint"] == ["model-head-1.keras", "state.json"]  # no half file
    assert story["weights"]  # the epoch-1 checkpoint loads


def test_the_failed_run_resumes_and_its_history_has_each_epoch_once(story: dict) -> None:
    run: Run = story["run"]
    assert run.manifest["status"] == "done"
    assert [(row["phase"], row["epoch"]) for row in read_history(run)] == [
        ("head", 1), ("head", 2)]  # epoch 2 ran twice but is recorded once
    events = [event["event"] for event in run.events()]
    assert events.count("resume_begin") == 1 and events[-1] == "end"
    assert checkpoint_state(run)["epoch"] == 2
    assert sorted(p.name for p in (run.path / CHECKPOINT).iterdir()) == [
        "model-head-2.keras", "state.json"]
    assert not _hidden(run.path)


def test_a_feature_cache_that_cannot_be_created_does_not_stop_training(story: dict) -> None:
    assert story["run"].manifest["status"] == "done"
    warnings = story["cache_warnings"]
    assert warnings and all("cannot create the feature cache" in w for w in warnings)


# -- checkpoints --------------------------------------------------------------------------------
def _progress(tmp_path: Path) -> tuple[RunProgress, keras.Model]:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    callback = RunProgress(create_run("kill", {}, tmp_path), "head", epochs=5)
    callback.set_model(model)
    callback.set_params({"steps": 1})
    callback.on_train_begin()
    return callback, model


def _end_epoch(callback: RunProgress, model: keras.Model, epoch: int) -> None:
    """Finish epoch ``epoch`` (0-based) with every weight equal to its number, so a
    checkpoint shows which epoch it holds."""
    model.set_weights([np.full(w.shape, float(epoch + 1), w.dtype) for w in model.get_weights()])
    callback.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})


def _checkpoint_epoch(run: Run) -> tuple[int, float]:
    """The state's epoch and the epoch the model it names was saved at."""
    model = keras.models.load_model(checkpoint_model_path(run), safe_mode=True)
    return checkpoint_state(run)["epoch"], float(model.get_weights()[0].flat[0])


def test_a_kill_while_the_checkpoint_model_is_written_keeps_the_previous_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    callback, model = _progress(tmp_path)
    _end_epoch(callback, model, 0)

    def half_then_killed(self: keras.Model, path: str | Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"PK\x03\x04" + b"\0" * 100)
        raise Killed

    with monkeypatch.context() as kill:
        kill.setattr(keras.Model, "save", half_then_killed)
        _no_cleanup(kill)
        with pytest.raises(Killed):
            _end_epoch(callback, model, 1)
    run = callback.run
    assert _checkpoint_epoch(run) == (1, 1.0)
    assert _hidden(run.path / CHECKPOINT)  # the half file, hidden, as a kill leaves it
    _end_epoch(callback, model, 1)  # the resumed process saves its next checkpoint
    assert _checkpoint_epoch(run) == (2, 2.0)
    assert sorted(p.name for p in (run.path / CHECKPOINT).iterdir()) == [
        "model-head-2.keras", "state.json"]  # the leftover and the old model are gone


def test_a_kill_between_the_model_and_its_state_keeps_them_in_agreement(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    callback, model = _progress(tmp_path)
    _end_epoch(callback, model, 0)
    real = progress_module.write_json_atomic

    def killed_before_state(target: Path, document: object) -> None:
        if Path(target).name == "state.json":
            raise Killed
        real(target, document)

    with monkeypatch.context() as kill:
        kill.setattr(progress_module, "write_json_atomic", killed_before_state)
        with pytest.raises(Killed):
            _end_epoch(callback, model, 1)
    assert _checkpoint_epoch(callback.run) == (1, 1.0)  # not epoch 1 with epoch 2's weights


def test_a_checkpoint_that_cannot_be_written_is_an_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    callback, model = _progress(tmp_path)
    _end_epoch(callback, model, 0)
    _disk_full(monkeypatch, "state.json")
    with pytest.raises(WriteError, match=f"state.json: cannot write \\({FULL}\\)"):
        _end_epoch(callback, model, 1)
    monkeypatch.undo()
    assert _checkpoint_epoch(callback.run) == (1, 1.0)


def test_a_later_phase_with_other_metrics_widens_the_history(tmp_path: Path) -> None:
    callback, model = _progress(tmp_path)
    _end_epoch(callback, model, 0)
    fine = RunProgress(callback.run, "fine-tune", epochs=2)
    fine.set_model(model)
    fine.set_params({"steps": 1})
    fine.on_train_begin()
    fine.on_epoch_end(0, {"loss": 0.5, "accuracy": 0.75})
    assert read_history(callback.run) == [
        {"phase": "head", "epoch": 1, "loss": 1.0, "accuracy": None},
        {"phase": "fine-tune", "epoch": 1, "loss": 0.5, "accuracy": 0.75}]


# -- run folders, manifests, progress -----------------------------------------------------------
def test_create_run_on_a_full_disk_says_so_and_leaves_no_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _disk_full(monkeypatch, MANIFEST)
    with pytest.raises(WriteError, match=f"{MANIFEST}: cannot write \\({FULL}\\)") as caught:
        create_run("x", {}, tmp_path)
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_create_run_where_no_folder_can_be_made_says_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(BadConfigError, match=f"{blocked}: cannot create the runs folder"):
        create_run("x", {}, blocked)
    real = Path.mkdir

    def denied(self: Path, *args: object, **kwargs: object) -> None:
        if self.parent == tmp_path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(BadConfigError, match="cannot create the run folder \\(Permission"):
        create_run("x", {}, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_create_run_in_a_read_only_folder_says_so(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(BadConfigError, match="Permission denied"):
            create_run("x", {}, tmp_path)
    finally:
        tmp_path.chmod(0o755)


def test_a_manifest_rewrite_that_fails_keeps_the_old_manifest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = create_run("x", {"note": "before"}, tmp_path)
    real = Path.write_text

    def half_then_full(self: Path, text: str, *args: object, **kwargs: object) -> int:
        real(self, text[:len(text) // 2])
        raise OSError(errno.ENOSPC, FULL)

    monkeypatch.setattr(Path, "write_text", half_then_full)
    with pytest.raises(WriteError, match=f"{run.path / MANIFEST}: cannot write"):
        run.update_manifest(note="after")
    with pytest.raises(WriteError):
        write_json_atomic(tmp_path / "other.json", {"a": 1})
    monkeypatch.undo()
    assert run.manifest["note"] == "before"
    assert not _hidden(tmp_path) and not (tmp_path / "other.json").exists()


def test_a_write_into_a_folder_without_permission_names_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    with pytest.raises(WriteError, match=f"{tmp_path / 'x.json'}: cannot write \\(Permission"):
        write_json_atomic(tmp_path / "x.json", {})


def test_progress_after_a_half_written_line_is_not_lost(tmp_path: Path) -> None:
    run = create_run("x", {}, tmp_path)
    run.log("epoch", epoch=1)
    with open(run.path / PROGRESS, "a") as handle:
        handle.write('{"event": "ep')  # the process was killed mid-line
    run.log("resume_begin")
    assert [event["event"] for event in run.events()] == ["epoch", "resume_begin"]


def test_progress_that_cannot_be_written_names_the_file(tmp_path: Path) -> None:
    run = create_run("x", {}, tmp_path)
    (run.path / PROGRESS).mkdir()  # an obstacle that stops root too
    with pytest.raises(WriteError, match=f"{run.path / PROGRESS}: cannot write"):
        run.log("epoch")


# -- the feature cache ------------------------------------------------------------------------------
def _encode(batch: np.ndarray) -> np.ndarray:
    return batch.mean(axis=(1, 2), keepdims=True).astype(np.float32) + np.arange(3)


def test_a_full_disk_leaves_the_feature_cache_uncorrupted_and_training_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    images = np.random.default_rng(0).integers(0, 255, (9, 8, 8), dtype=np.uint8)
    expected = _encode(images).astype(np.float16)
    real = np.save

    def half_then_full(file: str | Path, array: np.ndarray, **kwargs: object) -> None:
        Path(file).write_bytes(b"\x93NUMPY" + b"\0" * 10)
        raise OSError(errno.ENOSPC, FULL)

    monkeypatch.setattr(np, "save", half_then_full)
    with caplog.at_level(logging.WARNING, logger="core.models.features"):
        features = cached_features(_encode, images, "k", tmp_path, batch_size=4)
    np.testing.assert_array_equal(features, expected)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and FULL in warnings[0] and "not cached" in warnings[0]
    folder = tmp_path / "features" / "k"
    assert list(folder.iterdir()) == []  # no entry, no half entry, no temporary file

    monkeypatch.setattr(np, "save", real)  # room again: the next call fills the cache
    calls: list[int] = []
    cached_features(lambda batch: calls.append(len(batch)) or _encode(batch), images, "k",
                    tmp_path)
    assert sum(calls) == 9 and len(list(folder.iterdir())) == 9


def test_an_empty_or_truncated_cache_entry_is_computed_again(tmp_path: Path) -> None:
    images = np.random.default_rng(1).integers(0, 255, (2, 8, 8), dtype=np.uint8)
    cached_features(_encode, images, "k", tmp_path)
    first, second = sorted((tmp_path / "features" / "k").iterdir())
    first.write_bytes(b"")  # as a crash of some other writer may leave it
    second.write_bytes(second.read_bytes()[:-3])
    calls: list[int] = []
    features = cached_features(lambda b: calls.append(len(b)) or _encode(b), images, "k",
                               tmp_path)
    assert calls == [2]
    np.testing.assert_array_equal(features, _encode(images).astype(np.float16))


# -- reports and overlays ---------------------------------------------------------------------------
#: The least a report is written from.
EVALUATION = {"labels": ["NORM", "CALC"], "confusion_matrix": [[2, 1], [0, 3]], "gallery": []}


@pytest.fixture()
def run_copy(story: dict, tmp_path: Path) -> Run:
    run: Run = story["run"]
    return Run(Path(shutil.copytree(run.path, tmp_path / run.name,
                                    ignore=shutil.ignore_patterns(REPORT))))


def test_a_report_that_cannot_be_written_is_reported_and_never_passes_for_saved(
        run_copy: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    _disk_full(monkeypatch, "report.html")
    with pytest.raises(WriteError, match=f"report.html: cannot write \\({FULL}\\)"):
        run_evaluation(run_copy)
    assert saved_evaluation(run_copy) is None  # so the next visit evaluates again
    assert not _hidden(run_copy.path / REPORT)


def test_report_files_on_a_full_disk_from_the_cli_are_one_line(
        run_copy: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """The command's error path; the evaluation itself is the test above's (and slow)."""
    report = tmp_path / "report"
    monkeypatch.setattr(evaluate_module, "evaluate_run", lambda *args, **kwargs: EVALUATION)
    _disk_full(monkeypatch, "roc.png")
    capfd.readouterr()
    assert main(["evaluate", str(run_copy.path), "--report", str(report), "--json"]) == 2
    stdout, stderr = capfd.readouterr()
    assert stdout == ""
    assert _ours(stderr) == f"error: {report / 'roc.png'}: cannot write ({FULL})\n"
    assert not (report / "evaluation.json").exists() and not _hidden(report)


def test_write_report_into_an_unusable_folder_names_it(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(BadConfigError, match=f"{blocked / 'report'}: cannot create"):
        write_report(EVALUATION, blocked / "report")


def test_overlays_on_a_full_disk_are_reported_per_film_and_leave_nothing(
        run_copy: Run, synthetic_root: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    films = sorted(synthetic_root.glob("*.pgm"))[:2]
    out = tmp_path / "out"
    refused = _disk_full(monkeypatch, "-heatmap.png")
    entries = predict_films(run_copy.path, films, out)
    assert len(refused) == 2
    for entry, target in zip(entries, refused):
        assert "label" not in entry and entry["error"].startswith(target)
        assert FULL in entry["error"] and "\n" not in entry["error"]
    assert list(out.iterdir()) == []  # no overlay, no placeholder, no temporary file


def test_an_output_folder_that_cannot_exist_stops_predict_before_any_film(
        run_copy: Run, synthetic_root: Path, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    films = sorted(synthetic_root.glob("*.pgm"))[:2]
    with pytest.raises(BadConfigError, match=f"{blocked / 'out'}: cannot create"):
        predict_films(run_copy.path, films, blocked / "out")
    assert main(["predict", str(run_copy.path), *map(str, films), "--out",
                 str(blocked / "out")]) == 2
    error = capfd.readouterr().err
    assert error.count("\n") == 1 and str(blocked / "out") in error


def test_the_cli_reports_a_runs_folder_it_cannot_make_in_one_line(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    argv = ["train", "--dataset", "mias", "--root", str(synthetic_root), "--backbone",
            "mobilenet_025", "--weights", "none", "--image-size", "64", "--patch-epochs", "0",
            "--fine-tune-layers", "0", "--json"]
    capfd.readouterr()
    assert main([*argv, "--out", str(blocked / "runs")]) == 2
    stdout, stderr = capfd.readouterr()
    stderr = _ours(stderr)
    assert stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith(f"error: {blocked / 'runs'}: cannot create the runs folder")

    _disk_full(monkeypatch, MANIFEST)
    assert main([*argv, "--out", str(tmp_path / "runs")]) == 2
    stdout, stderr = capfd.readouterr()
    stderr = _ours(stderr)
    assert stdout == "" and stderr.count("\n") == 1
    assert MANIFEST in stderr and FULL in stderr
    assert list((tmp_path / "runs").iterdir()) == []
