"""The app's pages run without an exception and show what they promise."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from core.runs.presets import demo_weights_file


def test_landing_page_renders() -> None:
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not app.exception
    assert "Mammogram classification" in app.title[0].value
    assert "not a medical device" in " ".join(c.value for c in app.sidebar.caption).lower()
    assert "NORM" in app.table[0].value["class"].tolist()


def test_the_landing_page_warns_when_the_demo_would_be_random_init(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keras_home: Path) -> None:
    monkeypatch.setenv("MAMMO_MODELS", str(tmp_path / "models"))
    home = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not home.warning
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    home = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert demo_weights_file() in home.warning[0].value
    assert "random-init" in home.warning[0].value


def test_the_demo_button_is_off_while_a_demo_is_under_way(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second click would queue a second demo: while one is queued the button is off."""
    from core.experiments.jobs import submit
    from core.runs.presets import demo_job

    monkeypatch.setenv("MAMMO_MODELS", str(tmp_path / "models"))
    home = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    (button,) = [b for b in home.button if b.label == "Run the demo"]
    assert not button.disabled
    submit("demo", demo_job(str(tmp_path / "films")), label="demo", root=tmp_path / "models",
           start_worker=False)
    home = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    (button,) = [b for b in home.button if b.label == "Run the demo"]
    assert button.disabled
