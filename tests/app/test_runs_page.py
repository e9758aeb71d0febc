"""The Runs page: every run in a table (figures first), a comparison of two, the film-level
vs patient-grouped split of saved cross-validations, naming, downloads, the active model and
deletion behind a confirmation, driven through the whole app."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.experiments.cv import save_summary
from core.metrics.headline import by_key
from core.runs.config import TrainConfig
from core.runs.folder import DISPLAY_NAME, MODEL, WEIGHTS, Run, column_label, open_run, run_title
from factories import TINY, cv_document, open_page

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


def test_the_table_puts_the_figures_first_and_shows_no_none(app: AppTest,
                                                            trained: Run) -> None:
    table = app.dataframe[0]
    order = list(table.proto.column_order)
    assert order[:2] == ["title", "status"]  # the run's name, then how it went
    figures = [column for column in order if column.startswith(("val_", "test_"))
               and not column.endswith("_n")]
    assert figures and order[2:2 + len(figures)] == figures  # then its figures
    assert order.index("backbone") > order.index(figures[-1])  # settings after them
    assert order[-1] == "name"  # the folder, its id, last
    assert table.proto.placeholder == "—"  # an empty cell is a dash, never "None"
    titles = table.value.set_index("name")["title"]
    assert titles[trained.name] == run_title(trained.name) != trained.name
    config = json.loads(table.proto.columns)
    assert all("_" not in config[column]["label"] for column in order)  # words, not keys


def test_compare_two_runs_side_by_side(app: AppTest, trained: Run) -> None:
    chooser = app.multiselect[0]
    chooser.select(next(o for o in chooser.options if o.startswith(run_title(trained.name))))
    chooser.select(next(o for o in chooser.options if o.startswith("00000000-000000-other")))
    chooser.run()
    assert not app.exception
    settings = app.dataframe[1].value
    assert settings["setting"].tolist() == ["Learning rate"]
    assert settings.iloc[0]["00000000-000000-other"] == "0.01"
    figures = app.dataframe[2].value
    macro = figures.set_index("figure").loc[column_label("val_macro_f1")]
    assert macro["00000000-000000-other"] == "0.500"  # rounded
    assert macro[run_title(trained.name)].count(".") == 1  # runs by name, not folder
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    bars = next(c for c in charts if c["data"][0]["type"] == "bar")
    assert len(bars["data"][0]["x"]) == 2 and 0.5 in bars["data"][0]["y"]
    curves = next(c for c in charts if c["data"][0]["type"] == "scatter")
    assert {trace["name"] for trace in curves["data"]} == {run_title(trained.name),
                                                           "00000000-000000-other"}
    assert curves["layout"]["yaxis"]["title"]["text"] == "loss (validation)"
    overlay = next(box for box in app.selectbox if box.label == "Training curve to overlay")
    assert "loss (validation)" in overlay.options
    assert not any("_" in option for option in overlay.options)  # no Keras names


def test_a_finished_run_can_be_downloaded_and_made_the_active_model(app: AppTest,
                                                                    trained: Run) -> None:
    _select_run(app, run_title(trained.name))
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
    assert delete.proto.type == "secondary"  # a neutral button, not the page's main action
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
    assert not any(str(os.getpid()) in error.value for error in app.error)  # no process id
    assert open_run(models / "00000000-000000-busy").manifest["status"] == "running"
    assert "00000000-000000-busy" in _names(app)


def test_a_run_can_be_named_and_is_called_by_its_name_everywhere(app: AppTest,
                                                                 trained: Run,
                                                                 models: Path) -> None:
    from ui.runs import run_label

    _select_run(app, run_title(trained.name))
    app.text_input(key=f"runs_name_{trained.name}").input("Frozen encoder, seed 0")
    next(b for b in app.button if b.label == "Save name").click().run()
    assert not app.exception
    assert any("Named Frozen encoder, seed 0" in s.value for s in app.success)
    manifest = open_run(models / trained.name).manifest
    assert manifest[DISPLAY_NAME] == "Frozen encoder, seed 0"
    assert (models / trained.name).is_dir()  # the folder stays the id
    table = app.dataframe[0].value.set_index("name")
    assert table.loc[trained.name, "title"] == "Frozen encoder, seed 0"
    picker = app.selectbox(key="runs_selected")
    assert any(option.startswith("Frozen encoder, seed 0") for option in picker.options)
    assert run_label(models / trained.name, manifest).startswith("Frozen encoder, seed 0")
    app.text_input(key=f"runs_name_{trained.name}").input("").run()  # back to the default
    next(b for b in app.button if b.label == "Save name").click().run()
    assert app.dataframe[0].value.set_index("name").loc[trained.name, "title"] == \
        run_title(trained.name)


def _saved_pair(models: Path) -> None:
    config = TrainConfig(dataset="mias", root="/films").to_dict()
    save_summary(cv_document({**config, "split_by_patient": False},
                             [{"macro_f1": 0.5}, {"macro_f1": 0.7}, {"macro_f1": 0.6}]), models)
    save_summary(cv_document({**config, "split_by_patient": True},
                             [{"macro_f1": 0.3}, {"macro_f1": 0.4}, {"macro_f1": 0.35}]), models)


def test_the_film_level_and_patient_grouped_splits_are_shown_side_by_side(
        models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _saved_pair(models)
    app = open_page(PAGE, models, tmp_path / "data", monkeypatch)
    table = next(frame.value for frame in app.dataframe
                 if "difference (film-level minus patient-grouped)" in frame.value.columns)
    row = table.set_index("figure").loc[by_key("macro_f1").label]
    assert row["film-level split (first paper)"].startswith("0.60 [")
    assert row["patient-grouped split (ours)"].startswith("0.35 [")
    assert row["difference (film-level minus patient-grouped)"].startswith("+0.25 [")
    cards = {metric.label: metric for metric in app.metric}
    patient = cards[f"{by_key('macro_f1').label}, patient-grouped split (ours)"]
    assert patient.value == "0.35"
    assert patient.proto.delta == "-0.25 against the film-level split"  # its reference, in view
    assert any("SYNTHETIC" in warning.value for warning in app.warning)


def test_without_a_pair_the_page_says_how_to_make_one(app: AppTest) -> None:
    assert any("--compare-splits" in caption.value for caption in app.caption)
