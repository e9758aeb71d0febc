"""core.films: every format decodes to the right grey pixels; every bad file is one BadFilmError.

Films are built on the fly (a few dozen pixels each) so every expected value is known exactly.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom import Dataset

from core.errors import BadConfigError, BadFilmError
from core.films import (
    SUPPORTED_SUFFIXES,
    Film,
    FilmInfo,
    probe_film,
    read_film,
)
from core.settings import DEFAULT_MAX_PIXELS
from factories import dicom

RNG = np.random.default_rng(20240611)
GREY8 = RNG.integers(0, 256, (24, 32), dtype=np.uint8)
GREY16 = RNG.integers(0, 65536, (24, 32), dtype=np.uint16)


# --- builders -----------------------------------------------------------------------------


def pgm_p5(pixels: np.ndarray, maxval: int, header: bytes | None = None) -> bytes:
    rows, cols = pixels.shape
    head = header if header is not None else f"P5\n{cols} {rows}\n{maxval}\n".encode()
    body = pixels.astype(">u2" if maxval > 255 else np.uint8).tobytes()
    return head + body


def pgm_p2(pixels: np.ndarray, maxval: int) -> bytes:
    rows, cols = pixels.shape
    lines = [" ".join(str(int(v)) for v in row) for row in pixels]
    return f"P2\n{cols} {rows}\n{maxval}\n".encode() + "\n".join(lines).encode() + b"\n"


def encoded(pixels: np.ndarray, ext: str) -> bytes:
    ok, buffer = cv2.imencode(ext, pixels)
    assert ok
    return buffer.tobytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(rows: int, cols: int) -> bytes:
    """A PNG whose IHDR claims any size over a tiny IDAT: only a header check can refuse it."""
    ihdr = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def tiff_claiming(rows: int, cols: int) -> bytes:
    """A baseline 8-bit grey TIFF header whose IFD claims any size over 16 bytes of strip."""
    entries = [
        (256, 4, 1, cols),  # ImageWidth, LONG
        (257, 4, 1, rows),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample, SHORT
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: BlackIsZero
        (273, 4, 1, 8 + 2 + 12 * 9 + 4),  # StripOffsets: just after the IFD
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, rows),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\0" * 16


def jpeg_with_size(rows: int, cols: int) -> bytes:
    """A real JPEG whose SOF0 frame header is patched to claim another size."""
    data = bytearray(encoded(GREY8, ".jpg"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", rows, cols)
    return bytes(data)


def dicom_without_preamble(pixels: np.ndarray) -> bytes:
    """A bare implicit-VR dataset: no preamble, no 'DICM', no file meta (old archives)."""
    ds = Dataset()
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def windowed(x: np.ndarray, center: float, width: float, top: int) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR windowing onto [0, top], written out independently."""
    c, w = center - 0.5, width - 1
    y = ((x - c) / w + 0.5) * top
    return np.where(x <= c - w / 2, 0, np.where(x > c + w / 2, top, y))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- formats ------------------------------------------------------------------------------


