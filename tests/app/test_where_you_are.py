"""Where you are survives: the dataset and run in the URL, the model in use named in the
sidebar, a finished job said so with the way on, and a reload during a job that keeps its
dataset. Driven through app.py as a browser session would be; the runs are folders with a
finished manifest (nothing here loads a model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from core.atomic import write_json_atomic
from core.experiments.jobs import submit, update_job
from core.runs.config import TrainConfig
from core.runs.folder import Run, run_title, utc_now

PREDICT = "pages/predict.py"


def _finished_run(root: Path, name: str, films: Path) -> Run:
    """A run folder with a finished manifest, named as a run started at that time is."""
    config = TrainConfig(dataset="mias", root=str(films))
    path = root / name
    path.mkdir(parents=True)
    write_json_atomic(path / "manifest.json", {
        "run": name, "status": "done", "seconds": 12.0, "config": config.to_dict(),
        "dataset": {"name": "mias", "root": str(films), "synthetic": True,
                    "classes": ["NORM"], "films": 28}})
    return Run(path)


@pytest.fixture
def two_runs(runs: Path, synthetic_root: Path) -> tuple[Run, Run]:
    return (_finished_run(runs, "20260101-100000-older", synthetic_root),
            _finished_run(runs, "20260102-100000-newer", synthetic_root))


def _open(page: str | None = None, **query: str) -> AppTest:
    """A fresh session whose first request is ``page`` (Home if None) with ``query``."""
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.query_params.update(query)
    if page is not None:
        app.switch_page(page)
    app.run()
    assert not app.exception
    return app


def _sidebar(app: AppTest) -> str:
    return " ".join(caption.value for caption in app.sidebar.caption)


def _link_warnings(app: AppTest) -> list[str]:
    return [w.value for w in app.warning if "link's choices" in w.value]


def test_a_link_opens_its_run_and_dataset(two_runs: tuple[Run, Run],
                                          synthetic_root: Path) -> None:
    older, _ = two_runs
    app = _open(PREDICT, run=older.name, dataset="mias", root=str(synthetic_root))
    assert app.selectbox(key="predict_run").value == str(older.path)
    sidebar = _sidebar(app)
    assert f"mias (SYNTHETIC): {synthetic_root}" in sidebar
    assert run_title(older.name, older.manifest) in sidebar and "newest run" not in sidebar
    assert not _link_warnings(app)
    # the URL keeps saying so, across a page switch (which clears query parameters)
    app.switch_page("pages/runs.py").run()
    assert (app.query_params["run"], app.query_params["root"]) == (older.name,
                                                                   str(synthetic_root))


def test_a_choice_made_in_the_page_goes_into_the_url(two_runs: tuple[Run, Run]) -> None:
    older, _ = two_runs
    app = _open(PREDICT)
    assert "run" not in app.query_params
    app.selectbox(key="predict_run").select(str(older.path)).run()
    assert app.query_params["run"] == older.name
    reload = _open(PREDICT, **{key: str(value) for key, value in app.query_params.items()})
    assert reload.selectbox(key="predict_run").value == str(older.path)  # a second tab


def test_a_bad_link_gives_one_message_and_no_choice(two_runs: tuple[Run, Run],
                                                    tmp_path: Path) -> None:
    app = _open(PREDICT, run="no-such-run", dataset="mias", root=str(tmp_path / "nowhere"))
    [message] = _link_warnings(app)
    assert "there is no run no-such-run" in message and str(tmp_path / "nowhere") in message
    assert "none chosen" in _sidebar(app)
    assert "run" not in app.query_params and "root" not in app.query_params
    app.run()  # said once, not on every rerun
    assert not _link_warnings(app)


@pytest.mark.parametrize("name", ["../outside", "..", "a/b"])
def test_a_link_cannot_name_a_folder_outside_the_runs(two_runs: tuple[Run, Run],
                                                      name: str) -> None:
    app = _open(PREDICT, run=name)
    [message] = _link_warnings(app)
    assert "not a run folder's name" in message or "there is no run" in message
    assert "newest run" in _sidebar(app)


def test_a_link_with_bad_dataset_options_says_so(runs: Path, synthetic_root: Path) -> None:
    app = _open(dataset="mias", root=str(synthetic_root), options="[not json")
    [message] = _link_warnings(app)
    assert "not a JSON object" in message


def test_the_sidebar_names_the_newest_run_when_none_was_chosen(
        two_runs: tuple[Run, Run]) -> None:
    _, newer = two_runs
    app = _open(PREDICT)
    assert f"newest run: {run_title(newer.name, newer.manifest)} (SYNTHETIC)" in _sidebar(app)
    assert app.selectbox(key="predict_run").value == str(newer.path)


def test_without_runs_the_sidebar_says_how_to_get_one(runs: Path) -> None:
    assert "none yet" in _sidebar(_open())


def test_after_a_reload_train_shows_the_running_job_with_its_dataset(
        runs: Path, synthetic_root: Path) -> None:
    config = TrainConfig(dataset="mias", root=str(synthetic_root))
    job = submit("train", {"config": config.to_dict(), "synthetic": True}, label="a job",
                 root=runs, start_worker=False)
    update_job(job.id, runs, state="running", started=utc_now())
    app = _open("pages/train.py")  # a fresh session: nothing chosen, nothing in the URL
    assert not any("Choose a dataset" in box.value for box in app.info)
    assert "Running: a job" in " ".join(m.value for m in app.markdown)
    assert str(synthetic_root) in _sidebar(app) and "that of the job a job" in _sidebar(app)
    assert app.query_params["root"] == str(synthetic_root)


def test_a_finished_job_says_so_and_leads_to_its_model(two_runs: tuple[Run, Run]) -> None:
    older, _ = two_runs
    job = submit("demo", {"config": TrainConfig(root="films").to_dict(), "synthetic": True,
                          "films": {"out": "films", "n": 140}}, label="demo", start_worker=False,
                 root=older.path.parent)
    update_job(job.id, older.path.parent, state="done", runs=[str(older.path)],
               started="2026-01-01T10:00:00+00:00", ended="2026-01-01T10:02:50+00:00")
    home = _open()
    [success] = [box.value for box in home.success if "finished" in box.value]
    assert success.startswith("The demo finished in about 3 min")
    assert run_title(older.name, older.manifest) in success
    assert "The last demo here took about 3 min" in " ".join(m.value for m in home.markdown)
    next(b for b in home.button if b.label == "Try it on a film").click().run()
    assert not home.exception
    assert home.session_state["active_run"] == str(older.path)
    assert home.selectbox(key="predict_run").value == str(older.path)  # now on Predict
    assert run_title(older.name, older.manifest) in _sidebar(home) and "newest" not in _sidebar(home)


def test_a_failed_job_says_why(runs: Path) -> None:
    job = submit("train", {"config": TrainConfig(root="films").to_dict()}, label="a job",
                 root=runs, start_worker=False)
    update_job(job.id, runs, state="failed", error="films: no film could be read",
               started=utc_now(), ended=utc_now())
    home = _open()
    assert any("Training failed: a job: films: no film could be read" in box.value
               for box in home.error)
