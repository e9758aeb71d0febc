"""A bounded, seeded fuzz run of the film readers: mutated real and synthetic films.

Every outcome must be a well-formed ``Film`` (or ``FilmInfo``) or a ``BadFilmError`` that
names the file, in one line; never another exception, never a hang, never more memory than
the pixel limit allows. The run is bounded by count (``COUNT`` inputs, each read by
``probe_film`` and ``read_film``), not by time, and seeded, so a failure reproduces:
``python tests/reliability/test_fuzz_readers.py FILM COUNT SEED`` prints the same document.

It runs in a child process: the child's peak resident memory is then its own (the test
process may have trained a model before), and a hang ends in the subprocess timeout. The
pixel limit is set low in the child (``MAMMO_MAX_PIXELS``) so that what a legitimate decode
may allocate is small and any larger peak is a fault. One was: a PNG whose chunk length is
damaged made OpenCV allocate that length (up to 4 GB) before reading it.

The seeds include compressed DICOMs of every syntax the readers decode (JPEG-LS, JPEG
lossless, JPEG 2000, 12-bit JPEG, RLE), so the decoders are fuzzed too. Two faults were
found there: the Rust RLE decoder panicked with an exception that is not an ``Exception``,
and GDCM aborted the whole process on a damaged 12-bit JPEG (its C++ exception is caught by
nobody). The JPEG family is now decoded in child processes (``core.dicom_codecs.decode``);
their memory is theirs, not counted in the peak here.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import resource
import struct
import subprocess
import sys
import time
import warnings
import zlib
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
COUNT = 10_000
SEED = 20240611
CHILD_PIXEL_LIMIT = 4_000_000  # the real film has 1,048,576 pixels
MAX_SECONDS_PER_READ = 2.0  # reads take milliseconds; the PNG fault took 3-6 s
MAX_PEAK_MB = 450  # about 100 MB is Python, NumPy, OpenCV and pydicom; the fault took 4 GB


# -- seeds -----------------------------------------------------------------------------------------
def seed_films(real: bytes) -> dict[str, bytes]:
    """The real film, and film-like small files of every format and depth made from it."""
    import cv2
    import numpy as np
    from PIL import Image

    from factories import dicom

    grey = cv2.resize(cv2.imdecode(np.frombuffer(real, np.uint8), cv2.IMREAD_GRAYSCALE),
                      (48, 64), interpolation=cv2.INTER_AREA)
    grey16 = grey.astype(np.uint16) * 257
    rgb = np.dstack([grey, grey // 2, 255 - grey])

    def encoded(array: np.ndarray, ext: str) -> bytes:
        return cv2.imencode(ext, array)[1].tobytes()

    def tiff(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="TIFF")
        return buffer.getvalue()

    return {
        "real.png": real,
        "grey.png": encoded(grey, ".png"),
        "grey16.png": encoded(grey16, ".png"),
        "rgb.png": encoded(rgb, ".png"),
        "grey.jpg": encoded(grey, ".jpg"),
        "grey.tif": tiff(grey),
        "grey16.tif": tiff(grey16),
        "rgb16.tif": encoded(rgb.astype(np.uint16) * 257, ".tif"),
        "grey.pgm": b"P5\n48 64\n255\n" + grey.tobytes(),
        "grey16.pgm": b"P5\n48 64\n65535\n" + grey16.astype(">u2").tobytes(),
        "ascii.pgm": b"P2\n8 8\n255\n" + " ".join(map(str, grey[:8, :8].ravel())).encode(),
        "grey12.dcm": dicom(grey16 >> 4),
        "windowed.dcm": dicom(grey16 >> 4, WindowCenter=2048, WindowWidth=900,
                              RescaleSlope=2, RescaleIntercept=-7),
        "inverted.dcm": dicom(grey, bits_stored=8, photometric="MONOCHROME1"),
        "rgb.dcm": dicom(rgb, bits_stored=8, photometric="RGB", SamplesPerPixel=3,
                         PlanarConfiguration=0),
        **compressed_dicoms(),
    }


#: pydicom's own small compressed films (in its wheel: no download), one or more of each
#: syntax the readers decode: they reach GDCM's and pylibjpeg-rle's decoders, not only the
#: DICOM parser.
COMPRESSED_DICOMS = {
    "jpeg-ls.dcm": "MR_small_jpeg_ls_lossless.dcm",
    "jpeg-ls-near.dcm": "JPEGLSNearLossless_16.dcm",
    "rle.dcm": "MR_small_RLE.dcm",
    "j2k.dcm": "JPEG2000.dcm",
    "j2k-lossless.dcm": "MR_small_jp2klossless.dcm",
    "jpeg12.dcm": "JPGExtended.dcm",
    "jpeg-lossless.dcm": "SC_rgb_jpeg_gdcm.dcm",
}


def compressed_dicoms() -> dict[str, bytes]:
    from pydicom.data import get_testdata_file

    return {name: Path(get_testdata_file(file, download=False)).read_bytes()
            for name, file in COMPRESSED_DICOMS.items()}


# -- mutations -----------------------------------------------------------------------------------
def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _big(rng: random.Random) -> int:
    return rng.choice([0, 1, 2, 255, 256, 4095, 65535, 65536, 100_000, 2**31 - 1, 2**32 - 1,
                       rng.randrange(2**32)])


def mutate(rng: random.Random, name: str, data: bytes) -> tuple[str, bytes]:
    """One mutation: its kind (for the report) and the mutated bytes."""
    out = bytearray(data)
    kind = rng.choice(["bit flips", "truncation", "header bytes", "header number",
                       "insert or delete", "format field"])
    if kind == "bit flips":
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == "truncation":
        del out[rng.randrange(len(out)):]
    elif kind == "header bytes":
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(min(len(out), 400))] = rng.randrange(256)
    elif kind == "header number":
        at = rng.randrange(min(len(out), 400) - 4)
        out[at:at + 4] = struct.pack(rng.choice([">I", "<I"]), _big(rng))
    elif kind == "insert or delete":
        at = rng.randrange(len(out))
        if rng.random() < 0.5:
            del out[at:at + rng.randint(1, 64)]
        else:
            out[at:at] = rng.randbytes(rng.randint(1, 64))
    else:
        return kind, _format_field(rng, name, data)
    return kind, bytes(out)


def _format_field(rng: random.Random, name: str, data: bytes) -> bytes:
    """Edit a field the format's own reader trusts, keeping the file otherwise valid."""
    if data.startswith(b"\x89PNG"):
        if rng.random() < 0.5:  # any chunk's length
            starts = [m.start() - 4 for m in re.finditer(rb"IDAT|IEND|IHDR", data)]
            at = rng.choice(starts)
            return data[:at] + struct.pack(">I", _big(rng)) + data[at + 4:]
        cols, rows, depth, colour, *rest = struct.unpack(">IIBBBBB", data[16:29])
        fields = [rng.choice([cols, _big(rng) % 70_000]), rng.choice([rows, _big(rng) % 70_000]),
                  rng.choice([depth, 1, 2, 4, 8, 16, 3]), rng.choice([colour, 0, 2, 3, 4, 6, 5]),
                  *rest]
        return data[:8] + _chunk(b"IHDR", struct.pack(">IIBBBBB", *fields)) + data[33:]
    if data.startswith((b"P5", b"P2")):
        header = data[:40].split(maxsplit=4)
        numbers = [rng.choice([n.decode(), str(_big(rng) % 200_000), "0", "x"])
                   for n in header[1:4]]
        return b" ".join([header[0], *(n.encode() for n in numbers)]) + b"\n" + header[4]
    if data.startswith(b"\xff\xd8"):
        sof = data.find(b"\xff\xc0")
        return data[:sof + 5] + struct.pack(">HH", _big(rng) & 0xFFFF,
                                            _big(rng) & 0xFFFF) + data[sof + 9:]
    if data.startswith((b"II*\x00", b"MM\x00*")) and data[128:132] != b"DICM":
        # (a DICOM's 128-byte preamble may itself be a TIFF header: pydicom's MR_small_RLE)
        out = bytearray(data)
        ifd = struct.unpack_from("<I", out, 4)[0]
        entry = ifd + 2 + 12 * rng.randrange(struct.unpack_from("<H", out, ifd)[0])
        struct.pack_into("<I", out, entry + 8, _big(rng))
        return bytes(out)
    import numpy as np

    from factories import dicom  # DICOM: rebuild with header elements that lie

    elements = {"Rows": _big(rng) & 0xFFFF, "Columns": _big(rng) & 0xFFFF,
                "BitsAllocated": rng.choice([1, 8, 12, 16, 32, 64]),
                "SamplesPerPixel": rng.choice([0, 1, 2, 3, 4]),
                "PhotometricInterpretation": rng.choice(["MONOCHROME1", "RGB", "PALETTE COLOR",
                                                         "YBR_FULL", ""]),
                "PixelRepresentation": rng.choice([0, 1]), "WindowWidth": rng.choice([0, -5, 1]),
                "RescaleSlope": rng.choice([0, -1, 1e30]), "NumberOfFrames": rng.choice([0, 2])}
    chosen = dict(rng.sample(sorted(elements.items()), rng.randint(1, 3)))
    pixels = np.frombuffer(rng.randbytes(64 * 48 * 2), np.uint16).reshape(64, 48)
    return dicom(pixels, bits_stored=rng.choice([1, 8, 12, 16, 17, 32]), **chosen)


