"""Read a mammogram film from any supported file into one predictable shape.

Every caller (dataset loaders, the CLI, the Streamlit upload) goes through here, so a film
always arrives as a 2-D uint8/uint16 array with its significant bit depth, and a bad file
always arrives as one ``BadFilmError`` naming the file and its fault. The format is taken
from the content's magic bytes, never the suffix, because uploads are often misnamed. The
size is checked against a pixel limit from the header alone, before anything is
decompressed, so a decompression bomb costs a few header bytes rather than gigabytes.

Colour files are read, not refused, because exports and screenshots of films often are RGB:
RGB(A), grey + alpha and palette images become grey by luminance (ITU-R BT.601,
0.299 R + 0.587 G + 0.114 B, OpenCV's weights), alpha is dropped, 16-bit colour stays
16-bit, and ``metadata["rgb_converted"]`` says it happened (``metadata["channels"]`` how
many there were; ``metadata["colour_share"]`` the share of pixels whose channels differ
clearly, so a colour photo can be told from a grey film saved as RGB). A PNG named ``.pgm`` is read as the PNG it is, with
``metadata["format_mismatch"]`` saying so.

DICOM passes a gate that explains itself (``metadata["dicom"]``: modality, presentation
intent, laterality, view position, frames). A FOR PROCESSING image (raw detector data) is
refused by default, here in the reader, because every model this project trains or runs
learnt FOR PRESENTATION grey levels and every caller (prediction, training, evaluation, the
Data page) would otherwise use it silently; ``allow_for_processing=True`` reads it anyway
for a caller that only inspects it. A modality other than MG is read, with a warning in
``metadata["warnings"]`` (the one list of what is doubtful about a film, whatever its
format), since secondary captures and exports often carry another modality. A multi-frame
object (tomosynthesis, a cine) is refused with its frame count.
"""

from __future__ import annotations

import codecs
import io
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from PIL import TiffImagePlugin
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_windowing, get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)

from core import dicom_codecs, settings
from core.errors import BadConfigError, BadFilmError
from core.settings import MAX_PIXELS_ENV

