"""Predicting films with a trained run: good films get a class and an overlay at their own
size (with the caption above it and the colour bar below), bad ones one line each, films
that do not look like mammograms a warning each, and the command line keeps its contract."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import REPO, SHARED
from core.cli import main
from core.errors import BadConfigError
from core.evaluate.overlay_size import OVERLAY_SIDE, OverlaySize
from core.evaluate.predict import READ_ALONE, predict_films
from core.prep.plausibility import NOT_A_MAMMOGRAM
from core.render.film_view import caption, framed, shrink
from core.render.overlay import display_grey
from core.runs.config import TrainConfig
from core.runs.folder import Run
from factories import TINY

#: As tests/train/test_fit.py: small enough to train in seconds.


@functools.cache
def tiny_run(root: Path, out: Path, model: str = "attention") -> Run:
    """One trained run per kind for the whole session (test_evaluate.py shares it)."""
    from core.train.fit import train

    config = TrainConfig(dataset="mias", root=str(root)).with_overrides(**TINY, model=model)
    run = train(config, out / model)
    assert run.manifest["status"] == "done"
    return run


@pytest.fixture(scope="module")
def run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return tiny_run(synthetic_root, tmp_path_factory.getbasetemp() / "runs")


@pytest.fixture(scope="module")
def films(synthetic_root: Path) -> list[Path]:
    return sorted(synthetic_root.glob("*.pgm"))[:3]


def _holds_film(png_path: str, film: np.ndarray, text: str) -> bool:
    """Whether the PNG is ``film`` (8-bit grey) at its own size under ``text``, framed as
    ``film_view.framed`` frames it, and its pixels follow the film's grey (the heat at the
    default opacity tints, it does not hide)."""
    picture = cv2.imread(png_path, cv2.IMREAD_COLOR)[..., ::-1]
    marker = np.full((*film.shape, 3), (1, 2, 3), np.uint8)
    frame = framed(marker, text)
    if picture.shape != frame.shape:
        return False
    rows, cols = np.nonzero(np.all(frame == (1, 2, 3), axis=-1))
    region = picture[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    grey = display_grey(film).astype(float).ravel()
    return bool(np.corrcoef(region.mean(axis=-1).ravel(), grey)[0, 1] > 0.8)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_good_and_bad_films_side_by_side(run: Run, films: list[Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(films[0].read_bytes()[:200])
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    missing = tmp_path / "missing.png"
    upload = ("upload.png", films[1].read_bytes())
    sources = [films[0], corrupt, text, films[1], missing, upload]

    entries = predict_films(run, sources, tmp_path / "out")

    assert [e["file"] for e in entries] == [str(films[0]), str(corrupt), str(text),
                                            str(films[1]), str(missing), "upload.png"]
    classes = run.manifest["dataset"]["classes"]
    for entry, source in zip([entries[0], entries[3], entries[5]], [films[0], films[1], films[1]]):
        assert "error" not in entry, entry
        assert set(entry) == {"file", "label", "probabilities", "heatmap", "synthetic"}
        assert list(entry["probabilities"]) == classes
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert entry["label"] == max(entry["probabilities"], key=entry["probabilities"].get)
        assert entry["synthetic"] is True
        original = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
        assert _holds_film(entry["heatmap"], original, caption(entry["label"], synthetic=True))
    for entry, fault in zip([entries[1], entries[2], entries[4]],
                            ["truncated", "text file", "not found"]):
        assert set(entry) == {"file", "error"}
        assert "\n" not in entry["error"] and fault in entry["error"].lower()
    # Two films with one name keep two overlays, none overwritten.
    heatmaps = [entries[i]["heatmap"] for i in (0, 3, 5)]
    assert len(set(heatmaps)) == 3
    again = predict_films(run, [films[0]], tmp_path / "out")
    assert again[0]["heatmap"] not in heatmaps and Path(again[0]["heatmap"]).is_file()
    assert not [p for p in (tmp_path / "out").iterdir() if p.stat().st_size == 0]


def test_heatmap_follows_the_film_not_the_model_input(run: Run, films: list[Path],
                                                      tmp_path: Path) -> None:
    """A film twice as large gives an overlay twice as large (the map goes back through
    preprocessing onto the original grid), and the same class."""
    film = cv2.imread(str(films[2]), cv2.IMREAD_GRAYSCALE)
    big = tmp_path / "big.tif"
    cv2.imwrite(str(big), cv2.resize(film, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR))
    small, large = predict_films(run, [films[2], big], tmp_path / "out")
    large_film = cv2.imread(str(big), cv2.IMREAD_GRAYSCALE)
    assert _holds_film(large["heatmap"], large_film, caption(large["label"], synthetic=True))
    assert _holds_film(small["heatmap"], film, caption(small["label"], synthetic=True))
    assert not _holds_film(small["heatmap"], large_film, caption(small["label"], synthetic=True))


def test_a_folder_that_is_no_run_is_refused(tmp_path: Path, films: list[Path]) -> None:
    with pytest.raises(BadConfigError, match="not a run folder"):
        predict_films(tmp_path, films, tmp_path / "out")


def test_cli_predict_prints_one_entry_per_file(run: Run, films: list[Path],
                                               tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    result = _cli("predict", str(run.path), str(films[0]), str(bad), "--out",
                  str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [e["file"] for e in entries] == [str(films[0]), str(bad)]
    assert Path(entries[0]["heatmap"]).is_file() and "error" in entries[1]
    assert np.isclose(sum(entries[0]["probabilities"].values()), 1.0, atol=1e-5)


def test_cli_predict_fails_when_no_film_could_be_scored(
        run: Run, films: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0 with every film failed told scripts all was well: now the document still lists
    each film's error, one line on stderr says none was scored, the status is 2 and no
    output folder is left behind; one good film among bad ones still exits 0."""
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["predict", str(run.path), str(bad), str(tmp_path / "missing.pgm"),
                 "--out", str(out), "--json"]) == 2
    stdout, stderr = capsys.readouterr()
    entries = json.loads(stdout)
    assert [e["file"] for e in entries] == [str(bad), str(tmp_path / "missing.pgm")]
    assert all("error" in entry for entry in entries)
    assert stderr.count("\n") == 1 and "no film could be scored" in stderr and str(bad) in stderr
    assert not out.exists()
    assert main(["predict", str(run.path), str(bad), str(films[0]), "--out", str(out),
                 "--json"]) == 0