# -- the run ---------------------------------------------------------------------------------------
def fuzz(real_film: Path, count: int, seed: int) -> dict:
    """Read ``count`` mutated films; return what happened (escapes list the faults)."""
    import numpy as np

    from core.errors import BadFilmError
    from core.films import Film, FilmInfo, probe_film, read_film

    warnings.simplefilter("ignore")  # pydicom warns about the damage it is shown
    rng = random.Random(seed)
    seeds = seed_films(real_film.read_bytes())
    names = sorted(seeds)
    # Start the decoders' child processes before timing reads: a one-off second, not a read.
    read_film(seeds["jpeg-ls.dcm"], name="jpeg-ls.dcm")
    outcomes: Counter[str] = Counter()
    escapes: list[str] = []
    slowest = (0.0, "")
    for number in range(count):
        origin = rng.choice(names)
        kind, data = mutate(rng, origin, seeds[origin])
        # Mostly the seed's own name; sometimes a misleading one (the content decides).
        name = origin if rng.random() < 0.8 else rng.choice(["x.dcm", "x.pgm", "x.png", "x"])
        for reader in (probe_film, read_film):
            what = f"#{number} {origin} ({kind}) read as {name} by {reader.__name__}"
            started = time.perf_counter()
            try:
                result = reader(data, name=name)
            except BadFilmError as error:
                outcomes["BadFilmError"] += 1
                if error.path != name or not str(error).startswith(f"{name}: ") \
                        or "\n" in str(error):
                    escapes.append(f"{what}: badly worded error {str(error)[:200]!r}")
            except Exception as error:  # noqa: BLE001 - exactly what this run looks for
                escapes.append(f"{what}: {type(error).__name__}: {str(error)[:200]}")
            else:
                outcomes[type(result).__name__] += 1
                if isinstance(result, Film):
                    pixels = result.pixels
                    if (pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16)
                            or pixels.shape != result.original_size
                            or int(pixels.max()) > 2**result.bit_depth - 1):
                        escapes.append(f"{what}: malformed Film {pixels.shape} {pixels.dtype} "
                                       f"bit_depth {result.bit_depth}")
                elif not (isinstance(result, FilmInfo) and result.rows > 0 and result.cols > 0):
                    escapes.append(f"{what}: malformed {result!r}")
            elapsed = time.perf_counter() - started
            if elapsed > slowest[0]:
                slowest = (elapsed, what)
    return {"inputs": count, "outcomes": dict(outcomes), "escapes": escapes,
            "slowest_seconds": round(slowest[0], 3), "slowest": slowest[1],
            "peak_mb": _peak_mb()}


