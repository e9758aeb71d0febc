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


def cv_document(config: dict[str, Any], figures: list[dict[str, float]],
                synthetic: bool = True) -> dict[str, Any]:
    """A ``run_cv`` document as cross-validation returns it, from each fold's headline
    figures (no training): for pages and functions that read saved summaries."""
    from core.experiments.cv import summarise_folds

    majority = {"accuracy": 0.5, "balanced_accuracy": 0.2, "macro_f1": 0.1, "weighted_f1": 0.3}
    folds = [{"fold": index, "run": f"/runs/fold-{index}", "n": 10, **values,
              "baselines": {"majority": majority}} for index, values in enumerate(figures)]
    return {"config": config, "synthetic": synthetic, "folds": folds,
            **summarise_folds(folds)}


# -- PyTorch state dicts, written without torch ---------------------------------------------------
#: Storage class names by NumPy type, as ``torch.save`` pickles them.
TORCH_STORAGES = {"float32": "FloatStorage", "float16": "HalfStorage", "float64": "DoubleStorage",
                  "int64": "LongStorage", "uint8": "ByteStorage"}
TORCH_MAGIC = 0x1950A86A20F9469CFC6C


def pickle_global(module: str, name: str) -> bytes:
    """Protocol-2 ``GLOBAL``: what makes an unpickler import ``module.name``."""
    return b"c" + f"{module}\n{name}\n".encode()


def pickle_str(text: str) -> bytes:
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def pickle_int(value: int) -> bytes:
    return b"J" + value.to_bytes(4, "little", signed=True)


def pickle_tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def torch_tensor(key: str, dtype: str, numel: int, shape: tuple[int, ...],
                 stride: tuple[int, ...], offset: int = 0, legacy: bool = False) -> bytes:
    """The pickle of ``torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, False,
    OrderedDict())``, the storage as ``torch.save``'s persistent id (legacy: with a view)."""
    pid = [pickle_str("storage"), pickle_global("torch", TORCH_STORAGES[dtype]), pickle_str(key),
           pickle_str("cpu"), pickle_int(numel)] + ([b"N"] if legacy else [])
    args = [pickle_tuple(pid) + b"Q", pickle_int(offset),
            pickle_tuple([pickle_int(n) for n in shape]),
            pickle_tuple([pickle_int(n) for n in stride]), b"\x89",
            pickle_global("collections", "OrderedDict") + b")R"]
    return pickle_global("torch._utils", "_rebuild_tensor_v2") + pickle_tuple(args) + b"R"


def torch_dict(entries: list[tuple[str, bytes]]) -> bytes:
    """A whole protocol-2 pickle: ``OrderedDict`` of the pickled values ``entries``."""
    items = b"".join(pickle_str(key) + value for key, value in entries)
    return (b"\x80\x02" + pickle_global("collections", "OrderedDict") + b")R(" + items + b"u.")


def torch_file(path: Path, state: bytes, storages: dict[str, bytes], numels: dict[str, int],
               legacy: bool) -> Path:
    """``state`` (a pickle from ``torch_dict``) and its storages' bytes in the container
    ``torch.save`` writes: the legacy stream, or the zip of PyTorch 1.6 and later."""
    import pickle
    import zipfile

    if legacy:
        system = {"protocol_version": 1001, "little_endian": True,
                  "type_sizes": {"short": 2, "int": 4, "long": 4}}
        parts = [pickle.dumps(TORCH_MAGIC, protocol=2), pickle.dumps(1001, protocol=2),
                 pickle.dumps(system, protocol=2), state, pickle.dumps(list(storages), protocol=2)]
        parts += [numels[key].to_bytes(8, "little") + data for key, data in storages.items()]
        path.write_bytes(b"".join(parts))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", state)
            archive.writestr("archive/byteorder", "little")
            for key, data in storages.items():
                archive.writestr(f"archive/data/{key}", data)
            archive.writestr("archive/version", "3\n")
    return path


def screening_film(shape: tuple[int, int] = (320, 256), chest_wall_right: bool = False,
                   label: bool = True, inverted: bool = False, seed: int = 0) -> np.ndarray:
    """A digital screening film as exports store it: a fatty breast against the chest wall on
    a black background, darkest at the skin line and densest near the wall, with the
    scanner's view label burned into the top corner away from the wall ("L MLO", bright).
    ``inverted`` stores it the other way round (white background), as MONOCHROME1 films
    exported without their tag are."""
    import cv2

    cols = shape[1]
    reach = _reach(shape, chest_wall_right)
    inside = reach <= 1
    tissue = 40 + 160 * (1 - np.clip(reach, 0, 1)) ** 2  # fat near the skin, gland inside
    tissue += np.random.default_rng(seed).normal(0, 3, shape)
    film = np.where(inside, tissue, 0).astype(np.float32)
    # The skin line falls off over a few pixels, as a detector's blur makes it.
    film = np.clip(cv2.GaussianBlur(film, (0, 0), 2.0), 0, 255).astype(np.uint8)
    if label:
        x = 6 if chest_wall_right else cols - 70
        cv2.putText(film, "L MLO", (x, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 250, 2)
    return 255 - film if inverted else film


def screening_breast(shape: tuple[int, int] = (320, 256),
                     chest_wall_right: bool = False) -> np.ndarray:
    """Where ``screening_film`` draws the breast (bool), skin-line fat included."""
    return _reach(shape, chest_wall_right) <= 1


def _reach(shape: tuple[int, int], chest_wall_right: bool) -> np.ndarray:
    """0 at the chest wall's middle, 1 on the skin line (a half ellipse against the wall)."""
    rows, cols = shape
    row, col = np.indices(shape, dtype=np.float32)
    from_wall = (cols - 1 - col) if chest_wall_right else col
    return ((row - rows * 0.5) / (rows * 0.42)) ** 2 + (from_wall / (cols * 0.7)) ** 2


def label_box(shape: tuple[int, int] = (320, 256),
              chest_wall_right: bool = False) -> tuple[slice, slice]:
    """The corner ``screening_film`` draws its label in, as ``(rows, cols)`` slices."""
    cols = shape[1]
    return slice(4, 28), (slice(4, 70) if chest_wall_right else slice(cols - 72, cols - 2))


def rsna_export(root: Path, films: dict[str, list[str]], size: int = 64) -> Path:
    """The RSNA class-folder export in miniature: ``films`` maps a folder (``malignant``,
    ``benign``) to ``<patient>_<image>`` names, each written as a small grey JPEG named as
    the export names them; a name ending in ``~`` is written inverted."""
    import cv2

    for folder, names in films.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index, name in enumerate(names):
            inverted = name.endswith("~")
            film = screening_film((size, size), chest_wall_right=bool(index % 2), label=False,
                                  inverted=inverted, seed=index)
            stem = name.rstrip("~")
            path = root / folder / f"{stem}_png.rf.{index:032x}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(film, cv2.COLOR_GRAY2BGR))  # RGB, as exported
    return root