SUPPORTED_SUFFIXES: tuple[str, ...] = (".pgm", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")

_FORMAT_OF_SUFFIX = {
    ".pgm": "pgm",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".dcm": "dicom",
}
_SUPPORTED = "supported formats: PGM (P2/P5), PNG, JPEG, TIFF, DICOM"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*")
_DICOM_MAGIC = b"DICM"
_DICOM_MAGIC_OFFSET = 128
_WHITESPACE = b" \t\n\v\f\r"
# Regular expressions keep the header scan in C: a file of a million comment lines must not
# cost a million Python loop turns.
_PGM_LAST_COMMENT = re.compile(rb"#[^\r\n]*[\r\n]")  # its one line end is the delimiter
_PGM_GAP = re.compile(rb"(?:[ \t\n\v\f\r]+|#[^\r\n]*(?:\r\n?|\n|\Z))*")
_PGM_NUMBER = re.compile(rb"[0-9]+")
# A PGM header number longer than this cannot be a real dimension; refusing it early also
# keeps int() away from Python's limit on huge digit strings.
_MAX_HEADER_DIGITS = 9
# SOFn markers that carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
# Real files carry a few dozen segments (APPn, DQT, DHT ...) before the frame header; the
# bound stops a crafted file of endless fill bytes or empty segments from costing seconds.
_JPEG_MAX_SEGMENTS = 4096
# PNG writers use chunks of 8 KiB or more (one per row at the least); the bound keeps the
# chunk walk of a crafted file of empty chunks to milliseconds.
_PNG_MAX_CHUNKS = 100_000
_PNG_CHUNK = struct.Struct(">I4s")
# Pillow modes OpenCV decodes to 8 or 16-bit unsigned samples; float and 32-bit are refused.
_TIFF_BITS_OF_MODE = dict.fromkeys(("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK"), 8)
_TIFF_BITS_OF_MODE.update(dict.fromkeys(("I;16", "I;16B", "I;16L"), 16))
_DICOM_GREY = ("MONOCHROME1", "MONOCHROME2")
_DICOM_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")
_MAMMOGRAPHY = "MG"
FOR_PROCESSING = "FOR PROCESSING"
# Image Laterality (0020,0062) is per image; Laterality (0020,0060), per series, is the
# fallback older files carry. "B" (both) and "U" (unpaired) name no one breast.
_SIDES = {"L": "L", "R": "R"}
dicom_codecs.register()  # GDCM for 12-bit JPEG, which pydicom's own GDCM plugin refuses


@dataclass(frozen=True)
class FilmInfo:
    """What a film's header says, read without decoding pixels (cheap enough for every upload)."""

    source_format: str  # "pgm" | "png" | "jpeg" | "tiff" | "dicom"
    rows: int
    cols: int
    bit_depth: int  # storage: 8 or 16 (DICOM: BitsStored)
    side: str | None = None  # DICOM's image laterality, "L" or "R", when it says one
    view: str | None = None  # DICOM's view position ("CC", "MLO", ...), when it says one
    warnings: tuple[str, ...] = ()  # what is doubtful but readable (a modality not MG)


@dataclass(frozen=True, eq=False)
class Film:
    """Decoded grey pixels plus what is needed to interpret them.

    ``eq=False`` because comparing numpy arrays element-wise is not a truth value; two films
    are the same only if they are the same object.
    """

    pixels: np.ndarray  # 2-D, uint8 or uint16
    bit_depth: int  # significant bits: pixel values lie in [0, 2**bit_depth - 1]
    source_format: str
    original_size: tuple[int, int]  # (rows, cols) as stored in the file
    name: str
    metadata: dict[str, Any]


def probe_film(
    source: str | Path | bytes, name: str | None = None, allow_for_processing: bool = False
) -> FilmInfo:
    """The header's format, size and storage depth, or BadFilmError, without decoding pixels.

    Dataset loaders probe every film, so a film cut short is also refused here wherever that
    shows without decoding: a binary PGM shorter than its header says, a PNG whose chunks
    run past the end or stop before IEND, a JPEG without its end-of-image marker, a DICOM
    without pixel data or, uncompressed, with fewer bytes than its header says. No pixel
    limit is applied here because nothing is decoded; ``read_film`` applies it. The DICOM
    gate is the reader's (a FOR PROCESSING image is refused unless ``allow_for_processing``),
    so a loader leaves out up front what could never be read.
    """
    data, label = _load(source, name)
    fmt = _sniff(data, label)
    if fmt == "dicom":
        # The whole dataset: parsing only slices the (still encoded) pixel bytes in memory.
        ds = _dicom_dataset(data, label, stop_before_pixels=False)
        header = _dicom_header(ds, label)
        gate = dicom_gate(ds, label, allow_for_processing)
        _check_dicom_pixel_data(ds, header, label)
        return FilmInfo("dicom", header.rows, header.cols, header.bits_stored,
                        side=_SIDES.get(gate["laterality"] or ""),
                        view=gate["view_position"], warnings=tuple(_gate_warnings(gate)))
    rows, cols, bits = _raster_header(data, fmt, label)
    _check_complete(data, fmt, label)
    return FilmInfo(fmt, rows, cols, 16 if bits > 8 else 8)


def check_pixel_limit(info: FilmInfo, label: str, max_pixels: int | None = None) -> None:
    """Raise the BadFilmError ``read_film`` would raise for a probed film's size.

    Dataset loaders call it after ``probe_film``, so that a film which can never be read
    under the current limit is left out with its reason up front, not counted as a film.
    """
    _check_size(label, info.rows, info.cols, _pixel_limit(max_pixels))


def read_film(
    source: str | Path | bytes,
    name: str | None = None,
    max_pixels: int | None = None,
    allow_for_processing: bool = False,
) -> Film:
    """Decode a film to grey uint8/uint16 pixels, refusing oversized images from the header.

    ``max_pixels`` overrides the ``MAMMO_MAX_PIXELS`` environment variable, which overrides
    its default (``core.settings``). ``allow_for_processing`` reads a DICOM FOR PROCESSING
    image instead of refusing it (see the module's docstring). ``metadata["warnings"]``
    always exists: what makes a model's score for this film doubtful (a DICOM modality not
    MG), empty when nothing does. A misnamed file is not such a doubt: it is read as what it
    is, and ``format_mismatch`` says so.
    """
    data, label = _load(source, name)
    fmt = _sniff(data, label)
    limit = _pixel_limit(max_pixels)
    metadata: dict[str, Any] = {"warnings": []}
    suffix_format = _FORMAT_OF_SUFFIX.get(_suffix(label))
    if suffix_format is not None and suffix_format != fmt:
        metadata["format_mismatch"] = f"named {_suffix(label)} but the content is {fmt.upper()}"
    if fmt == "dicom":
        pixels, bits, rows, cols = _read_dicom(data, label, limit, metadata,
                                               allow_for_processing)
    elif fmt == "pgm":
        pixels, bits, rows, cols = _read_pgm(data, label, limit, metadata)
    else:
        pixels, bits, rows, cols = _read_raster(data, fmt, label, limit, metadata)
    return Film(pixels, bits, fmt, (rows, cols), label, metadata)


# --- source, format and limits -------------------------------------------------------------


def _load(source: str | Path | bytes, name: str | None) -> tuple[bytes, str]:
    """The whole file in memory (read once) and the label used in every message."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<bytes>"
    if not isinstance(source, (str, Path)):
        raise TypeError(f"film source must be a path or bytes, not {type(source).__name__}")
    path = Path(source)
    label = name or str(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise BadFilmError(label, "is a directory, not a film file")
        # A FIFO or a device (/dev/zero) would block or never end: only regular files are read.
        if not stat.S_ISREG(mode):
            raise BadFilmError(label, "is not a regular file (a device, FIFO or socket)")
        return path.read_bytes(), label
    except FileNotFoundError:
        raise BadFilmError(label, "file not found") from None
    except PermissionError:
        raise BadFilmError(label, "permission denied: the file cannot be read") from None
    except OSError as error:
        raise BadFilmError(label, f"cannot be read ({error.strerror or error})") from None


def _suffix(label: str) -> str:
    return Path(label).suffix.lower()


def _sniff(data: bytes, label: str) -> str:
    """The format named by the content's magic bytes, or BadFilmError if none is readable."""
    if not data:
        raise BadFilmError(label, "file is empty")
    # DICOM first: its 128-byte preamble may legitimately hold a TIFF header.
    if data[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == _DICOM_MAGIC:
        return "dicom"
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    if data.startswith(_TIFF_MAGICS):
        return "tiff"
    if len(data) >= 2 and data[0:1] == b"P" and data[1:2] in (b"2", b"5"):
        return "pgm"
    if len(data) >= 2 and data[0:1] == b"P" and data[1:2] in (b"1", b"3", b"4", b"6", b"7"):
        raise BadFilmError(
            label, f"is a Netpbm P{data[1:2].decode()} file, not a grey PGM; {_SUPPORTED}"
        )
    if _suffix(label) == ".dcm":
        return "dicom"  # a bare dataset without preamble; pydicom's forced read decides
    if _looks_like_text(data):
        raise BadFilmError(label, f"is a text file, not an image; {_SUPPORTED}")
    raise BadFilmError(label, f"not a supported image format (unrecognised content); {_SUPPORTED}")


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    if b"\x00" in head:
        return False
    try:
        # Incremental so that a multi-byte character cut at the 4 KiB boundary still counts.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _pixel_limit(max_pixels: int | None) -> int:
    if max_pixels is None:
        return settings.max_pixels()
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise BadConfigError(f"max_pixels must be a positive whole number, got {max_pixels!r}")
    return max_pixels


def _check_size(label: str, rows: int, cols: int, limit: int | None) -> None:
    if rows <= 0 or cols <= 0:
        raise BadFilmError(label, f"image has zero size ({rows} x {cols} pixels)")
    if limit is not None and rows * cols > limit:
        raise BadFilmError(
            label,
            f"image of {rows} x {cols} = {rows * cols:,} pixels is over the pixel limit of "
            f"{limit:,} (refused before decoding; set {MAX_PIXELS_ENV} to raise it)",
        )


# --- PGM, PNG, JPEG, TIFF headers ----------------------------------------------------------


def _raster_header(data: bytes, fmt: str, label: str) -> tuple[int, int, int]:
    """(rows, cols, significant bits) from the header of a non-DICOM film."""
    if fmt == "pgm":
        rows, cols, maxval, _ = _pgm_header(data, label)
        bits = maxval.bit_length()
    elif fmt == "png":
        rows, cols, bits, _ = _png_header(data, label)
    elif fmt == "jpeg":
        rows, cols, bits = _jpeg_header(data, label)
    else:
        rows, cols, bits = _tiff_header(data, label)
    _check_size(label, rows, cols, None)
    return rows, cols, bits


def _pgm_header(data: bytes, label: str) -> tuple[int, int, int, int]:
    """(rows, cols, maxval, raster offset); comments may sit between any two fields."""
    pos, end = 2, len(data)
    fields: list[int] = []
    while len(fields) < 3:
        pos = _PGM_GAP.match(data, pos).end()  # type: ignore[union-attr]  # matches ""
        digits = _PGM_NUMBER.match(data, pos)
        if digits is None:
            if pos >= end:
                raise BadFilmError(label, "PGM header is truncated")
            raise BadFilmError(label, f"malformed PGM header: expected a number at byte {pos}")
        if len(digits.group()) > _MAX_HEADER_DIGITS:
            raise BadFilmError(label, "malformed PGM header: implausibly large number")
        fields.append(int(digits.group()))
        pos = digits.end()
    cols, rows, maxval = fields
    if not 0 < maxval < 65536:
        raise BadFilmError(label, f"malformed PGM header: maxval {maxval} is not in 1..65535")
    # Exactly one whitespace byte (or a comment ending in a newline) precedes the raster.
    comment = _PGM_LAST_COMMENT.match(data, pos)
    if comment is not None:
        pos = comment.end()
    elif pos < end and data[pos] in _WHITESPACE:
        pos += 1
    elif pos >= end:
        raise BadFilmError(label, "PGM header is truncated")
    else:
        raise BadFilmError(label, "malformed PGM header: no whitespace after maxval")
    return rows, cols, maxval, pos


def _png_header(data: bytes, label: str) -> tuple[int, int, int, int]:
    """(rows, cols, bits per sample, colour type) from IHDR, which PNG requires to be first."""
    if len(data) < 33:
        raise BadFilmError(label, "PNG is truncated inside its header")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise BadFilmError(label, "corrupt PNG header: the first chunk is not IHDR")
    cols, rows, depth, colour_type = struct.unpack(">IIBB", data[16:26])
    if depth not in (1, 2, 4, 8, 16):
        raise BadFilmError(label, f"corrupt PNG header: bit depth {depth}")
    # Palette, 1/2/4-bit grey all decode to 8-bit samples.
    return rows, cols, 16 if depth == 16 else 8, colour_type


def _jpeg_header(data: bytes, label: str,
                 frame_markers: frozenset[int] = _JPEG_SOF) -> tuple[int, int, int]:
    """(rows, cols, sample precision) from the first SOF marker, walking segment lengths
    (``frame_markers``: JPEG's SOFn, plus JPEG-LS's SOF55 for a DICOM frame)."""
    pos, end = 2, len(data)
    for _ in range(_JPEG_MAX_SEGMENTS):
        if pos + 4 > end:
            raise BadFilmError(label, "JPEG is truncated before its frame header")
        if data[pos] != 0xFF:
            raise BadFilmError(label, "corrupt JPEG header: expected a marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            raise BadFilmError(label, "corrupt JPEG header: image data before any frame header")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in frame_markers:
            if pos + 10 > end:
                raise BadFilmError(label, "JPEG is truncated inside its frame header")
            precision, rows, cols = struct.unpack(">BHH", data[pos + 4 : pos + 9])
            return rows, cols, precision
        if length < 2:
            raise BadFilmError(label, "corrupt JPEG header: bad segment length")
        pos += 2 + length
    raise BadFilmError(label, "corrupt JPEG header: no frame header among its first segments")


def _tiff_header(data: bytes, label: str) -> tuple[int, int, int]:
    """(rows, cols, bits) via Pillow's lazy TIFF parser.

    The plugin class is built directly rather than through ``Image.open`` so that Pillow's
    own decompression-bomb check (a warning or error at its fixed limit) never fires: the
    limit here is ours and is applied by ``_check_size``.
    """
    try:
        image = TiffImagePlugin.TiffImageFile(io.BytesIO(data))
        cols, rows = image.size
        mode = image.mode
        sample_bits = image.tag_v2.get(258)  # BitsPerSample, one value per sample
    except Exception as error:  # noqa: BLE001 - Pillow raises SyntaxError, OSError, struct.error...
        raise BadFilmError(label, f"corrupt or truncated TIFF header ({error})") from None
    bits = _TIFF_BITS_OF_MODE.get(mode)
    if bits is None:
        raise BadFilmError(
            label, f"TIFF pixel type {mode!r} is not supported (8 or 16-bit unsigned only)"
        )
    # Pillow names 16-bit colour "RGB"/"RGBA" like 8-bit colour; OpenCV decodes it to 16 bits.
    if isinstance(sample_bits, tuple) and sample_bits and max(sample_bits) == 16:
        bits = 16
    return rows, cols, bits


# --- decoding PGM, PNG, JPEG, TIFF ---------------------------------------------------------


def _read_pgm(
    data: bytes, label: str, limit: int, metadata: dict[str, Any]
) -> tuple[np.ndarray, int, int, int]:
    rows, cols, maxval, offset = _pgm_header(data, label)
    _check_size(label, rows, cols, limit)
    count = rows * cols
    metadata.update(pgm_variant=data[:2].decode(), maxval=maxval, rgb_converted=False)
    dtype = np.uint16 if maxval > 255 else np.uint8
    if data[1:2] == b"5":
        _check_pgm_length(data, label, rows, cols, maxval, offset)
        # 16-bit PGM samples are big-endian; astype makes a native, writable copy.
        raw = np.frombuffer(data, ">u2" if maxval > 255 else np.uint8, count, offset)
        pixels = raw.astype(dtype)
    else:
        tokens = data[offset:].split(maxsplit=count)[:count]
        if len(tokens) < count:
            raise BadFilmError(
                label,
                f"PGM is truncated: header says {count:,} pixels but only {len(tokens):,} follow",
            )
        try:
            values = np.array(tokens).astype(np.int64)
        except (ValueError, OverflowError):
            raise BadFilmError(label, "ASCII PGM holds a sample that is not a number") from None
        if values.min() < 0:
            raise BadFilmError(label, "ASCII PGM holds a negative sample")
        pixels = values
    if int(pixels.max()) > maxval:
        raise BadFilmError(label, f"PGM holds a sample above its maxval of {maxval}")
    pixels = pixels.astype(dtype, copy=False)
    return pixels.reshape(rows, cols), maxval.bit_length(), rows, cols


def _check_pgm_length(
    data: bytes, label: str, rows: int, cols: int, maxval: int, offset: int
) -> None:
    """A binary PGM's raster holds exactly what its header promises (or more)."""
    needed = rows * cols * (2 if maxval > 255 else 1)
    if len(data) - offset < needed:
        raise BadFilmError(
            label,
            f"PGM is truncated: header says {cols} x {rows} pixels "
            f"({needed:,} bytes) but only {len(data) - offset:,} bytes follow",
        )


def _check_complete(data: bytes, fmt: str, label: str) -> None:
    """Refuse a PGM, PNG or JPEG cut short, from its structure alone (TIFF is left to the
    decoder). OpenCV decodes what it can salvage from a cut-off PNG/JPEG, so the end is
    looked for here. Entropy-coded JPEG data cannot contain FF DA or FF D9."""
    if fmt == "pgm" and data[1:2] == b"5":
        rows, cols, maxval, offset = _pgm_header(data, label)
        _check_pgm_length(data, label, rows, cols, maxval, offset)
    elif fmt == "png":
        _check_png_chunks(data, label)
    elif fmt == "jpeg":
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            raise BadFilmError(label, "JPEG is truncated (no end-of-image marker)")


def _read_raster(
    data: bytes, fmt: str, label: str, limit: int, metadata: dict[str, Any]
) -> tuple[np.ndarray, int, int, int]:
    """PNG, JPEG and TIFF: header check first, then one OpenCV decode (the fast path)."""
    rows, cols, bits = _raster_header(data, fmt, label)
    _check_size(label, rows, cols, limit)
    _check_complete(data, fmt, label)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise BadFilmError(label, f"{fmt.upper()} could not be decoded ({error.err})") from None
    if image is None:
        raise BadFilmError(label, f"{fmt.upper()} is corrupt or truncated and could not be decoded")
    if image.dtype not in (np.uint8, np.uint16):
        raise BadFilmError(
            label, f"{fmt.upper()} pixel type {image.dtype} is not supported (8 or 16-bit only)"
        )
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels >= 3:
        metadata["colour_share"] = _colour_share(image)
    if channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3:
        image = image[:, :, 0]
    metadata.update(rgb_converted=channels >= 3, channels=channels)
    if image.shape != (rows, cols):
        raise BadFilmError(
            label, f"decoded size {image.shape} differs from the header's {(rows, cols)}"
        )
    # 16-bit samples keep the header's significant bits (16, or a 12-bit JPEG's precision).
    return image, bits if image.dtype == np.uint16 else 8, rows, cols


def _check_png_chunks(data: bytes, label: str) -> None:
    """Every chunk up to IEND lies inside the file.

    OpenCV's PNG reader allocates a chunk's declared length before reading it, so one
    corrupt length field in a 2 KB upload would otherwise cost up to 4 GB of memory.
    """
    pos, end = 8, len(data)
    for _ in range(_PNG_MAX_CHUNKS):
        if pos + 12 > end:
            raise BadFilmError(label, "PNG is truncated (no IEND chunk)")
        length, kind = _PNG_CHUNK.unpack_from(data, pos)
        if length > end - pos - 12:
            name = kind.decode("latin-1").encode("unicode_escape").decode()
            raise BadFilmError(
                label,
                f"PNG is corrupt or truncated: its {name!r} chunk at byte {pos:,} claims "
                f"{length:,} bytes but only {end - pos - 12:,} follow",
            )
        if kind == b"IEND":
            return
        pos += 12 + length
    raise BadFilmError(label, f"corrupt PNG: more than {_PNG_MAX_CHUNKS:,} chunks")


# --- DICOM ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DicomHeader:
    rows: int
    cols: int
    bits_stored: int
    samples: int
    photometric: str
    transfer_syntax: UID
    bits_allocated: int | None  # None when absent or not a number; the decoder then says why


def _dicom_dataset(data: bytes, label: str, stop_before_pixels: bool) -> Dataset:
    """Parse with pydicom; any of its many exception types becomes one BadFilmError."""
    forced = data[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] != _DICOM_MAGIC
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=forced, stop_before_pixels=stop_before_pixels)
        if forced and ("Rows" not in ds or "Columns" not in ds):
            ds = None
    except Exception as error:  # noqa: BLE001 - pydicom raises InvalidDicomError, EOFError...
        if not forced:
            raise BadFilmError(label, f"DICOM is corrupt or truncated ({error})") from None
        ds = None
    if ds is None:
        raise BadFilmError(
            label,
            "not a DICOM file: no 'DICM' marker at byte 128 and no readable DICOM image header; "
            + _SUPPORTED,
        )
    return ds


def _dicom_header(ds: Dataset, label: str) -> _DicomHeader:
    try:
        rows, cols = ds.get("Rows"), ds.get("Columns")
        bits_stored = ds.get("BitsStored") or ds.get("BitsAllocated")
        samples = ds.get("SamplesPerPixel", 1)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
        frames = ds.get("NumberOfFrames", 1)
        bits_allocated = ds.get("BitsAllocated")
        syntax = _transfer_syntax(ds)
    except Exception as error:  # noqa: BLE001 - lazily converted values may be malformed
        raise BadFilmError(label, f"corrupt DICOM header ({error})") from None
    if not isinstance(rows, int) or not isinstance(cols, int):
        raise BadFilmError(
            label, "DICOM header has no usable Rows/Columns (truncated, or not an image)"
        )
    _check_size(label, rows, cols, None)
    if not isinstance(bits_stored, int) or not 1 <= bits_stored <= 32:
        raise BadFilmError(label, f"DICOM BitsStored {bits_stored!r} is not usable")
    if photometric not in _DICOM_GREY + _DICOM_COLOUR or samples not in (1, 3):
        raise BadFilmError(
            label,
            f"DICOM photometric interpretation {photometric} with {samples} samples per pixel "
            f"is not supported (supported: {', '.join(_DICOM_GREY + _DICOM_COLOUR)})",
        )
    try:
        frames = int(frames)
    except (TypeError, ValueError):
        raise BadFilmError(label, f"DICOM NumberOfFrames {frames!r} is not a number") from None
    if frames != 1:
        raise BadFilmError(
            label,
            f"DICOM holds {frames} frames (a multi-frame object such as a tomosynthesis "
            "volume); a film must be a single 2-D image: export the frame to use as its own "
            "file, or use the synthesised 2-D view",
        )
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise BadFilmError(
            label, f"DICOM transfer syntax {syntax.name} ({syntax}) is not supported"
        ) from None
    if not decoder.is_available:
        raise BadFilmError(
            label,
            f"compressed DICOM ({syntax.name}, {syntax}) needs a decoder that is not "
            f"installed: {dicom_codecs.INSTALL_HINT} (pydicom's plugins: "
            f"{'; '.join(decoder.missing_dependencies)})",
        )
    allocated = bits_allocated if isinstance(bits_allocated, int) else None
    return _DicomHeader(rows, cols, bits_stored, samples, photometric, syntax, allocated)


def _transfer_syntax(ds: Dataset) -> UID:
    """The declared transfer syntax, or, for a bare dataset, the encoding pydicom detected."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return UID(meta.TransferSyntaxUID)
    implicit, little = ds.original_encoding
    if implicit:
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    ds.ensure_file_meta()
    ds.file_meta.TransferSyntaxUID = syntax
    return syntax


def dicom_gate(ds: Dataset, label: str, allow_for_processing: bool = False) -> dict[str, Any]:
    """What the DICOM header says about the kind of image: ``modality``,
    ``presentation_intent``, ``laterality``, ``view_position``, ``row_direction`` (Patient
    Orientation's first value, which says where the chest wall is) (each upper-case text or
    None when absent) and ``frames``. Refuses a FOR PROCESSING image unless allowed, with
    the reason, because its grey levels are not those any model here was trained on."""
    gate = {
        "modality": _dicom_text(ds, "Modality"),
        "presentation_intent": _dicom_text(ds, "PresentationIntentType"),
        "laterality": _dicom_text(ds, "ImageLaterality") or _dicom_text(ds, "Laterality"),
        "view_position": _dicom_text(ds, "ViewPosition"),
        "row_direction": _dicom_text(ds, "PatientOrientation"),
        "frames": 1,  # _dicom_header has refused any other count
    }
    if gate["presentation_intent"] == FOR_PROCESSING and not allow_for_processing:
        raise BadFilmError(
            label,
            "DICOM is a FOR PROCESSING image (raw detector data, before the display "
            "processing a reader sees); models here learn FOR PRESENTATION films, whose grey "
            "levels differ, so it is refused: use the FOR PRESENTATION image of the exposure",
        )
    return gate


def chest_wall_on_right_by_header(film: Film) -> bool | None:
    """Which side of the stored image the chest wall is on, as a DICOM's Patient Orientation
    says (PS3.3 C.7.6.1.1.1, required in digital mammograms): its first value is the
    direction of increasing column, so "A" (toward the nipple) puts the chest wall on the
    left, "P" on the right. None when the film is no DICOM or the header does not say, and
    orientation is then read from the image (``core.prep.preprocess``). Laterality alone does
    not tell: a left breast may be stored either way round."""
    direction = (film.metadata.get("dicom") or {}).get("row_direction")
    return {"A": False, "P": True}.get(direction[:1] if direction else "")


def describe_gate(gate: dict[str, Any]) -> str:
    """The DICOM gate in one line for a person (the Predict page), saying which fields the
    header leaves out: "DICOM: modality MG, FOR PRESENTATION, laterality L, view CC"."""
    parts = [f"modality {gate.get('modality') or 'not given'}",
             gate.get("presentation_intent") or "presentation intent not given",
             f"laterality {gate.get('laterality') or 'not given'}",
             f"view {gate.get('view_position') or 'not given'}"]
    return "DICOM: " + ", ".join(parts)


def _gate_warnings(gate: dict[str, Any]) -> list[str]:
    """What in the gate is doubtful but not refused: a modality other than mammography."""
    modality = gate["modality"]
    if modality == _MAMMOGRAPHY:
        return []
    said = f"is {modality}" if modality else "is not given"
    return [(f"DICOM modality {said}, not MG (mammography): models here learn mammograms, "
             "so their scores for this image may mean little")]


def _dicom_text(ds: Dataset, keyword: str) -> str | None:
    """An element's value as stripped upper-case text; None when absent, empty or malformed
    (a bad optional element must not cost the film: it is only described, not needed)."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - lazily converted values may be malformed
        return None
    if isinstance(value, MultiValue):  # a CS may hold several values: the first is the one
        value = value[0] if len(value) else None
    if value is None or not isinstance(value, str):
        return None
    text = value
    return text.strip().upper() or None


def film_notes(film: Film) -> dict[str, Any]:
    """What a report says about a film beside its scores, so a person sees why a score may
    mean little: for a DICOM its gate (``dicom``) and ``warnings``; for another film
    ``warnings`` only when there is one, so an ordinary film's entry stays as it was."""
    warnings = list(film.metadata.get("warnings", []))
    if "dicom" in film.metadata:
        return {"dicom": dict(film.metadata["dicom"]), "warnings": warnings}
    return {"warnings": warnings} if warnings else {}


def _read_dicom(
    data: bytes, label: str, limit: int, metadata: dict[str, Any], allow_for_processing: bool
) -> tuple[np.ndarray, int, int, int]:
    # Parsing the whole dataset only copies the (still encoded) pixel bytes already in
    # memory; decoding waits until the header has passed the size check.
    ds = _dicom_dataset(data, label, stop_before_pixels=False)
    header = _dicom_header(ds, label)
    gate = dicom_gate(ds, label, allow_for_processing)
    metadata["dicom"] = gate
    metadata.setdefault("warnings", []).extend(_gate_warnings(gate))
    _check_size(label, header.rows, header.cols, limit)
    _check_dicom_pixel_data(ds, header, label)
    metadata.update(
        photometric_interpretation=header.photometric,
        transfer_syntax=f"{header.transfer_syntax.name} ({header.transfer_syntax})",
        bits_stored=header.bits_stored,
    )
    try:
        arr = dicom_codecs.decode(ds, header.transfer_syntax)
    except dicom_codecs.DecoderCrashed as error:
        raise BadFilmError(label, f"DICOM pixel data could not be decoded: {error}") from None
    except _INTERRUPTIONS:
        raise
    # pydicom and its plugins raise many types here; the Rust RLE decoder (pylibjpeg-rle)
    # panics on a damaged segment with pyo3's PanicException, which is a BaseException.
    except BaseException as error:  # noqa: BLE001
        reason = " ".join(str(error).split())  # pydicom lists each plugin's fault on a line
        raise BadFilmError(label, f"DICOM pixel data is corrupt or truncated ({reason})") from None
    if arr.shape[:2] != (header.rows, header.cols):
        raise BadFilmError(label, f"DICOM pixel data has shape {arr.shape}, not a 2-D film")
    if header.samples == 3:
        return _dicom_colour(arr, label, header, metadata)
    try:
        pixels, bits = _dicom_grey(arr, ds, header, metadata)
    except Exception as error:  # noqa: BLE001 - malformed LUTs, zero window widths, ...
        raise BadFilmError(label, f"DICOM grey-level transform failed ({error})") from None
    return pixels, bits, header.rows, header.cols


def _check_dicom_pixel_data(ds: Dataset, header: _DicomHeader, label: str) -> None:
    """Pixel data is present and, when uncompressed, as long as the header says.

    pydicom parses a file cut inside its pixel data without complaint (only decoding
    fails), so the length is compared here, where it costs nothing.
    """
    if "PixelData" not in ds:
        raise BadFilmError(label, "DICOM has no pixel data (no PixelData element)")
    allocated = header.bits_allocated
    if header.transfer_syntax.is_compressed:
        _check_frame_size(ds, header, label)
        return
    if allocated not in (1, 8, 16, 32):
        return  # a header the decoder will refuse with its reason
    needed = (header.rows * header.cols * header.samples * allocated + 7) // 8
    if header.photometric == "YBR_FULL_422":
        # Two horizontal neighbours share one Cb and one Cr: 2 samples a pixel, not 3
        # (PS3.3 C.7.6.3.1.2; pydicom's expected length says the same).
        needed = needed // 3 * 2
    try:
        present = len(ds.PixelData)
    except Exception as error:  # noqa: BLE001 - lazily converted values may be malformed
        raise BadFilmError(label, f"corrupt DICOM pixel data element ({error})") from None
    if present < needed:
        raise BadFilmError(
            label,
            f"DICOM pixel data is corrupt or truncated: {present:,} bytes where {header.rows} x "
            f"{header.cols} pixels of {allocated} bits need {needed:,}",
        )


_JPEG_FAMILY = frozenset(JPEGTransferSyntaxes) | frozenset(JPEGLSTransferSyntaxes)
_JPEG_LS_SOF = 0xF7
# JPEG 2000's codestream opens with SOC then SIZ (ISO/IEC 15444-1 A.5.1); a JP2 wrapper, which
# DICOM does not use but some writers add, puts a few boxes before them.
_J2K_SIZ = b"\xff\x4f\xff\x51"
_J2K_SEARCH = 4096


#: What stops a program on purpose, passed on by the one place that catches BaseException.
_INTERRUPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit)


def _check_frame_size(ds: Dataset, header: _DicomHeader, label: str) -> None:
    """A compressed frame must declare the size the DICOM header does, checked before any
    decoding: decoders size their buffers from the codestream, so a small header over a
    frame that declares 60000 x 60000 pixels would otherwise cost gigabytes, or abort the
    whole process (GDCM throws a C++ exception nobody catches). RLE needs no check (its
    decoder fills the header's size), nor does a syntax pydicom decodes no frames of."""
    syntax = header.transfer_syntax
    if syntax not in _JPEG_FAMILY and syntax not in JPEG2000TransferSyntaxes:
        return
    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception as error:  # noqa: BLE001 - pydicom raises many types on bad fragments
        raise BadFilmError(label, "DICOM compressed pixel data is corrupt: no readable frame "
                                  f"({' '.join(str(error).split())})") from None
    if syntax in _JPEG_FAMILY:
        if not frame.startswith(b"\xff\xd8"):
            raise BadFilmError(label, f"DICOM {syntax.name} frame is not a JPEG stream")
        rows, cols, _ = _jpeg_header(frame, label, _JPEG_SOF | {_JPEG_LS_SOF})
    else:
        start = frame.find(_J2K_SIZ, 0, _J2K_SEARCH)
        if start < 0 or start + 24 > len(frame):
            raise BadFilmError(label, "DICOM JPEG 2000 frame has no readable size (SIZ) header")
        width, height, left, top = struct.unpack(">IIII", frame[start + 8 : start + 24])
        rows, cols = height - top, width - left
    if (rows, cols) != (header.rows, header.cols):
        raise BadFilmError(
            label,
            f"DICOM compressed frame declares {rows} x {cols} pixels where the header says "
            f"{header.rows} x {header.cols} (refused before decoding)",
        )


def _dicom_colour(
    arr: np.ndarray, label: str, header: _DicomHeader, metadata: dict[str, Any]
) -> tuple[np.ndarray, int, int, int]:
    """Colour DICOM (pydicom already converted YBR to RGB): grey by luminance."""
    if arr.dtype not in (np.uint8, np.uint16):
        raise BadFilmError(label, f"colour DICOM pixel type {arr.dtype} is not supported")
    metadata.update(rgb_converted=True, modality_lut=None, voi=None, inverted=False,
                    colour_share=_colour_share(arr))
    bits = 8 if arr.dtype == np.uint8 else min(header.bits_stored, 16)
    return cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY), bits, header.rows, header.cols


