"""A full-field digital mammogram as a detector stores it, for timing: 4,600 x 2,700 pixels,
16-bit, RLE Lossless, MG, FOR PRESENTATION. THIS IS NOT A REAL MAMMOGRAM.

The breast is a SYNTHETIC film (``core.data.synthetic``, drawn at 1,024 px), cut to a
detector's aspect around the chest wall and enlarged; then 16-bit detector noise is added, so
the low bits are not constant and RLE compresses it about as poorly as it does a real film
(runs are short on noisy 16-bit data, and the decoder's work follows the runs). The same
seed gives the same bytes.

    python bench/fullsize_film.py OUT.dcm [--rows 4600] [--cols 2700]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import cv2
import numpy as np
from pydicom import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from core.data.synthetic import make_specs, render_film

ROWS, COLS = 4600, 2700
MAMMO_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage
#: Detector noise in 16-bit levels (a few tens, as real 16-bit films show in flat air).
NOISE = 40.0


def fullsize_pixels(rows: int = ROWS, cols: int = COLS, seed: int = 0) -> np.ndarray:
    """The film's pixels: uint16, ``rows`` x ``cols``, chest wall on the left."""
    spec = next(one for one in make_specs(2, seed) if one.side == "L")
    small = render_film(spec, 1024)
    width = min(1024, round(1024 * cols / rows))
    film = cv2.resize(small[:, :width].astype(np.float32), (cols, rows),
                      interpolation=cv2.INTER_CUBIC) * 256.0
    film += np.random.default_rng(seed).normal(0.0, NOISE, film.shape).astype(np.float32)
    return np.clip(np.rint(film), 0, 65535).astype(np.uint16)


def fullsize_dicom(rows: int = ROWS, cols: int = COLS, seed: int = 0) -> bytes:
    """The film as an RLE Lossless DICOM file (pylibjpeg-rle's encoder when installed: the
    pure-Python one takes minutes on 12 megapixels)."""
    pixels = fullsize_pixels(rows, cols, seed)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MAMMO_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = "L"
    ds.ViewPosition = "MLO"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    try:
        ds.compress(RLELossless, encoding_plugin="pylibjpeg")
    except (RuntimeError, ValueError):
        ds.compress(RLELossless)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--cols", type=int, default=COLS)
    args = parser.parse_args()
    args.out.write_bytes(fullsize_dicom(args.rows, args.cols))
    print(f"{args.out}: {args.rows} x {args.cols}, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
