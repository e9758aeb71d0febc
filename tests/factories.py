"""Small files that several test modules build: kept here so there is one way to make each."""

from __future__ import annotations

import fcntl
import io
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MAMMO_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage


def dicom(
    pixels: np.ndarray,
    *,
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    syntax: str = ExplicitVRLittleEndian,
    pixel_data: bool = True,
    **elements: object,
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MAMMO_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if pixel_data:
        ds.PixelData = pixels.tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


#: The smallest attention model that trains end to end in seconds: for tests of plumbing
#: (runs, pages, jobs), never of learning.
TINY: dict[str, object] = {"backbone": "mobilenet_025", "weights": "none", "image_size": 64,
                           "epochs": 2, "batch_size": 16, "units": 16, "attention_units": 8,
                           "patience": 0, "patch_epochs": 0, "fine_tune_layers": 0}


@contextmanager
def shared_folder(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A folder all pytest-xdist workers of this session share, held under a lock: the first
    worker to come fills it, the others find it filled (a training is too slow to repeat)."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        (base / name).mkdir(exist_ok=True)
        yield base / name


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 240) -> None:
    """Poll ``condition`` until it holds (work done by another process: a job, a server)."""
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def open_page(page: str, models: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app, as a fresh browser session on ``page``, over these runs and data folders."""
    from streamlit.testing.v1 import AppTest

    from conftest import REPO

    monkeypatch.setenv("MAMMO_MODELS", str(models))
    monkeypatch.setenv("MAMMO_DATA", str(data))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.run()
    app.switch_page(page).run()
    assert not app.exception
    return app
