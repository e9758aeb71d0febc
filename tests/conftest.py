"""Shared fixtures: where the real data lives, and tiny films made on the fly.

The real mini-MIAS films, CBIS-DDSM CSVs and RSNA export live in ``../shared`` beside the clone (never in
the repo). Without them the tests that need them skip, unless ``MAMMO_REQUIRE_SHARED=1``
(set by CI), where a missing folder is a failure: CI must never pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAMMO_SHARED", REPO.parent / "shared"))


def _shared_folder(*parts: str) -> Path:
    folder = SHARED.joinpath(*parts)
    if not folder.is_dir():
        message = f"shared data not found at {folder} (set MAMMO_SHARED)"
        if os.environ.get("MAMMO_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def mias_root() -> Path:
    """The real mini-MIAS folder: 256 PNG films and the original Info.txt (read only)."""
    return _shared_folder("data", "mias")


@pytest.fixture(scope="session")
def cbis_root() -> Path:
    """The four official CBIS-DDSM description CSVs, without images (read only)."""
    return _shared_folder("data", "cbis")


@pytest.fixture(scope="session")
def rsna_root() -> Path:
    """The RSNA 640-px export: benign/ and malignant/ JPEGs, 2,711 films (read only)."""
    return _shared_folder("data", "rsna-640")


@pytest.fixture(scope="session")
def weights_root() -> Path:
    """Genuine ImageNet MobileNet weights in Keras's file names."""
    return _shared_folder("weights")


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Feature caches and Keras's weights cache of the tests stay out of the user's home."""
    os.environ["MAMMO_CACHE"] = str(tmp_path_factory.mktemp("mammo-cache"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def keras_home(weights_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras cache holding the shared ImageNet files, as a user would install them."""
    import shutil

    home = tmp_path_factory.mktemp("keras-home")
    (home / "models").mkdir()
    for file in weights_root.glob("*.h5"):
        shutil.copy(file, home / "models" / file.name)
    os.environ["KERAS_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """28 small SYNTHETIC films (4 per class) for quick pipeline tests; read only."""
    from core.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic") / "films", n=28, seed=0, size=128)


@pytest.fixture(autouse=True)
def served_navigation_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """App tests run the app in the navigation mode a served app is in.

    A served app leaves Streamlit's legacy ``pages/``-folder mode on its first request, for
    good (see ``ui.state.enter_through_app``; the browser test covers that first request).
    AppTest clears the flag before every run, so each run would start in that mode, where
    a page reruns once and drops the button click being tested; pointing AppTest at a
    subclass makes its clearing leave the real flag alone.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)
    monkeypatch.setattr(app_test, "PagesManager", type("ServedPagesManager", (PagesManager,), {}))


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty runs folder the app reads (``MAMMO_MODELS``), with its own data folder."""
    folder = tmp_path / "runs"
    monkeypatch.setenv("MAMMO_MODELS", str(folder))
    monkeypatch.setenv("MAMMO_DATA", str(tmp_path / "data"))
    return folder


@pytest.fixture(scope="session")
def pair_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One tiny run that reads both breasts (``both_breasts``), on SYNTHETIC films, trained
    once for all workers of the session; its folder holds no other run, so it also serves
    as a runs folder for the app."""
    from core.runs.config import TrainConfig
    from core.runs.folder import open_run
    from core.train.fit import train
    from factories import TINY, shared_folder

    with shared_folder(tmp_path_factory, "pair-runs") as folder:
        trained = [path for path in folder.iterdir() if (path / "manifest.json").is_file()]
        if trained:
            return open_run(trained[0])
        config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(
            **TINY, both_breasts=True)
        run = train(config, folder)
        assert run.manifest["status"] == "done"
        return run
