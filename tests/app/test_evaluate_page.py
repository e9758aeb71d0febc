"""The Evaluate page: a finished run's figures, charts, localisation, films and report,
driven through the whole app as a browser session would."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import REPO
from core.evaluate import saved
from core.metrics.headline import HEADLINE, by_key
from core.runs.config import TrainConfig
from core.runs.folder import REPORT, Run
from factories import TINY, open_page

PAGE = "pages/evaluate.py"


@pytest.fixture(scope="module")
def models(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with one tiny run trained on SYNTHETIC films, a copy of it under an
    older name, and a run that failed (which the page must not offer)."""
    from core.train.fit import train

    root = tmp_path_factory.mktemp("models")
    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**TINY)
    run = train(config, root)
    shutil.copytree(run.path, root / "00000000-000000-copy")
    failed = Run(shutil.copytree(run.path, root / "00000000-000000-failed"))
    failed.set_status("failed", error="RuntimeError: out of memory")
    return root


@pytest.fixture()
def app(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    return open_page(PAGE, models, tmp_path / "data", monkeypatch)


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _trace_names(chart: dict) -> list[str]:
    return [trace.get("name") for trace in chart["data"]]


def test_evaluate_shows_figures_charts_films_and_report(app: AppTest, models: Path) -> None:
    assert "Evaluate" in app.title[0].value
    choices = app.selectbox(key="evaluate_run").options
    assert not any("failed" in choice for choice in choices)
    assert all("(SYNTHETIC)" in choice for choice in choices)
    assert any("SYNTHETIC" in warning.value for warning in app.warning)

    headline = app.dataframe[0].value
    assert "accuracy" in headline["figure"].tolist()
    assert set(headline["figure"]) <= {metric.label for metric in HEADLINE}
    assert {metric.label for metric in app.metric} >= {by_key("macro_f1").label,
                                                       by_key("accuracy").label}
    assert any(column.startswith("always ") for column in headline.columns)
    assert "chance" in headline.columns
    report = app.dataframe[1].value
    assert {"NORM", "CALC", "macro avg", "weighted avg"} <= set(report["label"])

    charts = _charts(app)
    heatmap = next(c for c in charts if c["data"][0]["type"] == "heatmap")
    assert heatmap["layout"]["xaxis"]["title"]["text"] == "predicted"
    roc = next(c for c in charts if any("vs rest" in str(n) for n in _trace_names(c)))
    assert _trace_names(roc)[0].startswith("chance")
    training = next(c for c in charts if "loss (training)" in _trace_names(c))
    assert "loss (validation)" in _trace_names(training)
    assert any(_trace_names(c)[:2] == ["sensitivity", "specificity"] for c in charts)

    assert any("pointing game" in metric.label for metric in app.metric)
    captions = [caption for image in app.image for caption in image.captions]
    assert captions and all(caption.startswith(("✓ right", "✗ wrong")) for caption in captions)
    labels = [button.proto.label for button in app.get("download_button")]
    assert any("zip" in label for label in labels) and any("html" in label for label in labels)
    run = Path(app.selectbox(key="evaluate_run").value)
    assert (run / REPORT / "report.html").is_file()


def test_choosing_a_run_makes_it_active_and_a_second_visit_reads_the_saved_report(
        app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    picker = app.selectbox(key="evaluate_run")
    other = picker.options[-1]
    name = other.removesuffix(" (SYNTHETIC)")
    picker.select(other).run()
    assert not app.exception
    assert Path(app.session_state["active_run"]).name == name
    assert app.get("plotly_chart")

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated again")

    st.cache_data.clear()  # as after a server restart: only the run folder remembers
    monkeypatch.setattr(saved, "evaluate_run", fail)
    app.switch_page("pages/home.py").run()
    app.switch_page(PAGE).run()
    assert not app.exception and not app.error
    assert Path(app.selectbox(key="evaluate_run").value).name == name  # the active run
    assert app.get("plotly_chart") and app.image


def test_a_run_whose_films_are_gone_shows_one_error(models: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "models"
    source = next(p for p in sorted(models.iterdir()) if p.name.endswith("-copy"))
    run = Run(shutil.copytree(source, root / source.name, ignore=shutil.ignore_patterns(REPORT)))
    manifest = run.manifest
    manifest["config"]["root"] = str(tmp_path / "missing")
    run.update_manifest(config=manifest["config"])
    monkeypatch.setenv("MAMMO_MODELS", str(root))
    monkeypatch.setenv("MAMMO_DATA", str(tmp_path / "data"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any("Cannot evaluate" in error.value for error in at.error)
    assert not at.get("plotly_chart")


def test_a_copied_run_whose_report_links_out_is_not_served(
        app: AppTest, models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run folder from elsewhere whose report.html is a link to another file of the server:
    the page offers no report.html download, and the report archive leaves the link out."""
    from core.runs.files import report_zip

    run = Path(app.selectbox(key="evaluate_run").value)  # evaluated by opening the page
    root = tmp_path / "models"
    copied = Path(shutil.copytree(run, root / run.name, symlinks=True))
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's own file")
    (copied / REPORT / "report.html").unlink()
    (copied / REPORT / "report.html").symlink_to(secret)
    monkeypatch.setenv("MAMMO_MODELS", str(root))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert Path(at.selectbox(key="evaluate_run").value) == copied
    labels = [button.proto.label for button in at.get("download_button")]
    assert any("zip" in label for label in labels)
    assert not any("html" in label for label in labels)
    archive = zipfile.ZipFile(io.BytesIO(report_zip(Run(copied))))
    assert "report.html" not in archive.namelist() and "evaluation.json" in archive.namelist()
    assert not any(b"server's own" in archive.read(name) for name in archive.namelist())


def _film_figures(at: AppTest) -> list[dict]:
    return [chart for chart in _charts(at) if chart["data"][0]["type"] == "image"]


def test_a_gallery_film_can_be_inspected_at_any_contrast_and_zoomed(app: AppTest) -> None:
    """Under the gallery, one film as an interactive figure (zoom and pan are plotly's): the
    caption above it, the colour bar beside it, and window, level and opacity that redraw it;
    the download is the picture on screen."""
    picker = app.selectbox(key="gallery_film")
    assert picker.options
    (figure,) = _film_figures(app)
    assert "actual:" in figure["layout"]["title"]["text"]
    bar = next(trace for trace in figure["data"] if trace["type"] == "scatter")
    assert bar["marker"]["colorbar"]["title"]["text"] == "where the model looked"
    before = figure["data"][0]["source"]
    app.slider(key="window-gallery").set_value(40).run()
    app.slider(key="level-gallery").set_value(60).run()
    assert not app.exception
    (contrasted,) = _film_figures(app)
    assert contrasted["data"][0]["source"] != before
    assert any("window 40 grey levels at level 60" in caption.value for caption in app.caption)
    app.toggle(key="side-gallery").set_value(True).run()
    (beside,) = _film_figures(app)
    assert [trace["type"] for trace in beside["data"]].count("image") == 2
    labels = [button.proto.label for button in app.get("download_button")]
    assert "Download this view (PNG)" in labels
    if len(picker.options) > 1:
        app.selectbox(key="gallery_film").select_index(1).run()
        assert not app.exception and len(_film_figures(app)) == 1
