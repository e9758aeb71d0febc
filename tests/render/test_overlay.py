"""Viridis overlays: the film's own size, RGB order, opacity that follows the heat, window and
level, lesion circles, no text on the film, PNGs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data.records import Lesion
from core.errors import BadConfigError
from core.render.overlay import (
    HEAT_FLOOR,
    NORMALISE_PERCENTILES,
    Window,
    display_grey,
    save_png,
    viridis_overlay,
    window_level,
)

# OpenCV's Viridis at 0 and 255, as RGB (matplotlib's viridis ends, rounded).
VIRIDIS_LOW, VIRIDIS_HIGH = (68, 1, 84), (253, 231, 37)


def _film(shape: tuple[int, int] = (300, 240), dtype: type = np.uint8) -> np.ndarray:
    ramp = np.linspace(0, 1, shape[1])[None, :] * np.ones(shape)
    top = 255 if dtype == np.uint8 else 4095  # a 12-bit film in 16 bits
    return np.round(ramp * top).astype(dtype)


def _red(rgb: np.ndarray) -> np.ndarray:
    """Circle pixels (anti-aliased edges included): Viridis never pairs strong red with
    little green."""
    return (rgb[..., 0] >= 200) & (rgb[..., 1] <= 40) & (rgb[..., 2] <= 40)


def test_overlay_keeps_the_film_size_and_blends_viridis_in_rgb_order() -> None:
    film = _film()
    heat = np.zeros(film.shape, np.float32)
    heat[:, 120:] = 1.0
    pure = viridis_overlay(film, heat, opacity=1.0)
    assert pure.shape == (*film.shape, 3) and pure.dtype == np.uint8
    np.testing.assert_allclose(pure[0, -1], VIRIDIS_HIGH, atol=2)  # yellow, so R > B: RGB
    grey = viridis_overlay(film, heat, opacity=0.0)
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    assert grey[0, 0, 0] == 0 and grey[0, -1, 0] == 255
    half = viridis_overlay(film, heat, opacity=0.45)
    expected = 0.45 * np.array(VIRIDIS_HIGH) + 0.55 * 255
    np.testing.assert_allclose(half[0, -1], expected, atol=3)


def test_the_film_shows_where_the_model_did_not_look_even_at_full_opacity() -> None:
    """The old overlay tinted every pixel: at opacity 1.0 a pixel without heat was Viridis
    purple (68, 1, 84) and the film was gone. Now the heat's own strength sets its opacity:
    no heat keeps the film's grey, and more heat draws more colour."""
    film = _film()
    heat = np.zeros(film.shape, np.float32)
    heat[:, 200:] = 1.0
    heat[:, 100:200] = 0.5
    heat[:, 60:100] = HEAT_FLOOR  # at the floor: not drawn either
    grey = viridis_overlay(film, heat, opacity=0.0)
    for opacity in (0.3, 1.0):
        rgb = viridis_overlay(film, heat, opacity=opacity)
        np.testing.assert_array_equal(rgb[:, :100], grey[:, :100])
        assert not np.allclose(rgb[0, 0], VIRIDIS_LOW, atol=10)
    full = viridis_overlay(film, heat, opacity=1.0)
    np.testing.assert_allclose(full[0, -1], VIRIDIS_HIGH, atol=2)
    # Half the heat: part film, part colour, so the tissue under it still shows.
    middle = full[0, 150].astype(float)
    assert not np.allclose(middle, grey[0, 150], atol=5)
    mid_colour = cv2.applyColorMap(np.uint8([[128]]), cv2.COLORMAP_VIRIDIS)[0, 0, ::-1]
    assert not np.allclose(middle, mid_colour, atol=5)


def test_window_and_level_set_the_film_contrast_before_the_blend() -> None:
    grey = np.arange(256, dtype=np.uint8)[None, :].repeat(4, axis=0)
    np.testing.assert_array_equal(window_level(grey, Window()), grey)  # neutral: as it is
    narrow = window_level(grey, Window(width=64, level=100))
    assert narrow[0, 68] == 0 and narrow[0, 132] == 255  # level +- width / 2
    assert narrow[0, 100] == 128 and np.all(np.diff(narrow[0].astype(int)) >= 0)
    heat = np.zeros(grey.shape, np.float32)
    heat[:, -1] = 1.0
    rgb = viridis_overlay(grey, heat, opacity=1.0, stretch=False,
                          window=Window(width=64, level=100))
    np.testing.assert_array_equal(rgb[:, :-1, 0], narrow[:, :-1])
    np.testing.assert_allclose(rgb[0, -1], VIRIDIS_HIGH, atol=2)  # the heat is not windowed
    for width, level in ((0, 128), (300, 128), (64, -1), (64, 256), (float("nan"), 0)):
        with pytest.raises(BadConfigError, match="window"):
            Window(width, level)


