"""Compressed DICOM as archives hold it: JPEG-LS, JPEG lossless (process 14), JPEG 2000,
12-bit JPEG (process 4) and RLE, decoded by the runtime decoders (GDCM, pylibjpeg-rle;
``core.dicom_codecs``) and checked pixel for pixel on pydicom's own test files.

Lossless files are compared with the uncompressed original of the same image. Lossy files
have no original to compare with, so they are compared with an independent decoder: the
tests' reference, pylibjpeg (libjpeg for JPEG, OpenJPEG for JPEG 2000, CharLS for JPEG-LS;
``requirements-dev.txt``). Every film goes through the project's reader and must come out
with the bit depth its header stores.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import UID, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1

from core import dicom_codecs
from core.errors import BadFilmError
from core.films import Film, probe_film, read_film

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"
#: The independent decoder the lossy files are checked against (tests only).
REFERENCE = "pylibjpeg"


def _pydicom_file(name: str) -> Path:
    """A pydicom test file from the installed wheel (never downloaded); its absence is a
    failure, not a skip, since the wheel pinned in requirements.txt ships all of these."""
    path = PYDICOM_FILES / name
    assert path.is_file(), f"pydicom's test file {name} is missing from the installed wheel"
    return path


def _decompressed(path: Path, plugin: str) -> bytes:
    """The file rewritten uncompressed (Explicit VR Little Endian) by one named decoder."""
    ds = pydicom.dcmread(path)
    ds.decompress(decoding_plugin=plugin)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _same_film(film: Film, other: Film) -> None:
    assert film.pixels.dtype == other.pixels.dtype
    assert film.bit_depth == other.bit_depth
    np.testing.assert_array_equal(film.pixels, other.pixels)


@pytest.mark.parametrize("name, syntax", [
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless Image Compression"),
    ("MR_small_RLE.dcm", "RLE Lossless"),
    ("MR_small_jp2klossless.dcm", "JPEG 2000 Image Compression (Lossless Only)"),
])
def test_lossless_films_equal_their_uncompressed_original(name: str, syntax: str) -> None:
    original = _pydicom_file("MR_small.dcm")
    film = read_film(_pydicom_file(name))
    assert film.metadata["transfer_syntax"].startswith(syntax)
    _same_film(film, read_film(original))
    assert film.bit_depth == 16 == pydicom.dcmread(original).BitsStored
    np.testing.assert_array_equal(pixel_array(_pydicom_file(name)), pixel_array(original))


def test_a_shipped_jpeg_lossless_colour_file_equals_its_rle_twin() -> None:
    """SC_rgb_jpeg_gdcm.dcm (process 14, selection value 1) and SC_rgb_rle.dcm are one
    image (one SOP instance UID); RLE is decoded by pydicom's own numpy decoder here, a
    decoder GDCM shares nothing with."""
    jpeg, rle = _pydicom_file("SC_rgb_jpeg_gdcm.dcm"), _pydicom_file("SC_rgb_rle.dcm")
    assert pydicom.dcmread(jpeg).file_meta.TransferSyntaxUID == JPEGLosslessSV1
    np.testing.assert_array_equal(pixel_array(jpeg), pixel_array(rle, decoding_plugin="pydicom"))
    film = read_film(jpeg)
    _same_film(film, read_film(rle))
    assert film.metadata["rgb_converted"] and film.bit_depth == 8


@pytest.mark.parametrize("syntax, gdcm_name", [(JPEGLossless, "JPEGLosslessProcess14"),
                                               (JPEGLosslessSV1, "JPEGLosslessProcess14_1")])
def test_jpeg_lossless_grey_16_bit_round_trips(tmp_path: Path, syntax: UID,
                                               gdcm_name: str) -> None:
    """pydicom ships no grey JPEG lossless file, so GDCM encodes one from MR_small.dcm."""
    gdcm = pytest.importorskip("gdcm")
    original = _pydicom_file("MR_small.dcm")
    reader = gdcm.ImageReader()
    reader.SetFileName(str(original))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, gdcm_name)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    encoded = tmp_path / "jpeg-lossless.dcm"
    writer.SetFileName(str(encoded))
    assert writer.Write()
    assert pydicom.dcmread(encoded).file_meta.TransferSyntaxUID == syntax
    _same_film(read_film(encoded), read_film(original))
    np.testing.assert_array_equal(pixel_array(encoded, decoding_plugin=REFERENCE),
                                  pixel_array(original))


@pytest.mark.parametrize("name, bits", [
    ("JPEG2000.dcm", 16),  # JPEG 2000 lossy
    ("693_J2KI.dcm", 14),  # JPEG 2000 lossy, 14 bits stored
    ("JPEGLSNearLossless_16.dcm", 16),
    ("JPEGLSNearLossless_08.dcm", 8),
])
def test_lossy_films_equal_the_reference_decoder(name: str, bits: int) -> None:
    path = _pydicom_file(name)
    film = read_film(path)
    assert film.bit_depth == bits == pydicom.dcmread(path).BitsStored
    assert int(film.pixels.max()) < 2**bits
    np.testing.assert_array_equal(pixel_array(path), pixel_array(path, decoding_plugin=REFERENCE))
    _same_film(film, read_film(_decompressed(path, REFERENCE), name=name))


def test_12_bit_jpeg_is_decoded_by_gdcm_within_the_standards_rounding() -> None:
    """Process 4 is lossy DCT: two conforming decoders may differ by one level where their
    inverse DCTs round differently (ISO/IEC 10918-2's accuracy test allows it). GDCM (the
    IJG code) and libjpeg (the reference here) agree everywhere else."""
    path = _pydicom_file("JPGExtended.dcm")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == JPEGExtended12Bit
    assert dicom_codecs.plugin_for(JPEGExtended12Bit) == dicom_codecs.GDCM_12BIT
    ours = pixel_array(path, decoding_plugin=dicom_codecs.GDCM_12BIT)
    reference = pixel_array(path, decoding_plugin=REFERENCE)
    difference = np.abs(ours.astype(np.int32) - reference)
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.02
    assert (ours == reference).mean() > 0.98
    film = read_film(path)
    assert film.bit_depth == 12 and film.pixels.dtype == np.uint16
    _same_film(film, read_film(_decompressed(path, dicom_codecs.GDCM_12BIT), name="x.dcm"))


def test_a_non_conforming_12_bit_jpeg_that_gdcm_still_reads() -> None:
    """JPEG-lossy.dcm is JPGExtended.dcm before a fix of its scan header (its spectral end
    is not 63): libjpeg refuses it, GDCM reads it as the fixed file's pixels."""
    bad, fixed = _pydicom_file("JPEG-lossy.dcm"), _pydicom_file("JPGExtended.dcm")
    with pytest.raises(Exception, match="scan stop must be 63"):
        pixel_array(bad, decoding_plugin=REFERENCE)
    _same_film(read_film(bad), read_film(fixed))


