"""Does a picture look like a mammogram? Real films pass without a word; noise, a landscape
picture, a flat grey and colour photos each get a warning naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SHARED
from core.films import Film, read_film
from core.prep.plausibility import NOT_A_MAMMOGRAM, measures, plausibility_warnings
from core.prep.preprocess import look_at, upright


def _film(image: np.ndarray, name: str = "picture.png") -> Film:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return upright(read_film(data.tobytes(), name=name))


def _photos() -> list[Path]:
    photos = sorted((SHARED / "weights" / "photos").glob("*.png"))
    if not photos:
        pytest.skip(f"no photos under {SHARED / 'weights' / 'photos'}")
    return photos


def test_real_mias_films_get_no_warning(mias_root: Path) -> None:
    for name in ("mdb001", "mdb002", "mdb005"):
        film = upright(read_film(next(mias_root.glob(f"{name}.*"))))
        assert plausibility_warnings(film) == [], name


def test_synthetic_films_get_no_warning(synthetic_root: Path) -> None:
    for path in sorted(synthetic_root.glob("*.pgm"))[:4]:
        assert plausibility_warnings(upright(read_film(path))) == [], path.name


def test_a_landscape_noise_picture_is_warned_about_its_shape_and_its_noise() -> None:
    """The issue's 4000 x 3000 noise picture, at a tenth of the size (the same 4:3 shape
    and the same noise)."""
    noise = np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8)
    warnings = plausibility_warnings(_film(noise))
    assert all(warning.startswith(NOT_A_MAMMOGRAM) for warning in warnings)
    text = " ".join(warnings)
    assert "400 x 300 pixels" in text and "wider than tall" in text
    assert "noise" in text and "no breast" in text


def test_portrait_noise_is_still_noise() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (400, 300), dtype=np.uint8)
    warnings = plausibility_warnings(_film(noise))
    assert any("noise" in warning for warning in warnings)
    assert not any("shape" in warning for warning in warnings)


def test_colour_photos_are_warned_about() -> None:
    for photo in _photos():
        warnings = plausibility_warnings(upright(read_film(photo)))
        assert any("colour picture" in warning for warning in warnings), photo.name


def test_a_grey_film_saved_in_colour_is_not_a_colour_picture(mias_root: Path) -> None:
    grey = cv2.imread(str(next(mias_root.glob("mdb001.*"))), cv2.IMREAD_GRAYSCALE)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    assert ok
    film = upright(read_film(jpeg.tobytes(), name="mdb001.jpg"))
    assert film.metadata["rgb_converted"] and film.metadata["colour_share"] < 0.01
    assert plausibility_warnings(film) == []


def test_a_flat_grey_and_a_narrow_strip() -> None:
    flat = np.full((400, 300), 120, np.uint8)
    assert plausibility_warnings(_film(flat)) == [
        f"{NOT_A_MAMMOGRAM}: it is almost one flat grey, with no tissue to see"]
    strip = np.zeros((600, 100), np.uint8)
    cv2.ellipse(strip, (0, 300), (80, 200), 0, -90, 90, 200, -1)
    strip = cv2.GaussianBlur(strip, (9, 9), 3)
    assert any("narrow strip" in warning for warning in plausibility_warnings(_film(strip)))


def test_the_look_prediction_takes_once_gives_the_same_figures(mias_root: Path) -> None:
    """Prediction hands the check the look it preprocesses with (``look_at``); the figures
    are those the check finds on its own, for a real film and for a noise picture."""
    noise = np.random.default_rng(1).integers(0, 256, (300, 400), np.uint8)
    for film in (upright(read_film(next(mias_root.glob("mdb001.*")))), _film(noise)):
        look = look_at(film.pixels)
        assert measures(film, look) == measures(film)
        assert plausibility_warnings(film, look) == plausibility_warnings(film)
    with pytest.raises(ValueError, match="not of this film"):
        measures(_film(noise), look_at(noise[:-1]))