#: Channels further apart than this (of 255) make a pixel coloured: a grey film saved as an
#: RGB JPEG differs by a level or two where chroma was rounded, a photo by tens.
COLOUR_SPREAD = 16
#: Long side of the copy the colour share is counted on (a stride, no resize: cheap).
_COLOUR_SAMPLE_SIDE = 256


def _colour_share(image: np.ndarray) -> float:
    """Share of pixels (on a strided copy) whose colour channels differ by more than
    ``COLOUR_SPREAD`` on the 8-bit scale; channel order does not matter."""
    step = max(1, max(image.shape[:2]) // _COLOUR_SAMPLE_SIDE)
    sample = image[::step, ::step, :3].astype(np.int32)
    if image.dtype == np.uint16:
        sample >>= 8
    spread = sample.max(axis=2) - sample.min(axis=2)
    return round(float((spread > COLOUR_SPREAD).mean()), 4)


def _dicom_grey(
    arr: np.ndarray, ds: Dataset, header: _DicomHeader, metadata: dict[str, Any]
) -> tuple[np.ndarray, int]:
    """Modality LUT, then VOI, then polarity, as DICOM's grey pipeline orders them.

    The result spans [0, 2**bits - 1] whatever the intermediate units were: the output range
    of each transform is known from the header (not from this image's values), so it is
    mapped linearly onto the unsigned range and films stay comparable with each other.
    """
    signed = ds.get("PixelRepresentation", 0) == 1
    bits = header.bits_stored
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    values: np.ndarray = arr
    modality = None
    if ds.get("ModalityLUTSequence"):
        modality = "lut"
        bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        lo, hi = 0, 2**bits - 1
    elif _has_rescale(ds):
        modality = "rescale"
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    if modality is not None:
        values = apply_modality_lut(values, ds)
    voi = None
    if ds.get("VOILUTSequence"):
        voi = "lut"
        values, bits = _apply_voi_lut(values, ds)
        lo, hi = 0, 2**bits - 1
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        voi = "window"
        values = apply_windowing(values, ds)  # its output spans the modality range [lo, hi]
    bits = min(bits, 16)
    top = 2**bits - 1
    dtype = np.uint8 if bits <= 8 else np.uint16
    if (lo, hi) == (0, top) and values.dtype == dtype and np.iinfo(dtype).max == top:
        pixels = values  # a full-range film already: clipping would copy it to change nothing
    elif (lo, hi) == (0, top) and np.issubdtype(values.dtype, np.integer):
        pixels = np.clip(values, 0, top).astype(dtype, copy=False)
    elif hi <= lo:
        raise ValueError("the modality transform maps every pixel to one value")
    else:
        scaled = (values.astype(np.float64) - lo) * (top / (hi - lo))
        pixels = np.rint(np.clip(scaled, 0, top)).astype(dtype)
    inverted = header.photometric == "MONOCHROME1"
    if inverted:  # MONOCHROME1 shows dense tissue dark; flip so it is bright like the rest
        pixels = top - pixels
    metadata.update(rgb_converted=False, modality_lut=modality, voi=voi, inverted=inverted)
    return pixels, bits


def _has_rescale(ds: Dataset) -> bool:
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is None or intercept is None:
        return False
    return (float(slope), float(intercept)) != (1.0, 0.0)


def _apply_voi_lut(values: np.ndarray, ds: Dataset) -> tuple[np.ndarray, int]:
    """First VOI LUT of the sequence, indexed in int64.

    Written out rather than using ``pydicom.pixels.apply_voi`` because that indexes through
    an array of the LUT's own width, so an 8-bit LUT over 12-bit data wraps around.
    """
    item = ds.VOILUTSequence[0]
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536
    raw = item.LUTData
    if isinstance(raw, bytes):  # OW: endianness follows the dataset
        little = ds.original_encoding[1] is not False
        lut = np.frombuffer(raw, "<u2" if little else ">u2", entries)
    else:
        lut = np.asarray(raw if isinstance(raw, list) else [raw], dtype=np.int64)
    if len(lut) < entries or not 1 <= bits <= 16:
        raise ValueError("VOI LUT descriptor and data disagree")
    index = np.clip(np.rint(values).astype(np.int64) - first, 0, entries - 1)
    return np.clip(lut[index], 0, 2**bits - 1), bits