def test_a_16_bit_film_is_stretched_to_8_bits() -> None:
    grey = viridis_overlay(_film(dtype=np.uint16), np.zeros((300, 240)), opacity=0.0)
    assert grey.min() == 0 and grey.max() == 255
    assert np.all(np.diff(grey[0, :, 0].astype(int)) >= 0)  # order of grey levels kept


@pytest.mark.parametrize(("side", "thick"), [(256, False), (1024, True)])
def test_lesion_circles_are_drawn_with_a_thickness_that_follows_the_film(side: int,
                                                                         thick: bool) -> None:
    film = _film((side, side))
    lesion = Lesion(center=(side / 2, side / 2), radius=side / 8)
    rgb = viridis_overlay(film, np.zeros(film.shape), lesions=[lesion, Lesion(None, None)])
    row, edge = side // 2, side // 2 + side // 8
    assert _red(rgb)[row, edge] and not _red(rgb)[row, side // 2]
    band = int(_red(rgb)[row, edge - 8:edge + 9].sum())
    assert (band >= 3) if thick else (band <= 2)
    assert _red(rgb).sum() > np.pi * lesion.radius  # a circle (anti-aliased), not a dot


def test_bad_overlay_inputs() -> None:
    film = _film()
    with pytest.raises(BadConfigError, match="to_film"):
        viridis_overlay(film, np.zeros((10, 10)))
    with pytest.raises(BadConfigError, match=r"\[0, 1\]"):
        viridis_overlay(film, np.full(film.shape, 2.0))
    with pytest.raises(BadConfigError, match="opacity"):
        viridis_overlay(film, np.zeros(film.shape), opacity=1.5)
    with pytest.raises(BadConfigError, match="uint8 or uint16"):
        viridis_overlay(film.astype(np.float32), np.zeros(film.shape))


def test_save_png_writes_atomically_and_reads_back(tmp_path: Path) -> None:
    rgb = viridis_overlay(_film(), np.random.default_rng(0).uniform(0, 1, (300, 240)))
    path = save_png(rgb, tmp_path / "out" / "film.png")
    assert sorted(p.name for p in path.parent.iterdir()) == ["film.png"]  # no temp left
    np.testing.assert_array_equal(cv2.imread(str(path))[..., ::-1], rgb)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(BadConfigError, match="cannot write"):
        save_png(rgb, tmp_path / "file" / "film.png")
    with pytest.raises(BadConfigError, match="RGB uint8"):
        save_png(rgb[..., 0], tmp_path / "grey.png")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_display_grey_is_numpys_percentiles_and_a_per_pixel_stretch(dtype: type) -> None:
    """The histogram and lookup table give exactly what ``np.percentile`` and stretching
    every pixel in float32 give: on noise, a skewed film, a flat one, one pixel, and a film
    mostly black (the percentiles then fall between two levels)."""
    rng = np.random.default_rng(3)
    top = 255 if dtype == np.uint8 else 4095

    def stretched(film: np.ndarray) -> np.ndarray:
        low, high = np.percentile(film, NORMALISE_PERCENTILES)
        high = max(float(high), float(low) + 1.0)
        grey = (film.astype(np.float32) - float(low)) * (255.0 / (high - float(low)))
        return np.clip(np.round(grey), 0, 255).astype(np.uint8)

    films = [rng.integers(0, top + 1, (97, 61)), rng.normal(top / 3, top / 10, (80, 50)),
             np.full((9, 7), 17), np.array([[5]]),
             (rng.random((33, 44)) < 0.8) * rng.integers(0, top + 1, (33, 44))]
    for film in films:
        film = np.clip(film, 0, top).astype(dtype)
        np.testing.assert_array_equal(display_grey(film), stretched(film))
