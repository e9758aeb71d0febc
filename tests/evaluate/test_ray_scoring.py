"""Archive scoring on Ray: a local Ray of 2 CPUs scores a folder with bad films among good
ones into one table, a rerun scores only what is left, and the command line keeps its
contract (one JSON document, one error line)."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from test_predict import tiny_run

from core.cli import main
from core.errors import BadConfigError
from core.evaluate import score_table
from core.evaluate.film_list import input_films
from core.evaluate.predict import predict_films
from core.evaluate.ray_scoring import ray_session, score_archive
from core.runs.folder import Run

GOOD = 5
#: The bad films: a truncated PNG and a text file with a film's name.
BAD = ("corrupt.png", "notes.pgm")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray of 2 CPUs for the module (starting one takes seconds)."""
    with ray_session(num_cpus=2):
        yield


@pytest.fixture(scope="module")
def run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return tiny_run(synthetic_root, tmp_path_factory.getbasetemp() / "runs")


@pytest.fixture(scope="module")
def archive(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GOOD SYNTHETIC films (two in a subfolder), the BAD films, and files that are no
    films (a hidden file, a CSV) which the folder listing must leave out."""
    folder = tmp_path_factory.mktemp("archive")
    (folder / "more").mkdir()
    films = sorted(synthetic_root.glob("*.pgm"))[:GOOD]
    for index, film in enumerate(films):
        shutil.copy(film, folder / ("more" if index < 2 else ".") / film.name)
    (folder / "corrupt.png").write_bytes((folder / films[-1].name).read_bytes()[:200])
    (folder / "notes.pgm").write_text("a text file, not a film\n")
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "labels.csv").write_text("file,label\n")
    return folder


def _table(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / score_table.SCORES)


def test_bad_films_are_rows_with_their_error_and_the_rest_are_scored(
        local_ray: None, run: Run, archive: Path, tmp_path: Path) -> None:
    films = input_films(archive)
    assert len(films) == GOOD + len(BAD)
    out = tmp_path / "out"

    summary = score_archive(run, films, out, actors=2, batch_size=2)

    assert summary["scored"] == GOOD + len(BAD) and summary["failed"] == len(BAD)
    assert summary["already_scored"] == 0 and summary["actors"] == 2
    table = _table(out)
    assert sorted(table["file"]) == sorted(map(str, films))
    assert len(score_table.parts(out)) == 1  # the batches' parts, merged once finished
    classes = run.manifest["dataset"]["classes"]
    probabilities = [score_table.probability_column(name) for name in classes]
    bad = table[table["file"].map(lambda file: Path(file).name in BAD)]
    assert len(bad) == len(BAD)
    for row in bad.itertuples():
        assert Path(row.file).name in row.error and "\n" not in row.error
        assert pd.isna(row.label) and pd.isna(row.overlay)
    assert bad[probabilities].isna().all().all()

    good = table[table["error"].isna()].set_index("file")
    # The same films scored by local predict: the same classes and probabilities.
    local = {entry["file"]: entry
             for entry in predict_films(run, list(good.index), tmp_path / "local")}
    for file, row in good.iterrows():
        assert row["label"] == local[file]["label"]
        assert row[probabilities].tolist() == pytest.approx(
            [local[file]["probabilities"][name] for name in classes], abs=1e-5)
        assert row["abnormal_score"] == pytest.approx(1.0 - row["probability_NORM"])
        assert pd.isna(row["cancer_score"])  # seven MIAS classes: no positive class
        assert row["synthetic"] and list(row["warnings"]) == []
        # the overlay local predict draws (the framed film view), pixel for pixel
        overlay = cv2.imread(str(out / row["overlay"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(
            overlay, cv2.imread(local[file]["heatmap"], cv2.IMREAD_UNCHANGED))
    assert sorted(path.name for path in (out / score_table.OVERLAYS).iterdir()) == sorted(
        Path(name).name for name in good["overlay"])


def test_a_rerun_scores_only_the_films_not_yet_in_the_table(
        local_ray: None, run: Run, archive: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A first run on a list of three films, a second on the whole folder: the second scores
    only the rest, the first run's rows and overlays are kept as they were, and a third run
    finds nothing left to do. Before the second, the debris a run killed mid-way may leave
    is added (a hidden half-written part, the overlay of a film whose row was never
    written): the rerun reads neither as
    scores and deletes both."""
    films = input_films(archive)
    first = [films[0], films[-1], films[2]]
    listing = tmp_path / "first.txt"
    listing.write_text("# three films\n" + "\n".join(map(str, first)) + "\n")
    out = tmp_path / "out"
    command = ["predict", str(run.path), "--engine", "ray", "--out", str(out), "--json"]

    assert main([*command, "--input", str(listing)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["scored"], summary["already_scored"]) == (3, 0)
    before = _table(out).set_index("file")
    half_written = out / score_table.SCORES / ".part-000.parquet"
    half_written.write_bytes(b"PAR1 cut short")
    stray = out / score_table.OVERLAYS / "never-recorded-heatmap.png"
    stray.write_bytes(b"")

    assert main([*command, "--input", str(archive)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["films"], summary["already_scored"]) == (len(films), 3)
    assert summary["scored"] == len(films) - 3
    after = _table(out).set_index("file")
    assert sorted(after.index) == sorted(map(str, films))  # each film once
    pd.testing.assert_frame_equal(after.loc[before.index], before)
    overlays = sorted(path.name for path in (out / score_table.OVERLAYS).iterdir())
    assert len(overlays) == GOOD  # none scored twice (a second overlay would be "-1")
    assert not stray.exists() and not half_written.exists()

    assert main([*command, "--input", str(archive)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["scored"], summary["already_scored"]) == (0, len(films))


def test_a_table_of_another_run_is_refused(run: Run, archive: Path, tmp_path: Path) -> None:
    """Two models' scores in one table would be meaningless; the check needs no Ray."""
    out = tmp_path / "out"
    (out / score_table.SCORES).mkdir(parents=True)
    classes = run.manifest["dataset"]["classes"]
    entries = [{"file": str(tmp_path / "x.png"), "error": "x.png: not found"}]
    other = tmp_path / "other-run"
    shutil.copytree(run.path, other)
    score_table.write_part(out, score_table.entries_table(entries, classes, other, out, True))
    with pytest.raises(BadConfigError, match="holds the scores of run"):
        score_archive(run, input_films(archive), out)


def test_without_ray_the_engine_is_one_line_saying_how_to_install_it(
        run: Run, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if missing
    assert main(["predict", str(run.path), "--input", str(archive), "--engine", "ray",
                 "--out", str(tmp_path / "out")]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "pip install 'ray[data]'" in stderr


def test_an_unreachable_cluster_is_one_line_not_minutes_of_retries(
        run: Run, archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address, fault in ((f"127.0.0.1:{port}", "cannot reach the Ray cluster at"),
                           (f"ray://127.0.0.1:{port}", "cannot reach the Ray cluster at"),
                           ("head-node", "expected host:port")):
        assert main(["predict", str(run.path), "--input", str(archive), "--engine", "ray",
                     "--address", address, "--out", str(tmp_path / "out")]) == 2
        stderr = capsys.readouterr().err
        assert stderr.count("\n") == 1 and fault in stderr and address in stderr


def test_the_local_engine_takes_the_same_input(run: Run, archive: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``--input`` is not Ray's alone: local predict scores the folder's films too, one
    entry each, and writes no table."""
    out = tmp_path / "out"
    assert main(["predict", str(run.path), "--input", str(archive), "--out", str(out),
                 "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert sorted(entry["file"] for entry in entries) == sorted(map(str, input_films(archive)))
    assert sum("error" in entry for entry in entries) == len(BAD)
    assert not (out / score_table.SCORES).exists()


@pytest.mark.parametrize(("arguments", "fault"), [
    (["--address", "head:6379"], "--address and --actors go with --engine ray"),
    (["--engine", "ray", "--actors", "0"], "expected a positive integer"),
    (["--engine", "spark"], "invalid choice"),
])
def test_engine_options_out_of_place_are_one_line(
        run: Run, archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        arguments: list[str], fault: str) -> None:
    code = None
    try:
        code = main(["predict", str(run.path), "--input", str(archive), "--out",
                     str(tmp_path / "out"), *arguments])
    except SystemExit as exit_:  # argparse refuses a bad value itself
        code = exit_.code
    assert code == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and fault in stderr


def test_an_ensemble_scores_an_archive_as_local_predict_does(
        local_ray: None, run: Run, archive: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--also`` on Ray: each row holds the runs' mean, as local predict gives it, and the
    table names the runs, so a rerun with one run alone is refused rather than mixed in."""
    from test_predict import _recalibrated_copy

    warmer = _recalibrated_copy(run, tmp_path, 3.0)
    films = [film for film in input_films(archive) if Path(film).name not in BAD]
    out = tmp_path / "out"
    command = ["predict", str(run.path), *map(str, films), "--engine", "ray", "--out", str(out),
               "--json"]
    assert main([*command, "--also", str(warmer.path)]) == 0
    assert json.loads(capsys.readouterr().out)["scored"] == len(films)
    table = _table(out).set_index("file")
    local = predict_films(run, films, tmp_path / "local", also=[warmer])
    alone = predict_films(run, films, tmp_path / "alone")
    classes = run.manifest["dataset"]["classes"]
    for entry, single in zip(local, alone, strict=True):
        row = table.loc[entry["file"]]
        scores = [row[score_table.probability_column(name)] for name in classes]
        assert scores == pytest.approx([entry["probabilities"][name] for name in classes],
                                       abs=1e-5)
        assert scores != pytest.approx([single["probabilities"][name] for name in classes],
                                       abs=1e-5)
        assert json.loads(row["details"])["ensemble_of"] == [run.name, warmer.name]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{run.path.resolve()} + {warmer.path.resolve()}" in error
