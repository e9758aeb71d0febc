"""A run's evaluation is computed once, kept in its report folder and read back while fresh."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from core.errors import BadConfigError
from core.evaluate import saved
from core.evaluate.saved import headline_rows, report_table, run_evaluation
from core.metrics.headline import keys
from core.runs.config import TrainConfig
from core.runs.files import report_zip
from core.runs.folder import EVALUATION, MODEL, REPORT, Run, create_run, open_run
from core.train.fit import train
from factories import TINY


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**TINY)
    return train(config, out_root=tmp_path_factory.mktemp("runs"))


def _copy(run: Run, folder: Path) -> Run:
    """A private copy without the report, so a test starts without a saved evaluation."""
    return open_run(shutil.copytree(run.path, folder / run.name,
                                    ignore=shutil.ignore_patterns(REPORT)))


@pytest.fixture(scope="module")
def first(trained: Run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, dict]:
    """A copy evaluated once (the only real evaluation of this module) and what it gave."""
    run = _copy(trained, tmp_path_factory.mktemp("evaluated"))
    return run, run_evaluation(run)


@pytest.fixture()
def evaluated(first: tuple[Run, dict]) -> Run:
    return first[0]


def _forbid_evaluating(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated again although a fresh evaluation was saved")

    monkeypatch.setattr(saved, "evaluate_run", fail)


def test_first_evaluation_writes_the_report_and_the_second_reads_it(
        first: tuple[Run, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    run, evaluation = first
    report = run.path / REPORT
    for name in (EVALUATION, "report.html", "classification_report.csv", "roc.png"):
        assert (report / name).is_file(), name
    gallery = evaluation["gallery"]
    assert gallery and all(Path(g["overlay"]).parent == report / "gallery" for g in gallery)
    assert all(Path(g["overlay"]).is_file() for g in gallery)
    assert evaluation["synthetic"] is True
    _forbid_evaluating(monkeypatch)
    second = run_evaluation(run)
    assert second["confusion_matrix"] == evaluation["confusion_matrix"]
    assert second["accuracy"] == evaluation["accuracy"]
    assert second["gallery"] == gallery


def test_a_model_newer_than_the_evaluation_is_evaluated_again(
        first: tuple[Run, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = open_run(shutil.copytree(first[0].path, tmp_path / first[0].name))
    earlier = (run.path / MODEL).stat().st_mtime - 5  # as if retrained after evaluating
    os.utime(run.path / REPORT / EVALUATION, (earlier, earlier))
    calls = []

    def evaluate(again: Run, gallery_dir: Path) -> dict:  # the figures a new model gives
        calls.append((again.path, gallery_dir))
        return {**first[1], "accuracy": 0.99, "gallery": []}

    monkeypatch.setattr(saved, "evaluate_run", evaluate)
    assert run_evaluation(run)["accuracy"] == 0.99
    assert calls == [(run.path, run.path / REPORT / "gallery")]
    stored = json.loads((run.path / REPORT / EVALUATION).read_text())
    assert stored["accuracy"] == 0.99
    _forbid_evaluating(monkeypatch)
    assert run_evaluation(run)["accuracy"] == 0.99


def test_a_run_that_is_not_done_is_refused(tmp_path: Path) -> None:
    unfinished = create_run("busy", {"config": {}}, tmp_path)
    with pytest.raises(BadConfigError, match="only a finished run"):
        run_evaluation(unfinished)
    with pytest.raises(BadConfigError, match="no report yet"):
        report_zip(unfinished)


def test_a_copied_run_shows_its_own_gallery(evaluated: Run, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    copy = open_run(shutil.copytree(evaluated.path, tmp_path / evaluated.name))
    _forbid_evaluating(monkeypatch)
    gallery = run_evaluation(copy)["gallery"]
    assert gallery and all(Path(g["overlay"]).is_relative_to(copy.path) for g in gallery)
    assert all(Path(g["overlay"]).is_file() for g in gallery)


def test_report_zip_holds_the_report_folder(evaluated: Run) -> None:
    names = zipfile.ZipFile(io.BytesIO(report_zip(evaluated))).namelist()
    assert {EVALUATION, "report.html", "confusion_matrix.png"} <= set(names)
    assert any(name.startswith("gallery/") and name.endswith(".png") for name in names)


def test_tables_agree_with_the_evaluation(evaluated: Run,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_evaluating(monkeypatch)
    evaluation = run_evaluation(evaluated)
    assert set(keys()) <= set(evaluation)  # evaluate_run stores every headline figure
    rows = {row["figure"]: row for row in headline_rows(evaluation)}
    assert rows["accuracy"]["model"] == evaluation["accuracy"]
    assert rows["accuracy"]["majority"] == evaluation["baselines"]["majority"]["accuracy"]
    assert rows["accuracy"]["chance"] == pytest.approx(1 / len(evaluation["labels"]))
    assert rows["accuracy"]["ci_low"] == evaluation["confidence_intervals"]["accuracy"]["low"]
    assert rows["pointing_game"]["chance"] == \
        evaluation["localisation"]["overall"]["chance"]
    assert "auc_malignant" not in rows or evaluation["auc_malignant"] is not None
    table = {row["label"]: row for row in report_table(evaluation)}
    assert list(table)[:len(evaluation["labels"])] == evaluation["labels"]
    for name, scores in evaluation["per_class"].items():
        assert table[name]["support"] == scores["support"]
        assert table[name]["f1"] == pytest.approx(scores["f1"])
    assert table["micro avg"]["f1"] == pytest.approx(evaluation["accuracy"])
    saved_file = json.loads((evaluated.path / REPORT / EVALUATION).read_text())
    assert saved_file["confusion_matrix"] == evaluation["confusion_matrix"]


def test_gallery_views_follow_a_copied_run_and_an_unservable_one_is_dropped(
        evaluated: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each gallery film keeps its film view (for the page's zoom and contrast) inside the
    run; a view replaced by a link in a copied folder is dropped, its PNG still shown."""
    copy = open_run(shutil.copytree(evaluated.path, tmp_path / evaluated.name))
    _forbid_evaluating(monkeypatch)
    gallery = run_evaluation(copy)["gallery"]
    assert gallery and all(Path(g["view"]).is_relative_to(copy.path) for g in gallery)
    assert all(Path(g["view"]).suffix == ".npz" and Path(g["view"]).is_file() for g in gallery)
    victim = Path(gallery[0]["view"])
    outside = tmp_path / "outside.npz"
    shutil.copy(victim, outside)
    victim.unlink()
    victim.symlink_to(outside)
    again = run_evaluation(copy)["gallery"]
    assert "view" not in again[0] and Path(again[0]["overlay"]).is_file()
    assert all("view" in entry for entry in again[1:])
