"""A film as a reader sees it: caption above and colour bar below the film (never on it), the
interactive figure with its colour bar and zoom, and the stored view read back safely."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import BadConfigError
from core.geometry import Lesion
from core.render.film_view import (
    HEAT_MEANING,
    FilmView,
    caption,
    film_figure,
    framed,
    heat_scale,
    overlay_picture,
)
from core.render.overlay import LESION_RGB, Window, viridis_overlay


def _view(shape: tuple[int, int] = (96, 64), lesions: tuple[Lesion, ...] = ()) -> FilmView:
    ramp = np.linspace(0, 255, shape[1])[None, :] * np.ones(shape)
    heat = np.zeros(shape, np.float32)
    heat[shape[0] // 4: shape[0] // 2, shape[1] // 4: shape[1] // 2] = 1.0
    return FilmView(np.round(ramp).astype(np.uint8), heat, lesions)


def _locate(picture: np.ndarray, film: np.ndarray) -> tuple[int, int]:
    """Where ``film`` lies, untouched, inside ``picture`` (top, left)."""
    match = cv2.matchTemplate(picture, film, cv2.TM_SQDIFF)
    _, _, (left, top), _ = cv2.minMaxLoc(match)
    return top, left


def test_the_picture_keeps_the_film_untouched_with_its_labels_outside() -> None:
    view = _view((320, 240), (Lesion((100.0, 100.0), 20.0),))
    overlay = viridis_overlay(view.film, view.heat, 0.45, view.lesions, stretch=False)
    picture = overlay_picture(view, caption("CIRC", "NORM"))
    top, left = _locate(picture, overlay)
    np.testing.assert_array_equal(picture[top:top + 320, left:left + 240], overlay)
    assert top > 10 and picture.shape[0] - (top + 320) > 20  # a band above and below
    above, below = picture[:top], picture[top + 320:]
    assert (above < 100).all(axis=-1).any()  # dark caption text in the band above
    scale = np.array([colour for _, colour in heat_scale(200)])
    yellow = np.all(np.abs(below.astype(int) - scale[-1]) <= 3, axis=-1)
    grey = np.all(np.abs(below.astype(int) - scale[0]) <= 3, axis=-1)
    assert yellow.any() and grey.any()  # the colour bar, from the film's grey to yellow
    assert np.all(below == LESION_RGB, axis=-1).any()  # the lesion mark's key
    plain = overlay_picture(_view((320, 240)))
    assert plain.shape[0] < picture.shape[0]  # no caption, no lesion key: smaller bands


def test_a_narrow_film_widens_the_canvas_rather_than_cutting_the_words() -> None:
    view = _view((40, 24))
    picture = overlay_picture(view, caption("SPIC", "NORM", synthetic=True))
    assert picture.shape[1] > 24 * 4
    overlay = viridis_overlay(view.film, view.heat, 0.45, stretch=False)
    top, left = _locate(picture, overlay)
    np.testing.assert_array_equal(picture[top:top + 40, left:left + 24], overlay)


def test_the_picture_follows_opacity_and_window() -> None:
    view = _view()
    one = overlay_picture(view, "x", opacity=1.0, window=Window(32, 200))
    other = overlay_picture(view, "x")
    assert one.shape == other.shape and not np.array_equal(one, other)
    expected = framed(viridis_overlay(view.film, view.heat, 1.0, stretch=False,
                                      window=Window(32, 200)), "x")
    np.testing.assert_array_equal(one, expected)


def test_the_colour_bar_starts_at_the_film_and_ends_in_viridis_yellow() -> None:
    scale = heat_scale(11)
    assert scale[0] == (0.0, (128, 128, 128)) and scale[1][1] == (128, 128, 128)  # floor
    assert scale[-1][0] == 1.0 and scale[-1][1] == pytest.approx((253, 231, 37), abs=2)


def test_caption_words() -> None:
    assert caption("CALC") == "predicted: CALC"
    assert caption("CALC", "NORM", synthetic=True) == ("predicted: CALC | actual: NORM "
                                                       "(SYNTHETIC model)")
    assert caption() == ""


def test_figure_is_the_same_overlay_with_a_colour_bar_and_zoomable_axes() -> None:
    view = _view()
    figure = film_figure(view, "predicted: CIRC", opacity=0.8, window=Window(100, 90))
    spec = json.loads(figure.to_json())
    images = [trace for trace in spec["data"] if trace["type"] == "image"]
    assert len(images) == 1
    png = base64.b64decode(images[0]["source"].split(",", 1)[1])
    shown = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(shown, viridis_overlay(view.film, view.heat, 0.8,
                                                         stretch=False,
                                                         window=Window(100, 90)))
    bar = next(trace for trace in spec["data"] if trace["type"] == "scatter")
    assert bar["marker"]["showscale"] and bar["marker"]["colorbar"]["title"]["text"] == \
        HEAT_MEANING
    assert bar["marker"]["colorbar"]["ticktext"][::2] == ["low", "high"]
    assert spec["layout"]["title"]["text"] == "predicted: CIRC"  # above the film, not on it
    assert spec["layout"]["dragmode"] == "zoom"
    assert spec["layout"]["yaxis"]["range"] == [95.5, -0.5]  # rows down, as a film reads

    beside = json.loads(film_figure(view, plain_beside=True).to_json())
    assert [t["type"] for t in beside["data"]].count("image") == 2
    assert beside["layout"]["xaxis2"]["matches"] == "x"  # both zoom together


def test_a_view_is_shrunk_with_its_lesions_and_read_back(tmp_path: Path) -> None:
    big = _view((2000, 1000), (Lesion((1000.0, 500.0), 100.0), Lesion(None, None)))
    small = big.shrunk(500)
    assert small.film.shape == small.heat.shape == (500, 250)
    assert len(small.lesions) == 1
    assert small.lesions[0].center == pytest.approx((250.0, 125.0), abs=0.5)
    assert small.lesions[0].radius == pytest.approx(25.0)
    back = FilmView.load(small.save(tmp_path / "view.npz"))
    np.testing.assert_array_equal(back.film, small.film)
    np.testing.assert_allclose(back.heat, small.heat, atol=0.5 / 255)
    assert back.lesions[0].center == pytest.approx(small.lesions[0].center)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.npz"]


def test_a_bad_view_file_is_one_error_naming_it(tmp_path: Path) -> None:
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, other=np.zeros(3))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, film=np.zeros((4, 4), np.uint8), heat=np.zeros((4, 4), np.uint8),
             lesions=np.array([object()], dtype=object))
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("film.npy", "heat.npy", "lesions.npy"):
            archive.writestr(name, bytes(3 * 1024 * 1024))
    liar = tmp_path / "liar.npz"  # a header claiming 10 GB over a few bytes
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (100_000, 100_000)})
    with zipfile.ZipFile(liar, "w") as archive:
        archive.writestr("film.npy", header.getvalue() + bytes(16))
        for name in ("heat.npy", "lesions.npy"):
            buffer = io.BytesIO()
            np.save(buffer, np.zeros((4, 4), np.uint8))
            archive.writestr(name, buffer.getvalue())
    with pytest.raises(BadConfigError, match="claims more than it holds"):
        FilmView.load(liar)  # refused before NumPy allocates what the header claims
    for path in (text, foreign, pickled, bomb, liar, tmp_path / "missing.npz"):
        with pytest.raises(BadConfigError, match=path.name):
            FilmView.load(path)
    with pytest.raises(BadConfigError, match="8-bit"):
        FilmView(np.zeros((4, 4), np.uint16), np.zeros((4, 4)))
    with pytest.raises(BadConfigError, match="shape"):
        FilmView(np.zeros((4, 4), np.uint8), np.zeros((4, 5)))
