"""The Predict page: pick a finished run, upload films, and see a class, the probabilities
and a heatmap for each good film, one error for each bad one, a warning for a picture that
is no mammogram; moving a slider or switching to side by side redraws without running the
model again, and the results are still there after a visit to another page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from core.evaluate import predict
from core.runs.config import TrainConfig
from core.runs.folder import Run
from factories import TINY, open_page

PAGE = "pages/predict.py"


@pytest.fixture(scope="module")
def models(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with one tiny run trained on SYNTHETIC films and a copy of it under a
    later name (so there is a second run to choose), plus one that failed."""
    from core.train.fit import train

    root = tmp_path_factory.mktemp("models")
    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**TINY)
    run = train(config, root)
    shutil.copytree(run.path, root / f"{run.name}-copy")
    failed = Run(root / "00000000-000000-failed")
    shutil.copytree(run.path, failed.path)
    failed.set_status("failed")
    return root


@pytest.fixture()
def app(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    return open_page(PAGE, models, tmp_path / "data", monkeypatch)


@pytest.fixture()
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many films each ``predict_uploads`` call scored (the page imports it afresh on
    every run, so the wrapper sees every call)."""
    calls: list[int] = []
    real = predict.predict_uploads

    def counting(run: Any, files: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        calls.append(len(files))
        return real(run, files, *args, **kwargs)

    monkeypatch.setattr(predict, "predict_uploads", counting)
    return calls


def _plotly_charts(at: AppTest) -> list[Any]:
    return list(at.main.get("plotly_chart"))


def _film_figures(at: AppTest) -> list[dict[str, Any]]:
    """The interactive film views (an image trace first; the probability bars are bars)."""
    charts = [json.loads(chart.proto.spec) for chart in _plotly_charts(at)]
    return [chart for chart in charts if chart["data"][0]["type"] == "image"]


def _upload(at: AppTest, films: list[Path]) -> None:
    at.file_uploader[0].set_value([(film.name, film.read_bytes(), "image/x-portable-graymap")
                                   for film in films]).run()
    assert not at.exception


def test_no_run_points_to_home_and_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMO_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("MAMMO_DATA", str(tmp_path / "data"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert "No trained model yet" in at.info[0].value
    assert not at.file_uploader


def test_uploads_good_and_bad_films(app: AppTest, models: Path, synthetic_root: Path,
                                    model_calls: list[int]) -> None:
    runs = app.selectbox[0].options
    assert len(runs) == 2 and all("(SYNTHETIC)" in name for name in runs)  # not the failed
    assert any("SYNTHETIC" in warning.value for warning in app.warning)
    films = sorted(synthetic_root.glob("*.pgm"))[:2]
    app.file_uploader[0].set_value([
        (films[0].name, films[0].read_bytes(), "image/x-portable-graymap"),
        ("x.dcm", bytes(range(256)) * 8, "application/dicom"),
        (films[1].name, films[1].read_bytes(), "image/x-portable-graymap"),
        ("y.png", b"a text file, not a film\n", "image/png"),
    ]).run()
    assert not app.exception
    assert model_calls == [1, 1, 1, 1]  # one film at a time: one fault cannot hide the rest

    assert [metric.label for metric in app.metric] == ["Predicted class"] * 2
    assert all(metric.value.split()[0] in {"ARCH", "ASYM", "CALC", "CIRC", "MISC", "NORM",
                                           "SPIC"} for metric in app.metric)
    assert len(_plotly_charts(app)) == 4  # per good film: the probabilities and the film
    figures = _film_figures(app)
    assert len(figures) == 2
    assert all(figure["layout"]["title"]["text"].startswith("predicted: ") for figure in figures)
    assert all("SYNTHETIC model" in figure["layout"]["title"]["text"] for figure in figures)
    errors = [error.value for error in app.error]
    assert len(errors) == 2 and "x.dcm" in errors[0] and "y.png" in errors[1]
    assert len(app.slider) == 6 and len(app.download_button) == 2  # opacity, window, level
    assert not app.warning[1:]  # real-looking films: no doubt beyond the SYNTHETIC model's

    first = figures[0]["data"][0]["source"]
    app.slider[0].set_value(0.9).run()
    app.toggle[1].set_value(True).run()
    assert not app.exception
    figures = _film_figures(app)
    assert figures[0]["data"][0]["source"] != first  # redrawn at the new opacity
    assert [trace["type"] for trace in figures[1]["data"]].count("image") == 2  # beside
    assert any("opacity 0.90" in caption.value for caption in app.caption)
    assert model_calls == [1, 1, 1, 1]  # redrawn from the kept arrays

    app.selectbox[0].select_index(1).run()  # another run: each film scored again, once
    assert not app.exception
    assert model_calls == [1] * 8
    chosen = app.selectbox[0].value
    assert app.session_state["active_run"] == chosen
    app.switch_page("pages/home.py").run()
    app.switch_page(PAGE).run()  # back again: the active run is the default
    assert app.selectbox[0].value == chosen and not app.exception


def test_the_page_says_what_data_the_model_was_trained_on(app: AppTest) -> None:
    captions = [caption.value for caption in app.caption]
    said = next(caption for caption in captions if caption.startswith("Trained on:"))
    assert "SYNTHETIC films" in said and "NORM" in said and "films in the dataset" in said


def test_the_training_data_line_names_each_kind_of_dataset() -> None:
    from core.data import LOADERS
    from ui.runs import trained_on

    rsna = {"dataset": {"name": "rsna", "films": 2711, "classes": ["no_cancer", "cancer"],
                        "synthetic": False}}
    assert trained_on(rsna) == ("Trained on: RSNA digital screening mammograms (cancer vs no "
                                "cancer), 2,711 films in the dataset, classes no_cancer, "
                                "cancer.")
    assert all(loader.title for loader in LOADERS.values())
    assert trained_on({}) == "Trained on: not recorded in this run."


def test_results_stay_when_you_leave_the_page_and_come_back(
        app: AppTest, synthetic_root: Path, model_calls: list[int]) -> None:
    """Leaving the page empties the upload box (Streamlit forgets undrawn widgets); coming
    back shows the same results without the model, until they are cleared."""
    films = sorted(synthetic_root.glob("*.pgm"))[:2]
    _upload(app, films)
    shown = [metric.value for metric in app.metric]
    assert len(shown) == 2 and model_calls == [1, 1]

    app.switch_page("pages/home.py").run()
    app.switch_page(PAGE).run()
    assert not app.exception
    assert not app.file_uploader[0].value  # the box is empty again
    assert [metric.value for metric in app.metric] == shown
    names = [sub.value.replace("\\", "") for sub in app.subheader]  # shown unescaped
    assert names[-2:] == [film.name for film in films]
    assert len(_film_figures(app)) == 2 and model_calls == [1, 1]
    assert any("last results" in info.value for info in app.info)

    app.button[0].click().run()  # Clear these results
    assert not app.exception and not app.metric
    app.switch_page("pages/home.py").run()
    app.switch_page(PAGE).run()
    assert not app.metric and model_calls == [1, 1]


def test_removing_the_uploads_forgets_their_results(app: AppTest, synthetic_root: Path) -> None:
    _upload(app, sorted(synthetic_root.glob("*.pgm"))[:1])
    assert len(app.metric) == 1
    app.file_uploader[0].set_value([]).run()
    assert not app.exception and not app.metric
    assert not any("last results" in info.value for info in app.info)


def test_a_picture_that_is_no_mammogram_is_answered_with_a_visible_warning(
        app: AppTest, tmp_path: Path) -> None:
    """The issue's 4000 x 3000 noise picture (here 400 x 300: the same shape and noise)."""
    noise = np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8)
    ok, png = cv2.imencode(".png", noise)
    assert ok
    app.file_uploader[0].set_value([("noise.png", png.tobytes(), "image/png")]).run()
    assert not app.exception
    assert len(app.metric) == 1 and len(_film_figures(app)) == 1  # still answered
    doubts = [warning.value for warning in app.warning if "Doubts" in warning.value]
    assert len(doubts) == 1
    assert "does not look like a mammogram" in doubts[0]
    assert "wider than tall" in doubts[0] and "noise" in doubts[0]


