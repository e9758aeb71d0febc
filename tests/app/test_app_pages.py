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
