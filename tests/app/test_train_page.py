"""The Train page: a short training from the form, and one job seen from every session.

Each test drives the real app (``AppTest`` on app.py) against a private runs folder; the
job is trained by the real worker process, as in use.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from core.experiments.jobs import Job, active_jobs, list_jobs, worker_alive
from core.runs.config import MODELS, SETTINGS, TrainConfig
from core.runs.folder import open_run
from core.runs.presets import PRESETS
from core.train.progress import checkpoint_state
from factories import wait_for
from ui.state import ActiveDataset
from ui.train_form import SECTIONS, other_label

TINY_FORM = {"Backbone": "mobilenet_025", "Weights": "none", "Input size (px)": 64,
             "Batch size": 16, "Patience (0: never stop early)": 0,
             "Fine-tune layers": 0, "Patch epochs (0: none)": 0}


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runs"
    monkeypatch.setenv("MAMMO_MODELS", str(folder))
    monkeypatch.setenv("MAMMO_DATA", str(tmp_path / "data"))
    return folder


def _session(dataset: Path | None) -> AppTest:
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    if dataset is not None:
        app.session_state["active_dataset"] = ActiveDataset("mias", str(dataset), {},
                                                            synthetic=True)
    app.run()
    app.switch_page("pages/train.py").run()
    assert not app.exception
    return app


def _fill(app: AppTest, **values: object) -> None:
    for widget in [*app.selectbox, *app.number_input]:
        if widget.label in values:
            widget.set_value(values[widget.label])



def _text(app: AppTest) -> str:
    return " ".join(str(element.value) for kind in ("markdown", "caption", "info", "success",
                                                   "warning", "error")
                    for element in getattr(app, kind))


def test_without_a_dataset_the_page_points_to_the_data_page(runs: Path) -> None:
    app = _session(None)
    assert "Choose a dataset on the Data page" in app.info[0].value
    assert not app.button


def test_a_short_training_from_the_form_runs_to_the_end(runs: Path,
                                                        synthetic_root: Path) -> None:
    app = _session(synthetic_root)
    assert "SYNTHETIC" in app.warning[0].value
    _fill(app, **TINY_FORM, Epochs=2, **{"Patch labels": "class"})
    app.button[-1].click().run()  # the form's submit button comes last
    assert not app.exception
    assert "Queued" in app.success[0].value
    wait_for(lambda: list_jobs(runs) and list_jobs(runs)[0].finished
          and not worker_alive(runs), "the job")
    job = list_jobs(runs)[0]
    assert job.state == "done", job.error
    manifest = open_run(job.runs[0]).manifest
    assert (manifest["config"]["epochs"], manifest["config"]["backbone"]) == (2, "mobilenet_025")
    assert manifest["config"]["patch_labels"] == "class"  # every encoder knob reaches the job

    app.run()
    assert "No training is running" in _text(app)
    assert "done" in _text(app)  # under "Recently finished"


def test_bad_sweep_grid_is_refused_in_the_page(runs: Path, synthetic_root: Path) -> None:
    app = _session(synthetic_root)
    next(box for box in app.checkbox if box.label.startswith("Sweep:")).check()
    app.text_area[0].set_value("no_such_knob=1,2")
    app.button[-1].click().run()
    assert not app.exception
    assert "not a sweepable setting" in app.error[0].value
    assert list_jobs(runs) == []


def test_reload_and_second_session_see_one_job_and_cancel_stops_it(
        runs: Path, synthetic_root: Path) -> None:
    first = _session(synthetic_root)
    _fill(first, **TINY_FORM, Epochs=300)
    first.button[-1].click().run()
    wait_for(lambda: (job := active_jobs(runs)[0]) is not None and job.latest_run is not None
          and checkpoint_state(job.latest_run) is not None, "the first epoch")

    second = _session(synthetic_root)  # another tab
    first.run()  # a reload
    for session in (first, second):
        assert "Running:" in _text(session)
        assert len(session.get("progress")) == 1
        assert "epoch" in session.get("progress")[0].proto.text
        # the live curves, epochs counted across phases (an epoch is logged before its
        # checkpoint, so the one awaited above is drawn)
        curves = json.loads(session.get("plotly_chart")[0].proto.spec)
        assert "loss (training)" in {trace["name"] for trace in curves["data"]}
        assert curves["layout"]["yaxis"]["title"]["text"] == "loss (lower is better)"
        assert not any("_" in trace["name"] for trace in curves["data"])  # no Keras names
    assert len(list_jobs(runs)) == 1

    cancel = [b for b in second.button if b.label == "Cancel this training"]
    cancel[0].click().run()
    assert not second.exception
    wait_for(lambda: list_jobs(runs)[0].finished and not worker_alive(runs), "the cancel")
    job = list_jobs(runs)[0]
    assert job.state == "cancelled"
    assert open_run(job.runs[0]).manifest["status"] == "cancelled"


# -- the form, drawn from the settings' declarations -------------------------------------------------
def _labels(app: AppTest) -> set[str]:
    return {widget.label for kind in ("selectbox", "number_input", "checkbox", "text_input")
            for widget in getattr(app, kind)}


@pytest.mark.parametrize("model", MODELS)
def test_the_form_asks_exactly_for_the_chosen_models_settings(runs: Path, tmp_path: Path,
                                                              model: str) -> None:
    app = _session(tmp_path)
    next(widget for widget in app.selectbox if widget.label == "Model").set_value(model).run()
    assert not app.exception
    every_knob = {s.knob.label for s in SETTINGS.values()} | {other_label(SETTINGS["weights"])}
    expected = {s.knob.label for s in SETTINGS.values() if s.knob.form and s.applies_to(model)}
    assert _labels(app) & every_knob == expected | {other_label(SETTINGS["weights"])}
    assert {s.knob.section for s in SETTINGS.values()} <= set(SECTIONS)  # none left out


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_preset_goes_through_the_form_unchanged(runs: Path, tmp_path: Path, preset: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every widget starts at the preset's value and gives it back as it was (no rounding,
    no None lost), so the form itself never changes what is trained."""
    submitted: list[dict] = []

    def fake_submit(kind: str, spec: dict, label: str = "", root: Path | None = None) -> Job:
        submitted.append(spec)
        return Job(id="1", kind=kind, spec=spec, label=label, submitted="now")

    monkeypatch.setattr("core.experiments.jobs.submit", fake_submit)
    app = _session(tmp_path)
    next(widget for widget in app.selectbox if widget.label == "Start from").set_value(preset)
    app.run()
    next(button for button in app.button if button.label == "Start training").click().run()
    assert not app.exception and len(submitted) == 1
    expected = PRESETS[preset].config(dataset="mias", root=str(tmp_path), dataset_options={})
    assert TrainConfig.from_dict(submitted[0]["config"]) == expected
