"""The Runs page: every run in a table, a comparison of two, downloads, the active model and
deletion behind a confirmation, driven through the whole app."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.runs.config import TrainConfig
from core.runs.folder import MODEL, WEIGHTS, Run, column_label, open_run
from factories import TINY, open_page

PAGE = "pages/runs.py"


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    from core.train.fit import train

    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**TINY)
    return train(config, tmp_path_factory.mktemp("trained"))


@pytest.fixture()
def models(trained: Run, tmp_path: Path) -> Path:
    """A private runs folder: the trained run, a copy of it that used another learning rate,
    and a copy that is still training in this very process."""
    root = tmp_path / "models"
    shutil.copytree(trained.path, root / trained.name)
    other = Run(shutil.copytree(trained.path, root / "00000000-000000-other"))
    config = {**other.manifest["config"], "learning_rate": 0.01}
    other.update_manifest(config=config, val={**other.manifest["val"], "macro_f1": 0.5})
    busy = Run(shutil.copytree(trained.path, root / "00000000-000000-busy"))
    busy.update_manifest(status="running", pid=os.getpid())
    return root


@pytest.fixture()
def app(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    return open_page(PAGE, models, tmp_path / "data", monkeypatch)


def _names(at: AppTest) -> list[str]:
    return at.dataframe[0].value["name"].tolist()


def _select_run(at: AppTest, name: str) -> None:
    picker = at.selectbox(key="runs_selected")
    picker.select(next(o for o in picker.options if o.startswith(name))).run()
    assert not at.exception


def test_the_table_lists_every_run_with_status_config_and_figures(app: AppTest,
                                                                  trained: Run) -> None:
    table = app.dataframe[0].value
    rows = {row["name"]: row for row in table.to_dict("records")}
    assert set(rows) == {trained.name, "00000000-000000-other", "00000000-000000-busy"}
    row = rows[trained.name]
    assert (row["status"], row["backbone"], row["image_size"]) == ("done", "mobilenet_025", 64)
    assert bool(row["synthetic"])
    assert "val_macro_f1" in table.columns
    assert rows["00000000-000000-busy"]["status"] == "running"


def test_compare_two_runs_side_by_side(app: AppTest, trained: Run) -> None:
    chooser = app.multiselect[0]
    chooser.select(next(o for o in chooser.options if o.startswith(trained.name)))
    chooser.select(next(o for o in chooser.options if o.startswith("00000000-000000-other")))
    chooser.run()
    assert not app.exception
    settings = app.dataframe[1].value
    assert settings["setting"].tolist() == ["learning_rate"]
    assert settings.iloc[0]["00000000-000000-other"] == "0.01"
    figures = app.dataframe[2].value
    macro = figures.set_index("figure").loc[column_label("val_macro_f1")]
    assert macro["00000000-000000-other"] == 0.5
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    bars = next(c for c in charts if c["data"][0]["type"] == "bar")
    assert len(bars["data"][0]["x"]) == 2 and 0.5 in bars["data"][0]["y"]
    curves = next(c for c in charts if c["data"][0]["type"] == "scatter")
    assert {trace["name"] for trace in curves["data"]} == {trained.name,
                                                           "00000000-000000-other"}
    assert curves["layout"]["yaxis"]["title"]["text"] == "val_loss"


def test_a_finished_run_can_be_downloaded_and_made_the_active_model(app: AppTest,
                                                                    trained: Run) -> None:
    _select_run(app, trained.name)
    labels = [button.proto.label for button in app.get("download_button")]
    assert any(MODEL in label for label in labels) and any(WEIGHTS in label for label in labels)
    make_active = next(b for b in app.button if b.label == "Use as the active model")
    make_active.click().run()
    assert not app.exception
    assert Path(app.session_state["active_run"]).name == trained.name
    assert any("active model" in success.value for success in app.success)


def test_delete_needs_confirmation_and_removes_the_run(app: AppTest, models: Path) -> None:
    _select_run(app, "00000000-000000-other")
    delete = next(b for b in app.button if b.label == "Delete run")
    assert delete.disabled  # nothing happens before the box is ticked
    app.checkbox(key="runs_confirm_delete").check().run()
    next(b for b in app.button if b.label == "Delete run").click().run()
    assert not app.exception
    assert not (models / "00000000-000000-other").exists()
    assert "00000000-000000-other" not in _names(app)
    assert any("Deleted" in success.value for success in app.success)
    assert not app.checkbox(key="runs_confirm_delete").value


def test_a_run_still_training_is_not_deleted(app: AppTest, models: Path) -> None:
    _select_run(app, "00000000-000000-busy")
    assert not [b for b in app.get("download_button")]  # no model to offer while training
    app.checkbox(key="runs_confirm_delete").check().run()
    next(b for b in app.button if b.label == "Delete run").click().run()
    assert not app.exception
    assert any("still training" in error.value for error in app.error)
    assert open_run(models / "00000000-000000-busy").manifest["status"] == "running"
    assert "00000000-000000-busy" in _names(app)