def _peak_mb() -> int:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over from the parent through fork and exec, so a child of a big test process would
    report the parent's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        (line,) = [x for x in status.read_text().splitlines() if x.startswith("VmHWM:")]
        return int(line.split()[1]) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def test_mutated_films_only_ever_give_a_film_or_a_named_error(mias_root: Path) -> None:
    repo = HERE.parents[1]
    env = {**os.environ, "MAMMO_MAX_PIXELS": str(CHILD_PIXEL_LIMIT),
           "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "tests"), str(HERE)])}
    child = subprocess.run(
        [sys.executable, __file__, str(mias_root / "mdb001.png"), str(COUNT), str(SEED)],
        capture_output=True, text=True, timeout=180, env=env, cwd=repo, check=False)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout)
    assert report["escapes"] == []
    assert report["inputs"] == COUNT
    # Both outcomes occur: the mutations are neither all fatal nor all harmless.
    assert report["outcomes"]["BadFilmError"] > COUNT / 2
    assert report["outcomes"]["Film"] > 20 and report["outcomes"]["FilmInfo"] > 20
    assert report["slowest_seconds"] < MAX_SECONDS_PER_READ, report["slowest"]
    assert report["peak_mb"] < MAX_PEAK_MB, report


if __name__ == "__main__":
    film, count, seed = sys.argv[1:4]
    print(json.dumps(fuzz(Path(film), int(count), int(seed)), indent=1))
