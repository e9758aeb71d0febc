"""Predicting uploads for the app: the same predictions as the command line, but the film and
its heatmap come back as bounded arrays, so the overlay can be redrawn at any opacity
without the model, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_predict import tiny_run

from core.errors import BadConfigError
from core.evaluate.predict import DISPLAY_SIDE, predict_films, predict_uploads
from core.render.film_view import FilmView, caption, overlay_picture
from core.render.overlay import display_grey, png_bytes, viridis_overlay
from core.runs.folder import Run


@pytest.fixture(scope="module")
def run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return tiny_run(synthetic_root, tmp_path_factory.getbasetemp() / "runs")


@pytest.fixture(scope="module")
def films(synthetic_root: Path) -> list[Path]:
    return sorted(synthetic_root.glob("*.pgm"))[:2]


def test_uploads_give_arrays_and_the_cli_overlay_is_the_same_picture(
        run: Run, films: list[Path], tmp_path: Path) -> None:
    """For a film under the display size, redrawing the kept arrays at the default opacity
    gives exactly the PNG ``predict_films`` writes: one pipeline, two outlets."""
    uploads = [(film.name, film.read_bytes()) for film in films]
    kept = predict_uploads(run, [uploads[0], ("x.dcm", bytes(range(256)) * 8),
                                 ("y.png", b"just some notes\n"), uploads[1]])
    written = predict_films(run, uploads, tmp_path / "out")

    assert [entry["file"] for entry in kept] == [films[0].name, "x.dcm", "y.png", films[1].name]
    for entry in kept[1:3]:
        assert set(entry) == {"file", "error"} and entry["file"] in entry["error"]
    for entry, cli, path in zip([kept[0], kept[3]], written, films):
        assert set(entry) == {"file", "label", "probabilities", "synthetic", "film", "heat"}
        assert entry["synthetic"] is True
        assert entry["label"] == cli["label"]
        assert entry["probabilities"] == pytest.approx(cli["probabilities"], abs=1e-6)
        original = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert entry["film"].dtype == np.uint8 and entry["film"].shape == original.shape
        assert entry["heat"].dtype == np.float32 and entry["heat"].shape == original.shape
        assert 0.0 <= entry["heat"].min() and entry["heat"].max() == pytest.approx(1.0)
        redrawn = overlay_picture(FilmView(entry["film"], entry["heat"]),
                                  caption(entry["label"], synthetic=True))
        np.testing.assert_array_equal(redrawn, cv2.imread(cli["heatmap"])[..., ::-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # uploads wrote nothing


def test_a_large_film_is_kept_at_the_display_size(run: Run, films: list[Path]) -> None:
    """A 2560 x 1920 film comes back at 1024 x 768, its heatmap on the same grid and still
    in [0, 1]; the class is the full film's."""
    film = cv2.imread(str(films[0]), cv2.IMREAD_GRAYSCALE)
    big = cv2.resize(film, (1920, 2560), interpolation=cv2.INTER_LINEAR)
    ok, tiff = cv2.imencode(".tif", big)
    assert ok
    (entry,) = predict_uploads(run, [("big.tif", tiff.tobytes())])
    assert entry["film"].shape == entry["heat"].shape == (DISPLAY_SIDE, 768)
    assert entry["heat"].min() >= 0.0 and entry["heat"].max() <= 1.0
    (small,) = predict_uploads(run, [("big.tif", tiff.tobytes())], side=100)
    assert small["film"].shape == (100, 75) and small["label"] == entry["label"]
    with pytest.raises(BadConfigError, match="at least 1 pixel"):
        predict_uploads(run, [("big.tif", tiff.tobytes())], side=0)


def test_redrawing_at_any_opacity_needs_only_the_arrays() -> None:
    """Opacity 0 is the plain film, 1 the heat at full strength; an unstretched redraw refuses a
    16-bit film (it would need the stretch it skips); the PNG bytes read back exactly."""
    rng = np.random.default_rng(0)
    film16 = rng.integers(0, 4096, (90, 60), dtype=np.uint16)
    grey = display_grey(film16)
    heat = rng.uniform(0.0, 1.0, grey.shape).astype(np.float32)

    plain = viridis_overlay(grey, heat, opacity=0.0, stretch=False)
    np.testing.assert_array_equal(plain, np.repeat(grey[..., None], 3, axis=2))
    np.testing.assert_array_equal(viridis_overlay(film16, heat, opacity=0.0), plain)
    assert not np.array_equal(viridis_overlay(grey, heat, opacity=1.0, stretch=False), plain)
    with pytest.raises(BadConfigError, match="8-bit"):
        viridis_overlay(film16, heat, stretch=False)

    half = viridis_overlay(grey, heat, opacity=0.5, stretch=False)
    decoded = cv2.imdecode(np.frombuffer(png_bytes(half), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded[..., ::-1], half)
    with pytest.raises(BadConfigError, match="RGB uint8"):
        png_bytes(grey)