def test_constants() -> None:
    assert DEFAULT_MAX_PIXELS == 100_000_000
    assert set(SUPPORTED_SUFFIXES) == {".pgm", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm"}


def test_pgm_p5_8bit(tmp_path: Path) -> None:
    path = write(tmp_path, "a.pgm", pgm_p5(GREY8, 255))
    film = read_film(path)
    assert isinstance(film, Film)
    assert film.pixels.dtype == np.uint8 and film.bit_depth == 8
    np.testing.assert_array_equal(film.pixels, GREY8)
    assert film.source_format == "pgm" and film.original_size == (24, 32)
    assert film.name == str(path)
    assert probe_film(path) == FilmInfo("pgm", 24, 32, 8)
    film.pixels[0, 0] = 7  # callers may work in place


def test_pgm_p5_16bit_is_big_endian(tmp_path: Path) -> None:
    film = read_film(write(tmp_path, "a.pgm", pgm_p5(GREY16, 65535)))
    assert film.pixels.dtype == np.uint16 and film.bit_depth == 16
    np.testing.assert_array_equal(film.pixels, GREY16)
    assert probe_film(tmp_path / "a.pgm").bit_depth == 16


def test_pgm_12bit_maxval_sets_bit_depth(tmp_path: Path) -> None:
    pixels = GREY16 >> 4
    film = read_film(write(tmp_path, "a.pgm", pgm_p5(pixels, 4095)))
    assert film.bit_depth == 12 and film.metadata["maxval"] == 4095
    np.testing.assert_array_equal(film.pixels, pixels)


def test_pgm_ascii_p2(tmp_path: Path) -> None:
    pixels = GREY16 >> 4
    film = read_film(write(tmp_path, "a.pgm", pgm_p2(pixels, 4095)))
    assert film.pixels.dtype == np.uint16 and film.metadata["pgm_variant"] == "P2"
    np.testing.assert_array_equal(film.pixels, pixels)
    film8 = read_film(pgm_p2(GREY8, 255), name="b.pgm")
    assert film8.pixels.dtype == np.uint8
    np.testing.assert_array_equal(film8.pixels, GREY8)


def test_pgm_comments_anywhere_in_header() -> None:
    header = b"P5# after magic\n32 # width\n# full line\n24\n# before maxval\n255# after maxval\n"
    film = read_film(pgm_p5(GREY8, 255, header=header), name="c.pgm")
    np.testing.assert_array_equal(film.pixels, GREY8)


def test_pgm_sample_above_maxval_is_refused() -> None:
    with pytest.raises(BadFilmError, match="above its maxval"):
        read_film(pgm_p5(np.full((2, 2), 200, np.uint8), 100), name="m.pgm")


@pytest.mark.parametrize("pixels", [GREY8, GREY16], ids=["8bit", "16bit"])
def test_png_grey(tmp_path: Path, pixels: np.ndarray) -> None:
    path = write(tmp_path, "a.png", encoded(pixels, ".png"))
    film = read_film(path)
    assert film.pixels.dtype == pixels.dtype
    assert film.bit_depth == pixels.dtype.itemsize * 8
    np.testing.assert_array_equal(film.pixels, pixels)
    assert probe_film(path) == FilmInfo("png", 24, 32, film.bit_depth)
    assert film.metadata["rgb_converted"] is False


def test_png_rgb_rgba_palette_become_grey() -> None:
    # Pure red, green, blue and white: luminance weights 0.299, 0.587, 0.114.
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    expected = np.array([[76, 150, 29, 255]], np.uint8)
    for mode in ("RGB", "RGBA", "P"):
        buffer = io.BytesIO()
        Image.fromarray(rgb).convert(mode).save(buffer, format="PNG")
        film = read_film(buffer.getvalue(), name=f"colour-{mode}.png")
        assert film.pixels.ndim == 2 and film.metadata["rgb_converted"] is True
        np.testing.assert_allclose(film.pixels, expected, atol=1)


def test_png_16bit_rgb_becomes_16bit_grey() -> None:
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[..., 2] = 60000  # OpenCV order is BGR: this is red
    film = read_film(encoded(rgb, ".png"), name="rgb16.png")
    assert film.pixels.dtype == np.uint16 and film.bit_depth == 16
    np.testing.assert_allclose(film.pixels, round(0.299 * 60000), atol=2)


def test_jpeg_grey_and_colour(tmp_path: Path) -> None:
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))
    film = read_film(write(tmp_path, "a.jpg", encoded(smooth, ".jpg")))
    assert film.source_format == "jpeg" and film.pixels.dtype == np.uint8 and film.bit_depth == 8
    assert np.abs(film.pixels.astype(int) - smooth).mean() < 3  # lossy, but close
    assert probe_film(tmp_path / "a.jpg") == FilmInfo("jpeg", 24, 32, 8)
    colour = read_film(encoded(np.dstack([smooth] * 3), ".jpeg"), name="c.jpeg")
    assert colour.pixels.ndim == 2 and colour.metadata["rgb_converted"] is True


@pytest.mark.parametrize("pixels", [GREY8, GREY16], ids=["8bit", "16bit"])
def test_tiff(tmp_path: Path, pixels: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="TIFF")
    path = write(tmp_path, "a.tif", buffer.getvalue())
    film = read_film(path)
    assert film.source_format == "tiff" and film.pixels.dtype == pixels.dtype
    np.testing.assert_array_equal(film.pixels, pixels)
    assert probe_film(path) == FilmInfo("tiff", 24, 32, pixels.dtype.itemsize * 8)


