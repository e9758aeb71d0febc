"""Properties, checked on generated inputs (hypothesis), of the three pieces every result
rests on: the film readers, the Info.txt parser and the coordinate transforms.

Readers: any grey image written losslessly in any supported format, under any name, reads
back as exactly its pixels, and the header probe agrees with the decode. Parser: in any
mixture of good and damaged lines, the good rows come back exactly and each damaged line is
one warning naming its line. Transforms: forward and inverse undo each other through any
chain of crops, resizes, flips and rotations, and agree with the images they warp.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from core.data.mias import InfoRow, parse_info
from core.data.records import MIAS_CLASSES, TISSUES
from core.films import probe_film, read_film
from core.geometry import Transform
from factories import dicom
from film_cases import encode, luminance, pgm

QUICK = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- readers --------------------------------------------------------------------------------------
def _pgm_ascii(pixels: np.ndarray) -> bytes:
    rows, cols = pixels.shape
    maxval = 65535 if pixels.dtype == np.uint16 else 255
    body = "\n".join(" ".join(map(str, row)) for row in pixels.tolist())
    return f"P2\n# a comment\n{cols} {rows}\n{maxval}\n{body}\n".encode()


def _tiff(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="TIFF")
    return buffer.getvalue()


def _dicom(pixels: np.ndarray) -> bytes:
    return dicom(pixels, bits_stored=pixels.dtype.itemsize * 8)


WRITERS = {"pgm": pgm, "pgm-ascii": _pgm_ascii, "png": lambda p: encode(p, ".png"),
           "tiff": _tiff, "dicom": _dicom}
FORMAT_OF = {"pgm": "pgm", "pgm-ascii": "pgm", "png": "png", "tiff": "tiff", "dicom": "dicom"}
grey_images = st.sampled_from([np.uint8, np.uint16]).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1,
                                                     max_side=24)))
names = st.sampled_from(["film", "film.pgm", "film.png", "film.dcm", "FILM.TIF", "upload.jpg"])


@QUICK
@given(pixels=grey_images, writer=st.sampled_from(sorted(WRITERS)), name=names)
def test_lossless_films_read_back_exactly_under_any_name(pixels: np.ndarray, writer: str,
                                                         name: str) -> None:
    data = WRITERS[writer](pixels)
    film = read_film(data, name=name)
    np.testing.assert_array_equal(film.pixels, pixels)
    assert film.pixels.dtype == pixels.dtype and film.source_format == FORMAT_OF[writer]
    assert film.bit_depth == pixels.dtype.itemsize * 8 and film.original_size == pixels.shape
    info = probe_film(data, name=name)
    assert (info.source_format, info.rows, info.cols, info.bit_depth) == (
        film.source_format, *pixels.shape, film.bit_depth)


@QUICK
@given(rgb=st.sampled_from([np.uint8, np.uint16]).flatmap(
    lambda dtype: hnp.arrays(dtype, st.tuples(st.integers(1, 16), st.integers(1, 16),
                                              st.sampled_from([3, 4])))),
       fmt=st.sampled_from([".png", ".tif"]))
def test_colour_films_become_their_luminance_at_their_own_depth(rgb: np.ndarray,
                                                                fmt: str) -> None:
    """RGB and RGBA: alpha dropped, grey = 0.299 R + 0.587 G + 0.114 B, 16 bits kept."""
    order = [2, 1, 0, 3][:rgb.shape[2]]  # OpenCV writes BGR(A)
    data = encode(np.ascontiguousarray(rgb[..., order]), fmt)
    film = read_film(data, name=f"colour{fmt}")
    assert film.pixels.dtype == rgb.dtype and film.metadata["rgb_converted"] is True
    assert film.bit_depth == rgb.dtype.itemsize * 8
    assert int(film.pixels.max()) <= 2**film.bit_depth - 1
    np.testing.assert_allclose(film.pixels, luminance(rgb), atol=1 if rgb.itemsize == 1 else 4)
    assert probe_film(data, name=f"colour{fmt}").bit_depth == film.bit_depth


# -- the Info.txt parser ---------------------------------------------------------------------------
#: Ways to spoil a good row, each with the words its warning must hold.
DAMAGE = [
    (lambda row: f"{row.refnum} {row.tissue} BLOB B 1 2 3", "unknown class 'BLOB'"),
    (lambda row: f"{row.refnum} Q {row.kind}", "unknown background tissue 'Q'"),
    (lambda row: f"{row.refnum} {row.tissue}", "expected at least REFNUM BG CLASS"),
    (lambda row: f"{row.refnum} {row.tissue} CALC B 1O 2 3", "not whole numbers"),
    (lambda row: f"{row.refnum} {row.tissue} CALC B 1 2", "2 location fields"),
    (lambda row: f"{row.refnum} {row.tissue} NORM B", "extra fields"),
    (lambda row: f"{row.refnum} {row.tissue} CIRC M 5 1024 3", "outside the 1024 x 1024"),
    (lambda row: f"{row.refnum[:-1]} {row.tissue} NORM", "not a MIAS reference number"),
]


@st.composite
def info_rows(draw: st.DrawFn) -> list[InfoRow]:
    numbers = draw(st.lists(st.integers(1, 322), min_size=1, max_size=10, unique=True))
    rows = []
    for number in numbers:
        kind = draw(st.sampled_from(MIAS_CLASSES))
        tissue = draw(st.sampled_from(sorted(TISSUES)))
        if kind == "NORM":
            rows.append(InfoRow(0, f"mdb{number:03d}", tissue, kind))
        else:
            x, y = draw(st.integers(0, 1023)), draw(st.integers(0, 1023))
            rows.append(InfoRow(0, f"mdb{number:03d}", tissue, kind,
                                draw(st.sampled_from(["B", "M"])), x, y,
                                draw(st.integers(1, 300))))
    return rows


def _line(row: InfoRow) -> str:
    located = "" if row.x is None else f" {row.x} {row.y} {row.radius}"
    return f"{row.refnum} {row.tissue} {row.kind}" + (f" {row.severity}{located}"
                                                      if row.severity else "")


@QUICK
@given(rows=info_rows(), data=st.data(), bom=st.booleans())
def test_good_rows_survive_any_damaged_neighbours(rows: list[InfoRow], data: st.DataObject,
                                                  bom: bool) -> None:
    lines: list[str] = ["The MIAS database (prose the parser must pass over)"]
    expected_warnings: list[tuple[int, str]] = []
    for row in rows:
        for _ in range(data.draw(st.integers(0, 2))):  # damaged lines before this row
            spoil, words = data.draw(st.sampled_from(DAMAGE))
            lines.append(spoil(row))
            expected_warnings.append((len(lines), words))
        lines.append(_line(row) + data.draw(st.sampled_from(["", " ", "\t "])))
        if data.draw(st.booleans()):  # the same row twice
            lines.append(_line(row))
            expected_warnings.append((len(lines), f"duplicate of line {len(lines) - 1}"))
    endings = data.draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(lines),
                                 max_size=len(lines)))
    text = ("\ufeff" if bom else "") + "".join(map(str.__add__, lines, endings))
    parsed, warnings = parse_info(text, "Info.txt")
    assert [r.fields for r in parsed] == [r.fields for r in rows]
    assert len(warnings) == len(expected_warnings)
    for warning, (number, words) in zip(warnings, expected_warnings):
        assert warning.startswith(f"Info.txt line {number}: ") and words in warning, warning


# -- coordinate transforms -------------------------------------------------------------------------
sides = st.integers(2, 300)


@st.composite
def chains(draw: st.DrawFn) -> Transform:
    """A random pipeline: crop, resize, flip, rotate/scale, in any order, 1-5 steps."""
    shape = (draw(sides), draw(sides))
    chain = Transform.identity(shape)
    for _ in range(draw(st.integers(1, 5))):
        rows, cols = chain.dst_shape
        step = draw(st.sampled_from(["crop", "resize", "flip", "rotate"]))
        if step == "crop":
            top, left = draw(st.integers(0, rows - 1)), draw(st.integers(0, cols - 1))
            height = draw(st.integers(1, rows - top))
            width = draw(st.integers(1, cols - left))
            nxt = Transform.crop((rows, cols), top, left, height, width)
        elif step == "resize":
            nxt = Transform.resize((rows, cols), (draw(sides), draw(sides)))
        elif step == "flip":
            nxt = Transform.flip_horizontal((rows, cols))
        else:
            nxt = Transform.rotate_scale(
                (rows, cols), angle_deg=draw(st.floats(-180, 180)),
                scale=draw(st.floats(0.25, 4)), flip=draw(st.booleans()),
                shift=(draw(st.floats(-50, 50)), draw(st.floats(-50, 50))))
        chain = chain.then(nxt)
    return chain


points = hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.just(2)),
                    elements=st.floats(-500, 1500))


@settings(max_examples=200, deadline=None)
@given(chain=chains(), pts=points)
def test_forward_and_inverse_undo_each_other_through_any_chain(chain: Transform,
                                                               pts: np.ndarray) -> None:
    scale = 1 + np.abs(chain.matrix).max() * 2000  # round-off grows with the map's size
    np.testing.assert_allclose(chain.inverse(chain.forward(pts)), pts, atol=1e-9 * scale)
    np.testing.assert_allclose(chain.inverted().forward(chain.forward(pts)), pts,
                               atol=1e-9 * scale)
    single = chain.forward(pts[0])
    assert single.shape == (2,) and np.allclose(single, chain.forward(pts)[0])
    radius = 17.0
    assert chain.inverse_radius(chain.forward_radius(radius)) == pytest.approx(radius)
    again = Transform.from_dict(chain.to_dict())
    assert np.array_equal(again.matrix, chain.matrix)
    assert (again.src_shape, again.dst_shape) == (chain.src_shape, chain.dst_shape)


@settings(max_examples=100, deadline=None)
@given(first=chains(), data=st.data(), pts=points)
def test_a_chain_maps_as_its_steps_one_after_another(first: Transform, data: st.DataObject,
                                                     pts: np.ndarray) -> None:
    rows, cols = first.dst_shape
    second = data.draw(st.sampled_from([
        Transform.flip_horizontal((rows, cols)),
        Transform.resize((rows, cols), (max(1, rows // 2), cols * 2)),
        Transform.rotate_scale((rows, cols), angle_deg=30, scale=1.5)]))
    both = first.then(second)
    np.testing.assert_allclose(both.forward(pts), second.forward(first.forward(pts)),
                               rtol=1e-9, atol=1e-6)
    assert both.scale == pytest.approx(first.scale * second.scale)
    with pytest.raises(ValueError, match="cannot chain"):
        first.then(Transform.identity((rows + 1, cols)))


@settings(max_examples=100, deadline=None)
@given(rows=sides, cols=sides, out_rows=sides, out_cols=sides)
def test_resize_maps_the_image_edges_onto_each_other(rows: int, cols: int, out_rows: int,
                                                     out_cols: int) -> None:
    """Pixel (0, 0) covers [-0.5, 0.5): the outer corners of the grids correspond."""
    resize = Transform.resize((rows, cols), (out_rows, out_cols))
    corners = np.array([[-0.5, -0.5], [rows - 0.5, cols - 0.5]])
    np.testing.assert_allclose(resize.forward(corners),
                               [[-0.5, -0.5], [out_rows - 0.5, out_cols - 0.5]], atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(image=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=2,
                                                   max_side=40)),
       data=st.data())
def test_crop_and_flip_move_pixels_exactly_where_points_go(image: np.ndarray,
                                                           data: st.DataObject) -> None:
    rows, cols = image.shape
    top, left = data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, cols - 1))
    height, width = data.draw(st.integers(1, rows - top)), data.draw(st.integers(1, cols - left))
    crop = Transform.crop(image.shape, top, left, height, width)
    flip = Transform.flip_horizontal((height, width))
    chain = crop.then(flip)
    warped = chain.apply(image, interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(warped, image[top:top + height, left:left + width][:, ::-1])
    r, c = data.draw(st.integers(0, height - 1)), data.draw(st.integers(0, width - 1))
    source = np.rint(chain.inverse([r, c])).astype(int)
    assert warped[r, c] == image[source[0], source[1]]
    back = chain.unapply(warped, interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(back[top:top + height, left:left + width],
                                  image[top:top + height, left:left + width])
