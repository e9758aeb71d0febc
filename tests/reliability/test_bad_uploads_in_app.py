"""Tried as a new user would: every bad file of issue 7 uploaded on Predict and on Data shows
an error or a warning in the page naming it, the good files around it still work, and the
app keeps working afterwards (no exception, other pages still open). The command line's
``predict`` is here too, since it needs the same trained run (one per module, about 10 s).

Predict gets every bad film in one upload with the odd-but-good ones (16-bit, RGB, a PNG
named .pgm). Data gets a MIAS archive (a zip built here) and the same folder typed in: good
films, bad films and bad Info.txt rows; and class folders whose bad films show up in the
film browser, one warning each.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import factories
from conftest import REPO
from core.cli import main
from core.data.records import SYNTHETIC_MARKER
from core.runs.config import TrainConfig
from core.runs.folder import Run
from film_cases import Case, bad_films, first_film, good_variants, pgm

PREDICT = "pages/predict.py"
DATA = "pages/data.py"
TINY = {**factories.TINY, "epochs": 1}
#: Info.txt rows that must be skipped, and what their warning says.
BAD_ROWS = [("mdb090 G BLOB B 1 2 3", "unknown class 'BLOB'"),
            ("mdb091 F CIRC B 53x 425 19", "are not whole numbers")]


@pytest.fixture(autouse=True)
def served_navigation_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """As tests/conftest.py does for tests/app: run the app in a served app's navigation
    mode, so that a button click is not dropped by a legacy-mode rerun."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)
    monkeypatch.setattr(app_test, "PagesManager", type("ServedPagesManager", (PagesManager,), {}))


@pytest.fixture(scope="module")
def grey_film(synthetic_root: Path) -> np.ndarray:
    return first_film(synthetic_root)


