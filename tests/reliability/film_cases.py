"""The bad films of issue 7 and the unusual-but-good ones, built from any grey film.

One catalogue, so the core API, the CLI, the dataset loaders and both pages are tried with
the same files. Every bad case carries the phrase its message must hold; every good case
the grey pixels it must read as (``None`` for lossy JPEG, compared loosely).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from core.films import read_film
from factories import dicom

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def first_film(synthetic_root: Path) -> np.ndarray:
    """A 128 px SYNTHETIC film (8-bit) to spoil: made from it, a good case is a film the
    model can score (it has a breast to crop to)."""
    return read_film(min(synthetic_root.glob("mdb*.pgm"))).pixels


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    phrase: str = ""  # bad cases: what the message must say
    pixels: np.ndarray | None = None  # good cases: the grey film expected (None: lossy)
    bit_depth: int = 8


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(rows: int, cols: int) -> bytes:
    """A valid-looking PNG whose header claims any size over a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)
    return (PNG_MAGIC + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def encode(pixels: np.ndarray, ext: str) -> bytes:
    ok, buffer = cv2.imencode(ext, pixels)
    assert ok, ext
    return buffer.tobytes()


def pgm(pixels: np.ndarray) -> bytes:
    rows, cols = pixels.shape
    maxval = 65535 if pixels.dtype == np.uint16 else 255
    body = pixels.astype(">u2" if maxval > 255 else np.uint8).tobytes()
    return f"P5\n{cols} {rows}\n{maxval}\n".encode() + body


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 grey of an RGB array, written out independently of OpenCV."""
    weights = np.array([0.299, 0.587, 0.114])
    return rgb[..., :3].astype(np.float64) @ weights


def bad_films(grey: np.ndarray) -> list[Case]:
    """Every bad film of the issue, made from an 8-bit grey film. Names are unique."""
    png = encode(grey, ".png")
    pgm8 = pgm(grey)
    dcm = dicom(grey.astype(np.uint16) * 16, bits_stored=12)
    corrupt_length = bytearray(png)
    corrupt_length[33:37] = struct.pack(">I", 0xFFFF_FFF0)  # the first chunk after IHDR
    return [
        Case("empty.pgm", b"", "file is empty"),
        Case("truncated.pgm", pgm8[: len(pgm8) // 2], "PGM is truncated"),
        Case("truncated.png", png[: len(png) // 2], "truncated"),
        Case("truncated.dcm", dcm[:-100], "corrupt or truncated"),
        Case("chunk-length.png", bytes(corrupt_length), "claims 4,294,967,280 bytes"),
        Case("gif-named.png", b"GIF89a\x02\x00\x02\x00\x80\x00\x00" + b"\0" * 40,
             "not a supported image format"),
        Case("random.dcm", np.random.default_rng(7).bytes(4096), "not a DICOM file"),
        Case("no-pixels.dcm", dicom(grey.astype(np.uint16), pixel_data=False), "no pixel data"),
        Case("huge.png", png_claiming(100_000, 100_000), "over the pixel limit"),
        Case("huge.pgm", b"P5\n100000 100000\n255\n" + b"\0" * 64, "over the pixel limit"),
        Case("huge.dcm", dicom(np.zeros((4, 4), np.uint16), Rows=60_000, Columns=60_000),
             "over the pixel limit"),
        Case("notes.png", "Patient notes, not a film.\nLine two: café\n".encode() * 20,
             "is a text file"),
    ]


def good_variants(grey: np.ndarray) -> list[Case]:
    """Files that look odd but are films: they must be read, and read right."""
    grey16 = grey.astype(np.uint16) * 257  # full 16-bit range, same picture
    rgb = np.dstack([grey, grey // 2, 255 - grey])  # a colour picture, in RGB order
    rgb16 = rgb.astype(np.uint16) * 257
    rgba = np.dstack([rgb, np.full_like(grey, 99)])

    def pil(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
        buffer = io.BytesIO()
        image = Image.fromarray(array)
        (image.convert(mode) if mode else image).save(buffer, format=fmt)
        return buffer.getvalue()

    bgr = np.ascontiguousarray(rgb[..., ::-1])
    return [
        Case("grey8.pgm", pgm(grey), pixels=grey),
        Case("grey16.pgm", pgm(grey16), pixels=grey16, bit_depth=16),
        Case("grey16.png", encode(grey16, ".png"), pixels=grey16, bit_depth=16),
        Case("grey16.tif", pil(grey16, "TIFF"), pixels=grey16, bit_depth=16),
        Case("really-a-png.pgm", encode(grey, ".png"), pixels=grey),
        Case("grey-alpha.png", pil(np.dstack([grey, np.full_like(grey, 7)]), "PNG"),
             pixels=grey),
        Case("rgb8.png", encode(bgr, ".png"), pixels=luminance(rgb)),
        Case("rgba8.png", pil(rgba, "PNG"), pixels=luminance(rgba)),
        Case("rgb8.tif", pil(rgb, "TIFF"), pixels=luminance(rgb)),
        Case("rgb16.png", encode(np.ascontiguousarray(rgb16[..., ::-1]), ".png"),
             pixels=luminance(rgb16), bit_depth=16),
        Case("rgb16.tif", encode(np.ascontiguousarray(rgb16[..., ::-1]), ".tif"),
             pixels=luminance(rgb16), bit_depth=16),
        Case("rgb8.jpg", encode(bgr, ".jpg")),
        Case("grey12.dcm", dicom(grey.astype(np.uint16) * 16, bits_stored=12),
             pixels=grey.astype(np.uint16) * 16, bit_depth=12),
        Case("rgb8.dcm", dicom(rgb, bits_stored=8, photometric="RGB", SamplesPerPixel=3,
                               PlanarConfiguration=0), pixels=luminance(rgb)),
    ]