def test_a_dicom_film_shows_what_its_header_says(app: AppTest, synthetic_root: Path) -> None:
    """The DICOM gate, explained on the page: a CT image is answered under the modality
    doubt, with its header's fields (and the ones it leaves out) in one line."""
    from factories import dicom

    film = cv2.imread(str(min(synthetic_root.glob("*.pgm"))), cv2.IMREAD_GRAYSCALE)
    data = dicom(film.astype(np.uint16) * 16, Modality="CT", ImageLaterality="L",
                 PresentationIntentType="FOR PRESENTATION")
    app.file_uploader[0].set_value([("film.dcm", data, "application/dicom")]).run()
    assert not app.exception and len(app.metric) == 1
    assert [c.value for c in app.caption if c.value.startswith("DICOM")] == [
        r"DICOM: modality CT, FOR PRESENTATION, laterality L, view not given"]
    (doubts,) = [warning.value for warning in app.warning if "Doubts" in warning.value]
    assert "modality is CT, not MG" in doubts


def test_a_two_breast_model_asks_which_upload_is_each_film_s_other_breast(
        pair_run: Run, synthetic_root: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, model_calls: list[int]) -> None:
    at = open_page(PAGE, pair_run.path.parent, tmp_path / "data", monkeypatch)
    assert any("other breast" in caption.value for caption in at.caption)
    left, right = synthetic_root / "mdb001.pgm", synthetic_root / "mdb002.pgm"
    _upload(at, [left, right])
    menus = [box for box in at.selectbox if box.options[0].startswith("none")]
    assert [box.label.replace("\\", "") for box in menus] == [left.name, right.name]
    assert [box.value for box in menus] == [box.options[0] for box in menus]  # read alone
    assert menus[0].options[1:] == [right.name]
    assert model_calls == [1, 1]
    read_alone = [w for w in at.warning if predict.READ_ALONE.split(":")[0] in w.value]
    assert len(read_alone) == 2  # each result says it was read against itself

    menus[0].set_value(right.name).run()
    assert not at.exception
    assert model_calls == [1, 1, 1]  # only the film whose other breast changed, again
    read_alone = [w for w in at.warning if predict.READ_ALONE.split(":")[0] in w.value]
    assert len(read_alone) == 1 and len(at.metric) == 2


