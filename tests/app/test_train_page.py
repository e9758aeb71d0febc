"""The Train page: a short training from the form, and one job seen from every session.

Each test drives the real app (``AppTest`` on app.py) against a private runs folder; the
job is trained by the real worker process, as in use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from core.experiments.jobs import Job, active_jobs, list_jobs, worker_alive
from core.runs.config import MODELS, SETTINGS, TrainConfig
from core.runs.folder import open_run
from core.runs.presets import PRESETS, weights_problem
from core.train.progress import checkpoint_state
from factories import wait_for
from ui.state import ActiveDataset
from ui.train_form import ADVANCED, SECTIONS, form_settings, other_label

TINY_FORM = {"Backbone": "mobilenet_025", "Weights": "none", "Input size (px)": 64,
             "Batch size": 16, "Patience (0: never stop early)": 0,
             "Fine-tune layers": 0, "Patch epochs (0: none)": 0}


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



def _start(app: AppTest) -> Any:
    return next(button for button in app.button if button.label == "Start training")


def _estimate(app: AppTest) -> str:
    return next(box.value for box in app.info if "Estimate:" in box.value)


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
    _fill(app, **TINY_FORM, Epochs=2)
    app.run()
    _start(app).click().run()
    assert not app.exception
    assert "Queued" in app.success[0].value
    wait_for(lambda: list_jobs(runs) and list_jobs(runs)[0].finished
          and not worker_alive(runs), "the job")
    job = list_jobs(runs)[0]
    assert job.state == "done", job.error
    manifest = open_run(job.runs[0]).manifest
    assert (manifest["config"]["epochs"], manifest["config"]["backbone"]) == (2, "mobilenet_025")
    # the encoder knobs reach the job too
    assert (manifest["config"]["patch_epochs"], manifest["config"]["fine_tune_layers"]) == (0, 0)
    assert manifest["peak_memory_gb"] > 0  # the pace a later estimate is scaled from

    app.run()
    assert "No training is running" in _text(app)
    assert "Training finished in about" in _text(app) and Path(job.runs[0]).name in _text(app)
    assert "done" in _text(app)  # under "Recently finished"
    assert "scaled from run" in _text(app)  # the estimate now uses the run just measured


def test_bad_sweep_grid_is_refused_in_the_page(runs: Path, synthetic_root: Path) -> None:
    app = _session(synthetic_root)
    next(box for box in app.checkbox if box.label.startswith("Sweep:")).check().run()
    app.text_area[0].set_value("no_such_knob=1,2").run()
    assert not app.exception
    assert "not a sweepable setting" in app.error[0].value
    assert _start(app).disabled
    assert list_jobs(runs) == []


def test_a_sweep_is_estimated_run_by_run(runs: Path, synthetic_root: Path,
                                         keras_home: Path) -> None:
    app = _session(synthetic_root)
    next(box for box in app.checkbox if box.label.startswith("Sweep:")).check().run()
    app.text_area[0].set_value("patience=5,10\nseed=1,2,3").run()
    assert not app.exception and not _start(app).disabled
    assert "6 runs, one after another" in _estimate(app)


def test_reload_and_second_session_see_one_job_and_cancel_stops_it(
        runs: Path, synthetic_root: Path) -> None:
    first = _session(synthetic_root)
    _fill(first, **TINY_FORM, Epochs=300)
    first.run()
    _start(first).click().run()
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
    """The model's own settings, and of those only what the other choices make matter."""
    app = _session(tmp_path)
    next(widget for widget in app.selectbox if widget.label == "Model").set_value(model).run()
    assert not app.exception
    every_knob = {s.knob.label for s in SETTINGS.values()} | {other_label(SETTINGS["weights"])}
    chosen = {**TrainConfig().to_dict(), "model": model}
    expected = {s.knob.label for s in form_settings(chosen)} | {SETTINGS["model"].knob.label}
    assert _labels(app) & every_knob == expected
    assert {s.knob.section for s in SETTINGS.values()} <= set(SECTIONS)  # none left out
    assert "Momentum" not in expected  # the presets' Adam has none
    assert ("Weight learn-rate factor" in expected) == (model == "transfer")