@pytest.fixture(scope="module")
def tiny_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One small attention run on SYNTHETIC films, for Predict and the CLI."""
    from core.train.fit import train

    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**TINY)
    run = train(config, tmp_path_factory.mktemp("reliability-models"))
    assert run.manifest["status"] == "done"
    return run


def _app(models: Path, data: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> AppTest:
    monkeypatch.setenv("MAMMO_MODELS", str(models))
    monkeypatch.setenv("MAMMO_DATA", str(data))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    app.switch_page(page).run()
    assert not app.exception
    return app


def _still_works(app: AppTest) -> None:
    """Every page still opens after the bad files."""
    for page in ("pages/home.py", "pages/runs.py", DATA, PREDICT):
        app.switch_page(page).run()
        assert not app.exception, page


# -- Predict and the command line ----------------------------------------------------------------
def test_predicting_names_every_bad_film_and_scores_every_good_one(
        tiny_run: Run, grey_film: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """On the Predict page, then with ``python -m core predict``: one test, so that the run
    is trained once even when pytest-xdist spreads this module over two workers."""
    bad = bad_films(grey_film)
    good = [case for case in good_variants(grey_film)
            if case.name in ("grey8.pgm", "grey16.png", "rgb16.tif", "really-a-png.pgm",
                             "rgba8.png", "grey12.dcm", "rgb8.jpg")]
    mixed = [good[0], *bad[:6], *good[1:4], *bad[6:], *good[4:]]
    app = _app(tiny_run.path.parent, tmp_path / "data", monkeypatch, PREDICT)
    app.file_uploader[0].set_value([(case.name, case.data, "application/octet-stream")
                                    for case in mixed]).run()
    assert not app.exception

    errors = [error.value for error in app.error]
    assert len(errors) == len(bad)
    for message, case in zip(errors, bad):
        assert message.startswith(f"{case.name}: ") and case.phrase in message, message
        assert "Traceback" not in message
    assert [metric.label for metric in app.metric] == ["Predicted class"] * len(good)
    # per good film: its probability bars and its film view (both plotly), one PNG download
    assert len(list(app.main.get("plotly_chart"))) == 2 * len(good)
    assert len(app.download_button) == len(good)
    titles = [header.value.replace("\\", "") for header in app.subheader]
    assert titles == [case.name for case in mixed]

    _still_works(app)
    app.file_uploader[0].set_value([(good[0].name, good[0].data, "image/x-portable-graymap")])
    app.run()
    assert not app.exception and not app.error and len(app.metric) == 1

    # The command line: the same files from disk, and one that is not there.
    (tmp_path / "in").mkdir()
    films = []
    for case in mixed:
        films.append(tmp_path / "in" / case.name)
        films[-1].write_bytes(case.data)
    nowhere = tmp_path / "nowhere.png"
    assert main(["predict", str(tiny_run.path), *map(str, films), str(nowhere),
                 "--out", str(tmp_path / "out"), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [entry["file"] for entry in entries] == [*map(str, films), str(nowhere)]
    good_names = {case.name for case in good}
    for entry, case in zip(entries, [*mixed, Case("nowhere.png", b"", "file not found")]):
        if case.name in good_names:
            assert entry["synthetic"] is True and Path(entry["heatmap"]).is_file(), entry
        else:
            assert set(entry) == {"file", "error"}, entry
            assert entry["error"].startswith(f"{entry['file']}: ") and case.phrase in entry["error"]
    assert len(list((tmp_path / "out").iterdir())) == len(good)


# -- Data -----------------------------------------------------------------------------------------
def _mias_files(grey_film: np.ndarray) -> tuple[dict[str, bytes], list[str], list[Case]]:
    """A MIAS folder's files (relative path -> bytes): eight good films, the bad ones, and an
    Info.txt with a row for each plus two bad rows. Also the good ids and the bad cases."""
    bad = [case for case in bad_films(grey_film)
           if case.name in ("empty.pgm", "truncated.pgm", "truncated.png", "chunk-length.png",
                            "gif-named.png", "huge.png", "notes.png", "no-pixels.dcm")]
    files: dict[str, bytes] = {}
    good = []
    for number in range(1, 9):  # four patients: enough for the page's train/test split
        films = np.roll(grey_film, 5 * number, axis=0)
        files[f"mias/mdb{number:03d}.pgm"] = pgm(films)
        good.append(f"mdb{number:03d}")
    for number, case in enumerate(bad, start=10):
        suffix = ".pgm" if case.name.endswith(".dcm") else Path(case.name).suffix
        files[f"mias/films/mdb{number:03d}{suffix}"] = case.data
    refnums = good + [f"mdb{n:03d}" for n in range(10, 10 + len(bad))]
    rows = [f"{refnum} G NORM " for refnum in refnums] + [row for row, _ in BAD_ROWS]
    info = f"{SYNTHETIC_MARKER}: made by a test from a synthetic film\n" + "\n".join(rows)
    files["mias/Info.txt"] = info.encode()
    return files, good, bad


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _shows_the_dataset_and_its_warnings(app: AppTest, good: list[str], bad: list[Case]) -> None:
    assert not app.exception
    assert not app.error, [error.value for error in app.error]
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Films"] == str(len(good))
    count = len(bad) + len(BAD_ROWS)
    (summary,) = [w.value for w in app.warning if "warning(s) while reading" in w.value]
    assert summary.startswith(f"{count} warning(s) while reading")
    lines = [text.value for text in app.text]
    assert len(lines) == count
    for number, case in enumerate(bad, start=10):
        (line,) = [text for text in lines if f"mdb{number:03d}." in text]
        assert line.endswith("; film left out"), line
    for (row, why), number in zip(BAD_ROWS, (len(good) + len(bad) + 2, len(good) + len(bad) + 3)):
        (line,) = [text for text in lines if f"Info.txt line {number}:" in text]
        assert why in line and line.endswith("; row skipped")
    assert len(app.get("image")) == len(good)  # the browser shows the good films only
    assert any("SYNTHETIC dataset" in w.value for w in app.warning)


def test_data_shows_a_mias_archive_with_its_bad_films_and_rows(
        grey_film: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, good, bad = _mias_files(grey_film)
    app = _app(tmp_path / "models", tmp_path / "data", monkeypatch, DATA)
    app.radio(key="data_source").set_value("MIAS archive (.tar.gz/.zip)").run()
    app.file_uploader(key="archive_upload").upload("bad films.zip", _zip(files))
    app.run()
    app.button(key="use_archive").click().run()
    _shows_the_dataset_and_its_warnings(app, good, bad)
    assert (tmp_path / "data/uploads/bad_films/mias/Info.txt").is_file()
    _still_works(app)


def test_data_shows_a_mias_folder_with_its_bad_films_and_rows(
        grey_film: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, good, bad = _mias_files(grey_film)
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    app = _app(tmp_path / "models", tmp_path / "data", monkeypatch, DATA)
    app.text_input(key="mias_path").input(str(tmp_path / "mias"))
    app.button(key="use_mias").click().run()
    _shows_the_dataset_and_its_warnings(app, good, bad)

    # An Info.txt without one usable row: one error line, and the dataset shown stays.
    (tmp_path / "worse").mkdir()
    (tmp_path / "worse" / "Info.txt").write_text("\n".join(row for row, _ in BAD_ROWS))
    app.text_input(key="mias_path").input(str(tmp_path / "worse"))
    app.button(key="use_mias").click().run()
    assert not app.exception
    (error,) = [error.value for error in app.error]
    assert error == (f"Cannot use {tmp_path / 'worse'}: {tmp_path / 'worse' / 'Info.txt'}: "
                     f"none of its {len(BAD_ROWS)} mdbNNN lines is usable")
    assert {metric.label: metric.value for metric in app.metric}["Films"] == str(len(good))


def test_data_names_each_bad_film_of_class_folders(
        grey_film: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Class folders are probed when loaded (see core.data.folder; issue 18, fault 6): their
    bad films are named in the warnings, left out of the count, and the browser shows the
    good ones only."""
    bad = [case for case in bad_films(grey_film) if case.name != "huge.pgm"][:8]
    good = [case for case in good_variants(grey_film)
            if case.name in ("grey16.png", "rgb8.jpg", "really-a-png.pgm")]
    for folder, cases in (("BAD", bad), ("GOOD", good)):
        (tmp_path / "films" / folder).mkdir(parents=True)
        for case in cases:
            (tmp_path / "films" / folder / case.name).write_bytes(case.data)
    app = _app(tmp_path / "models", tmp_path / "data", monkeypatch, DATA)
    app.radio(key="data_source").set_value("Class folders").run()
    app.text_input(key="folder_path").input(str(tmp_path / "films"))
    app.button(key="use_folder").click().run()
    assert not app.exception and not app.error
    assert {metric.label: metric.value for metric in app.metric}["Films"] == str(len(good))
    assert len(app.get("image")) == len(good)
    lines = [text.value for text in app.text]
    for case in bad:
        (line,) = [text for text in lines
                   if text.startswith(f"{tmp_path / 'films' / 'BAD' / case.name}:")]
        assert case.phrase in line and line.endswith("; film left out"), line