def test_format_comes_from_magic_not_suffix(tmp_path: Path) -> None:
    film = read_film(write(tmp_path, "really-a-png.pgm", encoded(GREY8, ".png")))
    assert film.source_format == "png"
    assert "named .pgm but the content is PNG" in film.metadata["format_mismatch"]
    np.testing.assert_array_equal(film.pixels, GREY8)
    assert "format_mismatch" not in read_film(encoded(GREY8, ".png"), name="ok.png").metadata


def test_bytes_input_uses_name_and_matches_path(tmp_path: Path) -> None:
    data = pgm_p5(GREY8, 255)
    from_bytes = read_film(data, name="upload.pgm")
    assert from_bytes.name == "upload.pgm"
    from_path = read_film(write(tmp_path, "x.pgm", data))
    np.testing.assert_array_equal(from_bytes.pixels, from_path.pixels)
    assert read_film(bytearray(data)).name == "<bytes>"
    assert probe_film(data, name="upload.pgm") == FilmInfo("pgm", 24, 32, 8)


def test_real_mias_film(mias_root: Path) -> None:
    path = mias_root / "mdb001.png"
    film = read_film(path)
    assert film.pixels.shape == (1024, 1024) and film.pixels.dtype == np.uint8
    assert film.original_size == (1024, 1024) and film.bit_depth == 8
    assert 0 < film.pixels.mean() < 255  # a real image, not a blank
    assert probe_film(path) == FilmInfo("png", 1024, 1024, 8)
    from_bytes = read_film(path.read_bytes(), name="mdb001.png")
    np.testing.assert_array_equal(from_bytes.pixels, film.pixels)


# --- DICOM --------------------------------------------------------------------------------

STORED12 = np.array([[0, 4095, 1000], [2048, 3000, 10]], np.uint16)


def test_dicom_monochrome2_passes_through(tmp_path: Path) -> None:
    path = write(tmp_path, "a.dcm", dicom(STORED12))
    film = read_film(path)
    assert film.source_format == "dicom" and film.pixels.dtype == np.uint16 and film.bit_depth == 12
    np.testing.assert_array_equal(film.pixels, STORED12)
    assert film.metadata["photometric_interpretation"] == "MONOCHROME2"
    assert film.metadata["inverted"] is False and film.metadata["voi"] is None
    assert probe_film(path) == FilmInfo("dicom", 2, 3, 12)


def test_dicom_monochrome1_is_inverted_so_dense_is_bright() -> None:
    film = read_film(dicom(STORED12, photometric="MONOCHROME1"), name="m1.dcm")
    np.testing.assert_array_equal(film.pixels, 4095 - STORED12)
    assert film.metadata["inverted"] is True


def test_dicom_8bit_stays_uint8() -> None:
    film = read_film(dicom(GREY8, bits_stored=8), name="8.dcm")
    assert film.pixels.dtype == np.uint8 and film.bit_depth == 8
    np.testing.assert_array_equal(film.pixels, GREY8)


def test_dicom_voi_window_applied() -> None:
    film = read_film(dicom(STORED12, WindowCenter=2048, WindowWidth=1024), name="w.dcm")
    expected = windowed(STORED12.astype(float), 2048, 1024, 4095)
    np.testing.assert_allclose(film.pixels, expected, atol=1)
    assert film.metadata["voi"] == "window"


def test_dicom_rescale_applied_before_window() -> None:
    # The window is in rescaled units: raw 2048 -> 3096, just above the centre of 3000.
    data = dicom(
        STORED12, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=3000, WindowWidth=2000
    )
    film = read_film(data, name="r.dcm")
    # The windowed value spans the rescaled range [-1000, 7190], mapped back onto 12 bits.
    rescaled = STORED12.astype(float) * 2 - 1000
    expected = windowed(rescaled, 3000, 2000, 8190) * 4095 / 8190
    np.testing.assert_allclose(film.pixels, expected, atol=1)
    assert film.pixels[1, 0] > 2100  # ignoring the rescale would put raw 2048 below the window
    assert film.metadata["modality_lut"] == "rescale"