def test_the_form_follows_the_choices_it_depends_on(runs: Path, tmp_path: Path) -> None:
    """Momentum only with SGD, the patch settings only with patch epochs, the target only
    when augmenting, a file box only for a weights file; advanced ones folded away."""
    app = _session(tmp_path)
    assert "Momentum" not in _labels(app)
    assert {"Patch layers", "Patch labels", "Fine-tune epochs"} <= _labels(app)
    _fill(app, Optimizer="sgd", **{"Patch epochs (0: none)": 0, "Fine-tune layers": 0,
                                   "Class balance": "augment"})
    app.run()
    assert not app.exception
    labels = _labels(app)
    assert "Momentum" in labels
    assert not labels & {"Patch layers", "Patch labels", "Patch size (px)", "Fine-tune epochs"}
    assert SETTINGS["augment_target"].knob.label in labels
    assert other_label(SETTINGS["weights"]) not in labels
    next(w for w in app.selectbox if w.label == "Weights").set_value("a file").run()
    assert other_label(SETTINGS["weights"]) in _labels(app)
    advanced = next(e for e in app.expander if e.label == ADVANCED)
    folded = {w.label for kind in ("selectbox", "number_input", "checkbox")
              for w in getattr(advanced, kind)}
    assert "Momentum" in folded and "Optimizer" not in folded


def test_the_estimate_comes_before_start(runs: Path, synthetic_root: Path) -> None:
    app = _session(synthetic_root)
    text = _estimate(app)
    assert "Up to about" in text and "GB of memory" in text
    assert "bench/bench_train.py" in text  # no run here yet: the documented figure, named
    before = text
    _fill(app, Epochs=300)
    app.run()
    assert _estimate(app) != before


def test_a_preset_whose_weights_are_missing_cannot_start(
        runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start is disabled with the reason and the file to place; one click switches the
    preset to a random-init encoder, named as such, and then it can start."""
    (tmp_path / "empty-keras").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    app = _session(tmp_path)
    next(w for w in app.selectbox if w.label == "Start from").set_value("paper1").run()
    assert not app.exception
    assert _start(app).disabled
    warning = next(w.value for w in app.warning if "Cannot start" in w.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in warning
    assert f"in {tmp_path / 'empty-keras' / 'models'}/" in warning and "random-init" in warning
    next(b for b in app.button if b.label.startswith("Train with a random-init")).click().run()
    assert not app.exception
    assert not _start(app).disabled
    assert next(w for w in app.selectbox if w.label == "Weights").value == "none"
    assert "random-init encoder" in _text(app)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_preset_goes_through_the_form_unchanged(runs: Path, tmp_path: Path, preset: str,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  keras_home: Path) -> None:
    """Every widget starts at the preset's value and gives it back as it was (no rounding,
    no None lost), so the form itself never changes what is trained; a preset whose
    ImageNet file is missing goes through with the one change its button makes."""
    submitted: list[dict] = []

    def fake_submit(kind: str, spec: dict, label: str = "", root: Path | None = None) -> Job:
        submitted.append(spec)
        return Job(id="1", kind=kind, spec=spec, label=label, submitted="now")

    monkeypatch.setattr("core.experiments.jobs.submit", fake_submit)
    app = _session(tmp_path)
    next(widget for widget in app.selectbox if widget.label == "Start from").set_value(preset)
    app.run()
    expected = PRESETS[preset].config(dataset="mias", root=str(tmp_path), dataset_options={})
    if weights_problem(expected):
        next(b for b in app.button if b.label.startswith("Train with a random-init")).click()
        app.run()
        expected = expected.with_overrides(weights="none")
    _start(app).click().run()
    assert not app.exception and len(submitted) == 1
    assert TrainConfig.from_dict(submitted[0]["config"]) == expected
