"""The app as a person sees it: served by ``streamlit run``, opened in headless Chromium, a
film uploaded on Predict, the overlay (an interactive plotly view) waited for and
screenshotted.

Needs Debian's chromium (``.ci/run`` installs it). Set ``MAMMO_SCREENSHOTS=DIR`` to keep
the screenshots.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import factories
from conftest import REPO
from core.runs.config import TrainConfig
from core.train.fit import train

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START_TIMEOUT_S = 90
TINY = {**factories.TINY, "epochs": 1}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served_app(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app.py`` on a free port, with one tiny trained run to predict with."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("MAMMO_REQUIRE_SHARED") == "1":
            pytest.fail(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    runs = tmp_path_factory.mktemp("browser-runs")
    train(TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**TINY), runs)
    port = _free_port()
    env = {**os.environ, "MAMMO_MODELS": str(runs),
           "MAMMO_DATA": str(tmp_path_factory.mktemp("browser-data"))}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"streamlit did not answer on {url} within {START_TIMEOUT_S} s")


def test_upload_on_predict_shows_the_heatmap_overlay(served_app: str, mias_root: Path,
                                                     tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    film = next(mias_root.glob("mdb001.*"))
    shot = tmp_path / "predict.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(f"{served_app}/predict")
            page.locator('input[type="file"]').set_input_files(str(film))
            page.get_by_text("Heatmap at opacity").first.wait_for(timeout=120_000)
            page.get_by_text("Predicted class").first.wait_for()
            page.locator(".js-plotly-plot").first.wait_for()  # the probability bars
            # The film view: the overlay drawn into plotly's image layer, with its colour bar.
            page.wait_for_function(
                """() => [...document.querySelectorAll('.js-plotly-plot image')]
                         .some(image => (image.getAttribute('href') || '')
                                        .startsWith('data:image/png'))""",
                timeout=60_000)
            page.get_by_text("where the model looked").first.wait_for()
            assert page.get_by_text(film.name).count() >= 1
            assert page.locator('[data-testid="stException"]').count() == 0
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000  # a real page, not a blank one
    if keep := os.environ.get("MAMMO_SCREENSHOTS"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