def test_a_truncated_12_bit_jpeg_is_one_clear_error() -> None:
    ds = pydicom.dcmread(_pydicom_file("JPGExtended.dcm"))
    frame = next(pydicom.encaps.generate_frames(ds.PixelData))
    ds.PixelData = pydicom.encaps.encapsulate([frame[: len(frame) // 2]])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(BadFilmError, match="DICOM pixel data is corrupt or truncated"):
        read_film(buffer.getvalue(), name="cut.dcm")


def test_rle_is_decoded_by_pylibjpeg_rle() -> None:
    """The fast RLE decoder is the one pydicom picks first (bench/dicom_decode.py times a
    full-field film); it and pydicom's own decoder agree pixel for pixel."""
    decoder = get_decoder(UID("1.2.840.10008.1.2.5"))
    assert decoder.is_available and "pylibjpeg" in decoder.available_plugins
    for name in ("MR_small_RLE.dcm", "SC_rgb_rle_16bit.dcm", "rtdose_rle_1frame.dcm"):
        path = _pydicom_file(name)
        np.testing.assert_array_equal(pixel_array(path, decoding_plugin="pylibjpeg"),
                                      pixel_array(path, decoding_plugin="pydicom"))


#: Run in a fresh interpreter where the JPEG-LS decoders cannot be imported, as on a
#: machine that installed pydicom without them.
_WITHOUT_DECODERS = """
import sys
sys.modules.update(dict.fromkeys(["gdcm", "pylibjpeg", "libjpeg", "jpeg_ls"]))
from core.errors import BadFilmError
from core.films import probe_film, read_film
for read in (read_film, probe_film):
    try:
        read(sys.argv[1])
    except BadFilmError as error:
        print(error)
"""


def test_a_compressed_film_without_its_decoder_is_one_clear_line() -> None:
    path = _pydicom_file("MR_small_jpeg_ls_lossless.dcm")
    done = subprocess.run([sys.executable, "-c", _WITHOUT_DECODERS, str(path)],
                          capture_output=True, text=True, timeout=120, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0].startswith(f"{path}: compressed DICOM (JPEG-LS Lossless Image "
                               "Compression, 1.2.840.10008.1.2.4.80) needs a decoder that is "
                               "not installed: install the decoders in requirements.txt")
    assert probe_film(path).rows == 64  # here, with the decoders, the same file reads


def _with_frame(path: Path, edit: Callable[[bytearray], None]) -> bytes:
    """The file with its one compressed frame edited in place."""
    ds = pydicom.dcmread(path)
    frame = bytearray(next(pydicom.encaps.generate_frames(ds.PixelData)))
    edit(frame)
    ds.PixelData = pydicom.encaps.encapsulate([bytes(frame)])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _declare_huge_jpeg(frame: bytearray, marker: bytes) -> None:
    at = frame.index(marker)  # SOFn: marker, length (2), precision (1), rows (2), columns (2)
    frame[at + 5 : at + 9] = struct.pack(">HH", 60000, 60000)


def _declare_huge_j2k(frame: bytearray) -> None:
    at = frame.index(b"\xff\x4f\xff\x51")  # SOC, SIZ, Lsiz, Rsiz, then Xsiz and Ysiz
    frame[at + 8 : at + 16] = struct.pack(">II", 60000, 60000)


@pytest.mark.parametrize("name, edit", [
    ("MR_small_jpeg_ls_lossless.dcm", lambda f: _declare_huge_jpeg(f, b"\xff\xf7")),
    ("SC_rgb_jpeg_gdcm.dcm", lambda f: _declare_huge_jpeg(f, b"\xff\xc3")),
    ("JPGExtended.dcm", lambda f: _declare_huge_jpeg(f, b"\xff\xc1")),
    ("MR_small_jp2klossless.dcm", _declare_huge_j2k),
])
def test_a_frame_declaring_another_size_is_refused_before_decoding(
        name: str, edit: Callable[[bytearray], None]) -> None:
    """A small header over a frame that declares 60000 x 60000 pixels: GDCM would try to
    allocate gigabytes, or abort the process, if it were ever asked to decode it."""
    data = _with_frame(_pydicom_file(name), edit)
    for read in (read_film, probe_film):
        with pytest.raises(BadFilmError, match="compressed frame declares 60000 x 60000 "
                                               "pixels where the header says"):
            read(data, name=name)


def test_a_stream_that_aborts_gdcm_costs_that_film_alone(tmp_path: Path) -> None:
    """26 bytes cut from JPGExtended.dcm's 12-bit JPEG stream (found by the fuzz test) make
    GDCM throw a C++ exception that nothing catches, which aborts whatever process decodes
    it. Decoded in a child, the film is one clear error, and this process, its decoders
    and its other films carry on."""
    whole = _pydicom_file("JPGExtended.dcm").read_bytes()
    hostile = tmp_path / "hostile.dcm"
    hostile.write_bytes(whole[:3050] + whole[3076:])
    with pytest.raises(BadFilmError) as raised:
        read_film(hostile)
    message = str(raised.value)
    assert message.startswith(f"{hostile}: DICOM pixel data could not be decoded: the decoder "
                              "crashed") and "\n" not in message
    healthy = read_film(_pydicom_file("JPGExtended.dcm"))
    assert healthy.pixels.shape == (1024, 256)
    lossless = read_film(_pydicom_file("MR_small_jpeg_ls_lossless.dcm"))
    _same_film(lossless, read_film(_pydicom_file("MR_small.dcm")))
