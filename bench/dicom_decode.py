"""How long a full-field RLE DICOM takes to decode: pydicom's own numpy RLE decoder against
pylibjpeg-rle (the one ``requirements.txt`` installs), and the whole ``read_film``.

The film is 4608 x 2688, 12 bits stored in 16 (a full-field digital mammogram's size): a
real mini-MIAS film scaled up to that size and to 12 bits, with a little noise so the RLE
runs are as short as a detector's are, then RLE-encoded in memory. Each figure is the best
of ``--repeat`` calls. Prints one JSON line and one line for people.

    python bench/dicom_decode.py [--film ../shared/data/mias/mdb059.png] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from core.films import read_film
from core.settings import SHARED

ROWS, COLS = 4608, 2688


def _film(source: Path, noise: float) -> np.ndarray:
    grey = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise SystemExit(f"{source}: cannot be read as a film")
    big = cv2.resize(grey.astype(np.float32) * 16, (COLS, ROWS), interpolation=cv2.INTER_CUBIC)
    big += np.random.default_rng(0).normal(0, noise, big.shape).astype(np.float32)
    return np.clip(big, 0, 4095).astype(np.uint16)


def _rle_dicom(pixels: np.ndarray) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography, for presentation
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    ds.compress(RLELossless, encoding_plugin="pylibjpeg")
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _best(call, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--film", type=Path, default=SHARED / "data" / "mias" / "mdb059.png")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--noise", type=float, default=4.0, help="grey levels of noise (12-bit)")
    args = parser.parse_args()
    pixels = _film(args.film, args.noise)
    data = _rle_dicom(pixels)
    figures: dict[str, float | int | str] = {"rows": ROWS, "cols": COLS, "rle_bytes": len(data)}
    for plugin in ("pydicom", "pylibjpeg"):
        decoded = pixel_array(io.BytesIO(data), decoding_plugin=plugin)
        assert np.array_equal(decoded, pixels), f"{plugin} decoded other pixels"
        figures[f"decode_{plugin}_s"] = round(
            _best(lambda p=plugin: pixel_array(io.BytesIO(data), decoding_plugin=p), args.repeat), 3)
    film = read_film(data, name="full-field.dcm")
    assert np.array_equal(film.pixels, pixels) and film.bit_depth == 12
    figures["read_film_s"] = round(_best(lambda: read_film(data, name="f.dcm"), args.repeat), 3)
    figures["pydicom_version"] = pydicom.__version__
    print(json.dumps(figures))
    print(f"{ROWS} x {COLS} 16-bit RLE film ({len(data) / 1e6:.1f} MB): pydicom's decoder "
          f"{figures['decode_pydicom_s']} s, pylibjpeg-rle {figures['decode_pylibjpeg_s']} s, "
          f"read_film {figures['read_film_s']} s (best of {args.repeat})")


if __name__ == "__main__":
    main()