@pytest.mark.parametrize("vr", ["OW", "US"])
def test_dicom_voi_lut_applied(vr: str) -> None:
    # An 8-bit LUT over 12-bit data: every input above 255 must still map, not wrap.
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 8]
    table = np.arange(4096, dtype="<u2") // 16
    lut.add_new("LUTData", vr, table.tobytes() if vr == "OW" else table.tolist())
    film = read_film(dicom(STORED12, VOILUTSequence=[lut]), name="lut.dcm")
    assert film.pixels.dtype == np.uint8 and film.bit_depth == 8
    np.testing.assert_array_equal(film.pixels, STORED12 // 16)
    assert film.metadata["voi"] == "lut"


def test_dicom_rgb_becomes_grey() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    data = dicom(
        rgb, bits_stored=8, photometric="RGB", SamplesPerPixel=3, PlanarConfiguration=0
    )
    film = read_film(data, name="rgb.dcm")
    assert film.pixels.dtype == np.uint8 and film.metadata["rgb_converted"] is True
    np.testing.assert_allclose(film.pixels, [[76, 150, 29]], atol=1)


def test_dicom_without_preamble_read_by_suffix() -> None:
    data = dicom_without_preamble(STORED12)
    assert data[128:132] != b"DICM"
    np.testing.assert_array_equal(read_film(data, name="bare.dcm").pixels, STORED12)
    with pytest.raises(BadFilmError, match="not a supported image format"):
        read_film(data, name="bare.bin")


# --- bad files ----------------------------------------------------------------------------


def assert_bad(source: Path | bytes, name: str | None, phrase: str, **kwargs: object) -> None:
    with pytest.raises(BadFilmError) as caught:
        read_film(source, name=name, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert (name or str(source)) in message
    assert phrase in message, message


def test_missing_empty_directory(tmp_path: Path) -> None:
    assert_bad(tmp_path / "nowhere.png", None, "file not found")
    assert_bad(write(tmp_path, "empty.png", b""), None, "file is empty")
    assert_bad(b"", "upload.png", "file is empty")
    assert_bad(tmp_path, None, "is a directory")
    with pytest.raises(BadFilmError, match="file not found"):
        probe_film(tmp_path / "nowhere.dcm")


def test_truncated_files(tmp_path: Path) -> None:
    pgm = pgm_p5(GREY16, 65535)
    assert_bad(write(tmp_path, "cut.pgm", pgm[:-1]), None, "PGM is truncated")
    assert_bad(pgm[:9], "cut-header.pgm", "PGM header is truncated")
    assert_bad(pgm_p2(GREY8, 255)[:-40], "cut.pgm", "PGM is truncated")
    png = encoded(GREY8, ".png")
    assert_bad(write(tmp_path, "cut.png", png[: len(png) // 2]), None, "truncated")
    assert_bad(png[:20], "cut-header.png", "truncated")
    jpeg = encoded(GREY8, ".jpg")
    assert_bad(jpeg[: len(jpeg) // 2], "cut.jpg", "truncated")
    buffer = io.BytesIO()
    Image.fromarray(GREY16).save(buffer, format="TIFF")
    assert_bad(buffer.getvalue()[:-100], "cut.tif", "truncated")
    dcm = dicom(STORED12)
    assert_bad(dcm[:-3], "cut.dcm", "corrupt or truncated")


def test_wrong_magic_and_text(tmp_path: Path) -> None:
    assert_bad(b"\x00\x01\x02\x03" * 50, "blob.png", "not a supported image format")
    assert_bad(b"\x00\x01\x02\x03" * 50, "blob.png", "PNG")  # lists what is supported
    notes = write(tmp_path, "notes.png", "Patient notes: héllo\n".encode() * 10)
    assert_bad(notes, None, "text file")
    assert_bad(b"P6\n2 2\n255\n" + b"\0" * 12, "colour.pgm", "not a grey PGM")
    assert_bad(b"P5\n2 x\n255\n", "bad.pgm", "malformed PGM header")
    assert_bad(b"plain text, not dicom at all\n" * 10, "fake.dcm", "not a DICOM file")


def test_float_tiff_is_refused() -> None:
    buffer = io.BytesIO()
    Image.fromarray(GREY8.astype(np.float32)).save(buffer, format="TIFF")
    assert_bad(buffer.getvalue(), "float.tif", "8 or 16-bit unsigned only")


def test_zero_sized_images() -> None:
    assert_bad(b"P5\n0 5\n255\n", "zero.pgm", "zero size")
    assert_bad(png_claiming(0, 10), "zero.png", "zero size")
    with pytest.raises(BadFilmError, match="zero size"):
        probe_film(png_claiming(10, 0), name="zero.png")


def test_over_pixel_limit_refused_from_header(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each claims far more pixels than its data holds: a decoder would fail differently.
    assert_bad(png_claiming(50_000, 50_000), "bomb.png", "over the pixel limit")
    assert_bad(b"P5\n50000 50000\n255\n" + b"\0" * 10, "bomb.pgm", "over the pixel limit")
    assert_bad(jpeg_with_size(60_000, 60_000), "bomb.jpg", "over the pixel limit")
    assert_bad(dicom(STORED12, Rows=20_000, Columns=20_000), "bomb.dcm", "over the pixel limit")
    # Pillow would warn or raise its own DecompressionBomb* here; neither may escape.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_bad(tiff_claiming(40_000, 40_000), "bomb.tif", "over the pixel limit")
    assert probe_film(png_claiming(50_000, 50_000), name="bomb.png").rows == 50_000
    # A genuine, valid bomb: 9 megapixels of zeros compress to a few kilobytes.
    real_bomb = encoded(np.zeros((3000, 3000), np.uint8), ".png")
    assert len(real_bomb) < 100_000
    assert_bad(real_bomb, "zeros.png", "over the pixel limit", max_pixels=1_000_000)
    monkeypatch.setenv("MAMMO_MAX_PIXELS", "500")
    assert_bad(pgm_p5(GREY8, 255), "env.pgm", "over the pixel limit")
    assert read_film(pgm_p5(GREY8, 255), name="arg.pgm", max_pixels=768).pixels.size == 768


def test_bad_pixel_limit_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadConfigError, match="max_pixels"):
        read_film(pgm_p5(GREY8, 255), max_pixels=0)
    monkeypatch.setenv("MAMMO_MAX_PIXELS", "lots")
    with pytest.raises(BadConfigError, match="MAMMO_MAX_PIXELS"):
        read_film(pgm_p5(GREY8, 255))


def test_dicom_faults() -> None:
    assert_bad(dicom(STORED12, pixel_data=False), "empty.dcm", "no pixel data")
    multi = dicom(np.zeros((2, 2), np.uint16), NumberOfFrames=2)
    assert_bad(multi, "multi.dcm", "2 frames")


# --- never anything but BadFilmError ------------------------------------------------------

VALID = {
    "a.png": encoded(GREY8, ".png"),
    "a.pgm": pgm_p5(GREY16, 65535),
    "b.pgm": pgm_p2(GREY8[:6, :6], 255),
    "a.dcm": dicom(STORED12, WindowCenter=2048, WindowWidth=1024),
    "a.jpg": encoded(GREY8, ".jpg"),
    "a.tif": encoded(GREY16, ".tiff"),
}


def check_never_escapes(data: bytes, name: str) -> None:
    """Either a well-formed Film or a BadFilmError naming the file; nothing else."""
    for reader in (probe_film, read_film):
        try:
            result = reader(data, name=name)
        except BadFilmError as error:
            assert name in str(error)
            continue
        if isinstance(result, Film):
            assert result.pixels.ndim == 2
            assert result.pixels.dtype in (np.uint8, np.uint16)
            assert int(result.pixels.max()) <= 2**result.bit_depth - 1


FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(data=st.binary(max_size=600), name=st.sampled_from(["f.png", "f.dcm", "f.pgm", "f"]))
@pytest.mark.filterwarnings("ignore")
def test_random_bytes_only_raise_bad_film(data: bytes, name: str) -> None:
    check_never_escapes(data, name)


@FUZZ
@given(name=st.sampled_from(sorted(VALID)), cut=st.floats(0, 1, exclude_max=True))
@pytest.mark.filterwarnings("ignore")
def test_truncations_only_raise_bad_film(name: str, cut: float) -> None:
    data = VALID[name]
    check_never_escapes(data[: int(len(data) * cut)], name)


@FUZZ
@given(
    name=st.sampled_from(sorted(VALID)),
    where=st.floats(0, 1, exclude_max=True),
    byte=st.integers(0, 255),
)
@pytest.mark.filterwarnings("ignore")
def test_corrupted_byte_only_raises_bad_film(name: str, where: float, byte: int) -> None:
    data = bytearray(VALID[name])
    data[int(len(data) * where)] = byte
    check_never_escapes(bytes(data), name)