def test_cli_predict_with_a_missing_run_is_one_line(tmp_path: Path, films: list[Path]) -> None:
    result = _cli("predict", str(tmp_path / "nope"), str(films[0]), "--out", str(tmp_path),
                  "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "not a run folder" in result.stderr


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a keras archive",
                                     b"\x89HDF\r\n\x1a\n" + b"\0" * 64])
def test_corrupt_or_foreign_model_file_is_one_line(run: Run, films: list[Path], tmp_path: Path,
                                                   content: bytes) -> None:
    copy = tmp_path / "copied-run"
    shutil.copytree(run.path, copy)
    (copy / "model.keras").write_bytes(content)
    result = _cli("predict", str(copy), str(films[0]), "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "model.keras" in result.stderr
    assert "Traceback" not in result.stderr


BAD_FILMS = {
    "empty.pgm": b"",
    "truncated.pgm": b"P5\n64 64\n255\n" + b"\0" * 100,
    "wrong-magic.png": b"GIF89a" + b"\0" * 64,
    "random.dcm": bytes(range(256)) * 4,
    "bomb.pgm": b"P5\n200000 200000\n255\n",
    "notes.txt": b"a text file, not a film\n",
}


def test_every_kind_of_bad_film_is_one_line_and_the_rest_go_on(run: Run, films: list[Path],
                                                              tmp_path: Path) -> None:
    paths = []
    for name, content in BAD_FILMS.items():
        (tmp_path / name).write_bytes(content)
        paths.append(tmp_path / name)
    entries = predict_films(run, [*paths, films[0]], tmp_path / "out")
    for entry, path in zip(entries[:-1], paths):
        assert entry["file"] == str(path) and path.name in entry["error"]
        assert "\n" not in entry["error"]
    assert "label" in entries[-1] and Path(entries[-1]["heatmap"]).is_file()


def test_films_unlike_mammograms_are_scored_with_a_warning_in_the_json(
        run: Run, mias_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's 4000 x 3000 noise picture (here 400 x 300: the same shape and noise) and a
    colour photo still get a class and a heatmap, with warnings naming what is wrong; a
    real mini-MIAS film gets none."""
    noise = tmp_path / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 256, (300, 400), np.uint8))
    photo = SHARED / "weights" / "photos" / "cat.png"
    if not photo.is_file():
        pytest.skip(f"no photo at {photo}")
    real = next(mias_root.glob("mdb001.*"))
    capsys.readouterr()
    assert main(["predict", str(run.path), str(noise), str(real), str(photo), "--out",
                 str(tmp_path / "out"), "--json"]) == 0
    noisy, film, cat = json.loads(capsys.readouterr().out)
    for entry in (noisy, film, cat):
        assert "label" in entry and Path(entry["heatmap"]).is_file()
    assert "warnings" not in film
    assert all(warning.startswith(NOT_A_MAMMOGRAM) for warning in noisy["warnings"])
    assert any("wider than tall" in warning for warning in noisy["warnings"])
    assert any("noise" in warning for warning in noisy["warnings"])
    assert any("colour picture" in warning for warning in cat["warnings"])


def test_a_film_larger_than_the_overlay_size_is_drawn_at_that_size(
        run: Run, films: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 2,400 x 1,800 film is drawn with its long side at 2,048 px by default, at the side a
    person sets (on the command line too), and at its own size with the full-resolution
    map; its class and probabilities are the full film's whatever the drawing size."""
    film = cv2.imread(str(films[0]), cv2.IMREAD_GRAYSCALE)
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), cv2.resize(film, (1800, 2400), interpolation=cv2.INTER_LINEAR))
    large = cv2.imread(str(big), cv2.IMREAD_GRAYSCALE)
    out = tmp_path / "out"

    (default,) = predict_films(run, [big], out)
    (small,) = predict_films(run, [big], out, OverlaySize(overlay_side=300))
    (full,) = predict_films(run, [big], out, OverlaySize(full_resolution_map=True))
    capsys.readouterr()
    assert main(["predict", str(run.path), str(big), "--out", str(out), "--overlay-side",
                 "200", "--json"]) == 0
    (cli,) = json.loads(capsys.readouterr().out)

    text = caption(default["label"], synthetic=True)
    assert OVERLAY_SIDE == 2048
    assert _holds_film(default["heatmap"], shrink(large, 2048), text)
    assert _holds_film(small["heatmap"], shrink(large, 300), text)
    assert _holds_film(full["heatmap"], large, text)
    assert _holds_film(cli["heatmap"], shrink(large, 200), text)
    assert not _holds_film(default["heatmap"], large, text)
    for entry in (small, full, cli):
        assert entry["label"] == default["label"]
        assert entry["probabilities"] == pytest.approx(default["probabilities"], abs=1e-6)