def test_other_models_can_join_as_an_ensemble(app: AppTest, models: Path, synthetic_root: Path,
                                              pair_run: Run, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    """The ensemble menu offers the finished runs that answer the same way (the copy, not
    the failed run); choosing one scores the uploads again with both, once per film."""
    asked: list[tuple[str, ...]] = []
    real = predict.predict_uploads

    def recording(run: Any, files: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        asked.append(tuple(Path(path).name for path in (run, *kwargs.get("also", ()))))
        return real(run, files, *args, **kwargs)

    monkeypatch.setattr(predict, "predict_uploads", recording)
    (menu,) = app.multiselect
    assert menu.value == [] and len(menu.options) == 1 and "(SYNTHETIC)" in menu.options[0]
    chosen, other = app.selectbox[0].value, menu.options[0]
    assert other != chosen
    _upload(app, sorted(synthetic_root.glob("*.pgm"))[:2])
    assert len(asked) == 2 and all(len(names) == 1 for names in asked)
    app.multiselect[0].select(other).run()
    assert not app.exception
    assert len(asked) == 4 and all(len(names) == 2 for names in asked[2:])
    assert len(app.metric) == 2
    said = [caption.value for caption in app.caption if "ensemble" in caption.value]
    assert said == ["The mean of 2 models' answers (an ensemble)."] * 2
    # A two-breast run reads films otherwise, so it is never offered beside a one-film run.
    shutil.copytree(pair_run.path, models / pair_run.name)
    try:
        app.run()
        assert not app.exception and len(app.multiselect[0].options) == 1
    finally:
        shutil.rmtree(models / pair_run.name)
