"""The app's pages run without an exception and show what they promise."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from conftest import REPO


def test_landing_page_renders() -> None:
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not app.exception
    assert "Mammogram classification" in app.title[0].value
    assert "not a medical device" in " ".join(c.value for c in app.sidebar.caption).lower()
    assert "NORM" in app.table[0].value["class"].tolist()