def test_a_bad_overlay_size_is_one_line_before_the_model_loads(
        films: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("0", "-5"):
        assert main(["predict", str(tmp_path), str(films[0]), "--out", str(tmp_path / "out"),
                     "--overlay-side", value]) == 2
        assert "overlay_side must be positive" in capsys.readouterr().err
    with pytest.raises(BadConfigError, match="full_resolution_map must be true or false"):
        OverlaySize(full_resolution_map="yes")  # type: ignore[arg-type]


def test_one_look_serves_the_check_the_overlay_and_preprocessing(
        run: Run, films: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each film is shrunk for segmentation, checked for polarity and segmented once: the
    mammogram check and preprocessing use the same look, and setting the film upright
    does not check it again."""
    import core.prep.preprocess as preprocess_module

    calls = {"_shrink": 0, "polarity_of": 0, "_segment": 0}
    for name in calls:
        original = getattr(preprocess_module, name)

        def counted(*args: object, _original=original, _name=name) -> object:
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(preprocess_module, name, counted)
    entries = predict_films(run, films[:2], tmp_path / "out")
    assert all("label" in entry for entry in entries)
    assert calls == {"_shrink": 2, "polarity_of": 2, "_segment": 2}


def test_a_two_breast_run_reads_each_film_beside_the_other_given(
        pair_run: Run, synthetic_root: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Given its other breast, a film is scored as a pair, with no warning; given none, or
    one that cannot be read, it is scored against itself and its entry says so. What the
    model is handed is checked, channel by channel, against the films prepared by hand."""
    import core.evaluate.predict as predict_module
    from core.prep.preprocess import preprocess_files

    handed = []

    def scores_and_maps(model, kind, films, batch_size):
        handed.append(np.array(films))
        return real(model, kind, films, batch_size)

    real = predict_module.scores_and_maps
    monkeypatch.setattr(predict_module, "scores_and_maps", scores_and_maps)
    left, right = synthetic_root / "mdb001.pgm", synthetic_root / "mdb002.pgm"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a film")
    paired, alone, unreadable = predict_films(pair_run, [left, left, left], tmp_path / "out",
                                              others=[right, None, broken])
    assert "warnings" not in paired and Path(paired["heatmap"]).is_file()
    assert alone["warnings"] == [READ_ALONE]
    assert unreadable["warnings"][0].startswith(READ_ALONE) and str(broken) in \
        unreadable["warnings"][0]
    assert unreadable["probabilities"] == alone["probabilities"]
    (films,) = handed
    prepared, _ = preprocess_files([left, right], _prep_of(pair_run))
    assert films.shape == (3, 64, 64, 2)
    for row, other in enumerate([prepared[1], prepared[0], prepared[0]]):
        np.testing.assert_array_equal(films[row, ..., 0], prepared[0])
        np.testing.assert_array_equal(films[row, ..., 1], other)
    # Without ``others`` at all, every film is read alone, and said to be.
    (entry,) = predict_films(pair_run, [left], tmp_path / "out")
    assert entry["warnings"] == [READ_ALONE] and entry["probabilities"] == alone["probabilities"]


def _prep_of(run: Run) -> Any:
    return TrainConfig.from_manifest(run.manifest["config"]).prep


def test_other_breasts_are_refused_where_they_cannot_be_read(
        run: Run, pair_run: Run, films: list[Path], tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match="reads one film at a time"):
        predict_films(run, films[:1], tmp_path, others=films[1:2])
    with pytest.raises(BadConfigError, match="1 other breast"):
        predict_films(pair_run, films[:2], tmp_path, others=films[2:3])
    result = _cli("predict", str(pair_run.path), str(films[0]), str(films[1]), "--other",
                  str(films[1]), "--out", str(tmp_path), "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "give one per film" in result.stderr
    result = _cli("predict", str(pair_run.path), str(films[0]), "--other", str(films[1]),
                  "--out", str(tmp_path / "cli"), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    (entry,) = json.loads(result.stdout)
    assert entry["label"] and "warnings" not in entry


def _recalibrated_copy(run: Run, folder: Path, temperature: float) -> Run:
    """The run copied with another fitted temperature: the same model, other probabilities."""
    from core.runs.folder import open_run

    copy = shutil.copytree(run.path, folder / f"{run.name}-t{temperature}")
    opened = open_run(copy)
    opened.update_manifest(temperature={"temperature": temperature})
    return opened


def test_an_ensemble_scores_each_film_by_its_runs_mean(run: Run, films: list[Path],
                                                        tmp_path: Path) -> None:
    """Each film's probabilities are the mean of the runs' own, each calibrated as it would
    be alone; entries and overlays name the runs."""
    cooler = _recalibrated_copy(run, tmp_path, 0.5)
    warmer = _recalibrated_copy(run, tmp_path, 3.0)
    alone = [predict_films(member, films, tmp_path / member.name)
             for member in (run, cooler, warmer)]
    together = predict_films(run, films, tmp_path / "ensemble", also=[cooler, warmer])
    assert alone[1][0]["probabilities"] != alone[2][0]["probabilities"]
    for number, entry in enumerate(together):
        for name, p in entry["probabilities"].items():
            assert p == pytest.approx(np.mean([one[number]["probabilities"][name]
                                               for one in alone]), abs=1e-6)
        assert entry["label"] == max(entry["probabilities"], key=entry["probabilities"].get)
        assert entry["ensemble_of"] == [run.name, cooler.name, warmer.name]
        assert Path(entry["heatmap"]).is_file()
    assert "ensemble_of" not in alone[0][0]


def test_runs_that_answer_differently_are_not_averaged(
        run: Run, pair_run: Run, synthetic_root: Path, films: list[Path],
        tmp_path: Path) -> None:
    transfer = tiny_run(synthetic_root, tmp_path.parent / "runs", model="transfer")
    with pytest.raises(BadConfigError, match=r"differ in model family$"):
        predict_films(run, films[:1], tmp_path, also=[transfer])
    with pytest.raises(BadConfigError, match=r"differ in reading of the other breast$"):
        predict_films(run, films[:1], tmp_path, also=[pair_run])
    result = _cli("predict", str(run.path), str(films[0]), "--also", str(transfer.path),
                  "--out", str(tmp_path / "cli"), "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "cannot be averaged" in result.stderr


def test_cli_predict_with_an_ensemble(run: Run, films: list[Path], tmp_path: Path) -> None:
    warmer = _recalibrated_copy(run, tmp_path, 2.0)
    result = _cli("predict", str(run.path), *map(str, films[:2]), "--also", str(warmer.path),
                  "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    entries = json.loads(result.stdout)
    assert [entry["ensemble_of"] for entry in entries] == [[run.name, warmer.name]] * 2
