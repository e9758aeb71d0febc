"""What the shipped ``.streamlit/config.toml`` makes of the served app, read back through
Streamlit itself (a misspelt key or section would be ignored without a word)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_viewers_get_no_deploy_button() -> None:
    shown = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=REPO,
                           capture_output=True, text=True, timeout=120, check=True).stdout
    settings = [line.strip() for line in shown.splitlines() if not line.startswith("#")]
    # "minimal": no Deploy, rerun or clear-cache items; the menu only holds what the app sets
    assert 'toolbarMode = "minimal"' in settings
