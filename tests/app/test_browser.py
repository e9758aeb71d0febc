"""The app as a person sees it: served by ``streamlit run``, opened in headless Chromium: a
film uploaded on Predict and its overlay (an interactive plotly view) waited for and
screenshotted; the threshold slider on Evaluate moved with the keyboard; a reload of Train
while a job trains, and a second tab, showing the same job and choices.

Every wait is for a condition with a generous limit (``WAIT_MS``): on a busy 2-core machine
the first render of a page can take a minute, and a fixed sleep would be either too short
there or wasted elsewhere.

Needs Debian's chromium (``.ci/run`` installs it). Set ``MAMMO_SCREENSHOTS=DIR`` to keep
the screenshots.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import factories
from conftest import REPO
from core.runs.config import TrainConfig
from core.train.fit import train

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START_TIMEOUT_S = 180
#: The limit of every wait in the browser (milliseconds).
WAIT_MS = 240_000
TINY = {**factories.TINY, "epochs": 1}


@dataclass(frozen=True)
class Served:
    """The served app's address and the runs folder it reads (its jobs queue too)."""

    url: str
    runs: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served_app(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Served]:
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
        yield Served(url, runs)
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


@contextmanager
def _browser() -> Iterator[Any]:
    """Headless Chromium whose pages wait up to ``WAIT_MS`` for anything they are told to."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def _page(browser: Any) -> Any:
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    return page


def _keep(shot: Path) -> None:
    assert shot.stat().st_size > 20_000  # a real page, not a blank one
    if keep := os.environ.get("MAMMO_SCREENSHOTS"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


#: The film view's overlay as plotly draws it: the data URL of its image layer.
OVERLAY_HREF = """() => [...document.querySelectorAll('.js-plotly-plot image')]
                   .map(image => image.getAttribute('href') || '')
                   .find(href => href.startsWith('data:image/png')) || ''"""


def _slider(page: Any, label: str) -> Any:
    """The Streamlit slider whose label starts with ``label``: its thumb is an
    ``input type=range`` named by ``aria-label`` (react-aria), which takes keys."""
    return page.locator(f'input[type="range"][aria-label^="{label}"]')


def test_upload_on_predict_shows_the_heatmap_overlay_and_its_opacity_slider_works(
        served_app: Served, mias_root: Path, tmp_path: Path) -> None:
    film = next(mias_root.glob("mdb001.*"))
    shot = tmp_path / "predict.png"
    with _browser() as browser:
        page = _page(browser)
        page.goto(f"{served_app.url}/predict")
        upload = page.locator('input[type="file"]')
        upload.wait_for(state="attached")  # the page's first render, however slow
        upload.set_input_files(str(film))
        page.get_by_text("Predicted class").first.wait_for()
        page.locator(".js-plotly-plot").first.wait_for()  # the probability bars
        # The film view: the overlay drawn into plotly's image layer, with its colour bar.
        page.wait_for_function(f"() => ({OVERLAY_HREF})() !== ''", timeout=WAIT_MS)
        page.get_by_text("where the model looked").first.wait_for()
        assert page.get_by_text(film.name).count() >= 1
        page.screenshot(path=str(shot), full_page=True)

        # Opacity 0 (Home on the slider) redraws the overlay as the plain film.
        before = page.evaluate(f"({OVERLAY_HREF})()")
        thumb = _slider(page, "Heatmap opacity").first
        thumb.focus()
        thumb.press("Home")
        page.wait_for_function(f"before => ({OVERLAY_HREF})() !== before", arg=before,
                               timeout=WAIT_MS)
        assert float(thumb.input_value()) == 0.0
        assert page.locator('[data-testid="stException"]').count() == 0
    _keep(shot)


def test_the_threshold_slider_on_evaluate_moves_the_operating_point(
        served_app: Served, tmp_path: Path) -> None:
    """Evaluate the tiny run in the browser, then move the threshold to its lowest value:
    every film is called abnormal there, so all abnormal films are found."""
    shot = tmp_path / "evaluate.png"
    with _browser() as browser:
        page = _page(browser)
        page.goto(f"{served_app.url}/evaluate")
        thumb = _slider(page, "Threshold on").first
        thumb.wait_for()  # evaluation runs on first visit: this waits for it
        found = page.get_by_text(re.compile(r"^At .*films found")).first
        before = found.inner_text()
        thumb.focus()
        thumb.press("Home")
        page.wait_for_function(
            """before => [...document.querySelectorAll('p')]
                         .some(p => /^At .*films found/.test(p.innerText)
                                    && p.innerText !== before)""", arg=before,
            timeout=WAIT_MS)
        after = page.get_by_text(re.compile(r"^At .*films found")).first.inner_text()
        found_n, of_n = re.search(r": (\d+) of (\d+) ", after).groups()
        assert found_n == of_n, after  # the lowest threshold finds every abnormal film
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(shot), full_page=True)
    _keep(shot)


def test_a_reload_and_a_second_tab_show_the_running_job_and_the_choices(
        served_app: Served, synthetic_root: Path, tmp_path: Path) -> None:
    """Train opened by a link with a dataset, while a job trains; reloaded, and opened in a
    second tab: each shows the same job and dataset, never "Choose a dataset" under it."""
    from core.experiments.jobs import active_jobs, cancel, get_job, submit, worker_alive

    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(
        **{**TINY, "epochs": 500})
    job = submit("train", {"config": config.to_dict(), "synthetic": True},
                 label="browser reload check", root=served_app.runs)
    shot = tmp_path / "train-reloaded.png"
    try:
        factories.wait_for(lambda: get_job(job.id, served_app.runs).state == "running",
                           "the job to start")
        query = urllib.parse.urlencode({"dataset": "mias", "root": str(synthetic_root)})
        with _browser() as browser:
            page = _page(browser)
            page.goto(f"{served_app.url}/train?{query}")
            _shows_the_job_and_dataset(page, synthetic_root)
            kept = page.url  # the choices the app keeps in the address
            assert "dataset=mias" in kept, kept
            page.reload()
            _shows_the_job_and_dataset(page, synthetic_root)
            page.screenshot(path=str(shot), full_page=True)
            second = _page(browser)
            second.goto(kept)
            _shows_the_job_and_dataset(second, synthetic_root)
            assert get_job(job.id, served_app.runs).state == "running"  # it was mid-training
    finally:
        cancel(job.id, served_app.runs)
        factories.wait_for(lambda: active_jobs(served_app.runs)[0] is None
                           and not worker_alive(served_app.runs), "the job to stop")
    _keep(shot)


def _shows_the_job_and_dataset(page: Any, root: Path) -> None:
    page.get_by_text("Running: browser reload check").first.wait_for()
    page.get_by_text(str(root)).first.wait_for()
    assert page.get_by_text("Choose a dataset on the Data page first").count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0
