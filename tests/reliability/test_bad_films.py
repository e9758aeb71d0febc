"""Bad films through every reader and entry point that needs no trained model: the core
API, the dataset loaders and the CLI's ``data summary`` (the pages and ``predict`` are in
test_bad_uploads_in_app.py, which trains a run for them).

Each bad film gives one message naming the file and its fault, and never stops the other
files of its batch; the odd-but-good films (a PNG named .pgm, 16-bit, RGB, RGBA) are read,
and read right: colour becomes grey by BT.601 luminance, 16-bit stays 16-bit.
"""

from __future__ import annotations

import json
import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.data import load_dataset
from core.data.cbis import load as load_cbis
from core.data.mias import FILM_SUFFIXES
from core.errors import BadAnnotationError, BadFilmError
from core.experiments.browse import thumbnail
from core.films import FilmInfo, check_pixel_limit, probe_film, read_film
from factories import dicom
from film_cases import (
    PNG_MAGIC,
    Case,
    bad_films,
    encode,
    first_film,
    good_variants,
    luminance,
    pgm,
)

CALC_TRAIN = "calc_case_description_train_set.csv"


@pytest.fixture(scope="module")
def grey_film(synthetic_root: Path) -> np.ndarray:
    return first_film(synthetic_root)


@pytest.fixture(scope="module")
def bad(grey_film: np.ndarray) -> list[Case]:
    return bad_films(grey_film)


@pytest.fixture(scope="module")
def good(grey_film: np.ndarray) -> list[Case]:
    return good_variants(grey_film)


def _write(folder: Path, cases: list[Case]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases:
        (folder / case.name).write_bytes(case.data)
        paths.append(folder / case.name)
    return paths


# -- the core API ------------------------------------------------------------------------------
def test_every_bad_film_is_one_error_naming_file_and_fault(bad: list[Case],
                                                           tmp_path: Path) -> None:
    for case, path in zip(bad, _write(tmp_path, bad)):
        for source, name, label in ((case.data, case.name, case.name), (path, None, str(path))):
            with pytest.raises(BadFilmError) as caught:
                read_film(source, name=name)
            error = caught.value
            assert error.path == label and str(error).startswith(f"{label}: ")
            assert case.phrase in error.fault, (case.name, error.fault)
            assert "\n" not in str(error)


def test_probe_refuses_what_it_can_tell_without_decoding(bad: list[Case]) -> None:
    """Loaders probe every film: a cut-off file is refused there too. A header claiming an
    absurd size over a well-formed file (the PNG) is what it says, since nothing is decoded,
    until the pixel limit is applied with read_film's own words; the PGM and the DICOM are
    also far shorter than their headers say, which probing sees."""
    for case in bad:
        if case.name == "huge.png":
            info = probe_film(case.data, name=case.name)
            assert (info.rows, info.cols) == (100_000, 100_000)
            with pytest.raises(BadFilmError, match="refused before decoding") as caught:
                check_pixel_limit(info, case.name)
            assert caught.value.path == case.name
            continue
        with pytest.raises(BadFilmError) as caught:
            probe_film(case.data, name=case.name)
        assert caught.value.path == case.name, case.name
        if case.name.startswith("huge"):
            assert "truncated" in caught.value.fault


def test_odd_but_good_films_are_read_right(good: list[Case]) -> None:
    by_name = {case.name: case for case in good}
    for case in good:
        film = read_film(case.data, name=case.name)
        assert film.pixels.ndim == 2 and film.pixels.dtype in (np.uint8, np.uint16)
        assert film.bit_depth == case.bit_depth, case.name
        assert int(film.pixels.max()) <= 2**film.bit_depth - 1, case.name
        if case.pixels is not None:
            # Grey is exact; OpenCV's fixed-point luminance is within one step of the exact
            # weights at 8 bits and within 4 of 65535 at 16 bits.
            exact = case.pixels.dtype != np.float64
            tolerance = 0 if exact else (1.0 if case.bit_depth == 8 else 4.0)
            np.testing.assert_allclose(film.pixels, case.pixels, atol=tolerance,
                                       err_msg=case.name)
        else:  # JPEG: lossy, but the same picture
            reference = read_film(by_name["rgb8.png"].data, name="rgb8.png").pixels
            assert np.abs(film.pixels.astype(int) - reference).mean() < 3
        colour = case.name.startswith(("rgb", "grey-alpha"))
        assert film.metadata.get("rgb_converted", False) is colour, case.name
        info = probe_film(case.data, name=case.name)
        assert (info.source_format, info.rows, info.cols) == (
            film.source_format, *film.pixels.shape), case.name
        assert (info.bit_depth > 8) == (film.pixels.dtype == np.uint16), case.name
    renamed = read_film(by_name["really-a-png.pgm"].data, name="really-a-png.pgm")
    assert renamed.source_format == "png"
    assert renamed.metadata["format_mismatch"] == "named .pgm but the content is PNG"


def test_sixteen_bit_colour_tiff_keeps_its_depth() -> None:
    """Fault found: Pillow calls 16-bit RGB "RGB", so the header said 8 bits while OpenCV
    decoded 16: pixel values up to 65535 with bit_depth 8 broke every later stretch."""
    rgb16 = np.zeros((3, 4, 3), np.uint16)
    rgb16[..., 0] = 60000  # red, in RGB order
    data = encode(np.ascontiguousarray(rgb16[..., ::-1]), ".tif")
    assert probe_film(data, name="c.tif") == FilmInfo("tiff", 3, 4, 16)
    film = read_film(data, name="c.tif")
    assert film.bit_depth == 16 and film.pixels.dtype == np.uint16
    np.testing.assert_allclose(film.pixels, luminance(rgb16), atol=1)


def test_a_corrupt_png_chunk_length_is_refused_without_allocating_it(bad: list[Case]) -> None:
    """Fault found: OpenCV allocated a chunk's declared length (up to 4 GB) before reading
    it, so a 2 KB upload with one damaged length field took seconds and gigabytes."""
    (case,) = [c for c in bad if c.name == "chunk-length.png"]
    with pytest.raises(BadFilmError, match="'IDAT' chunk at byte 33 claims 4,294,967,280"):
        read_film(case.data, name=case.name)
    header = case.data[:33]
    assert header.startswith(PNG_MAGIC)
    empty_chunk = struct.pack(">I", 0) + b"tEXt" + b"\0" * 4
    with pytest.raises(BadFilmError, match="no IEND chunk"):
        read_film(header + empty_chunk * 5, name="endless.png")
    with pytest.raises(BadFilmError, match="more than 100,000 chunks"):
        read_film(header + empty_chunk * 100_001, name="endless.png")


@pytest.fixture
def hang_guard() -> Iterator[None]:
    """Turn a hang into a failure: a blocked open() of a FIFO is interrupted by SIGALRM."""
    def interrupt(signum: int, frame: object) -> None:
        raise TimeoutError("blocked for 10 s: a FIFO was opened")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.usefixtures("hang_guard")
def test_a_fifo_or_device_is_refused_not_read_for_ever(tmp_path: Path) -> None:
    """Fault found: a FIFO named like a film blocked the reader for ever (on the CLI, or in
    a dataset folder, and so the Data page), and a device such as /dev/zero was read until
    memory ran out. /dev/null stands in for the devices here: it cannot hang a regression."""
    fifo = tmp_path / "mdb001.pgm"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/null")):
        with pytest.raises(BadFilmError, match="not a regular file") as caught:
            read_film(path)
        assert caught.value.path == str(path)
    (tmp_path / "Info.txt").write_text("mdb001 G NORM \nmdb002 G NORM \n")
    (tmp_path / "mdb002.pgm").write_bytes(pgm(np.full((8, 8), 9, np.uint8)))
    data = load_dataset("mias", tmp_path)
    assert [r.film_id for r in data.records] == ["mdb002"]
    assert any(str(fifo) in w and "not a regular file" in w for w in data.warnings)
    fifo_info = tmp_path / "fifo-info"
    fifo_info.mkdir()
    os.mkfifo(fifo_info / "Info.txt")
    with pytest.raises(BadAnnotationError, match="Info.txt: is not a regular file"):
        load_dataset("mias", fifo_info)


# -- datasets ------------------------------------------------------------------------------------
def _mias_folder(root: Path, bad: list[Case], good: list[Case]) -> dict[str, Case]:
    """mdb001.. for the good films, then the bad ones, all NORM; returns refnum -> case."""
    root.mkdir(parents=True)
    cases: dict[str, Case] = {}
    for number, case in enumerate(good + bad, start=1):
        refnum = f"mdb{number:03d}"
        suffix = Path(case.name).suffix
        (root / f"{refnum}{suffix if suffix in FILM_SUFFIXES else '.pgm'}").write_bytes(case.data)
        cases[refnum] = case
    (root / "Info.txt").write_text("".join(f"{refnum} G NORM \n" for refnum in cases))
    return cases


def test_mias_folder_keeps_the_good_films_and_names_each_bad_one(
        bad: list[Case], good: list[Case], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _mias_folder(tmp_path / "mias", bad, good)
    data = load_dataset("mias", tmp_path / "mias")
    kept = {r.film_id for r in data.records}
    assert kept == {refnum for refnum, case in cases.items() if case in good}
    for refnum, case in cases.items():
        if case in good:
            continue
        (line,) = [w for w in data.warnings if f"{refnum}." in w]
        assert line.endswith("; film left out"), line
        if not line.split(": ")[0].endswith(Path(case.name).suffix):
            continue  # a .dcm case saved as .pgm: its message is the .pgm reading of it
        # A huge PGM or DICOM header over a few bytes: probing sees the missing bytes first.
        assert case.phrase in line or (case.name.startswith("huge") and "truncated" in line)
    assert len(data.warnings) == len(bad)

    # The CLI says the same in its one JSON document, and succeeds: the folder is usable.
    assert main(["data", "summary", "--dataset", "mias", "--root", str(tmp_path / "mias"),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["films"] == len(good) and summary["warnings"] == data.warnings


def test_class_folders_keep_the_good_films_and_name_each_bad_one(
        bad: list[Case], good: list[Case], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault found (issue 18, fault 6): the class-folder loader counted files by suffix, so
    bad files were films to ``data summary``. Each is now probed, named and left out, and
    a good one is shown as training sees it."""
    bad_paths = _write(tmp_path / "films" / "BAD", bad)
    _write(tmp_path / "films" / "GOOD", good)
    data = load_dataset("folder", tmp_path / "films")
    assert data.classes == ("GOOD",) and len(data) == len(good)
    for record in data.records:
        assert thumbnail(record, 32).dtype == np.uint8
    for path in bad_paths:
        (line,) = [w for w in data.warnings if w.startswith(f"{path}:")]
        assert line.endswith("; film left out"), line
    assert main(["data", "summary", "--dataset", "folder", "--root", str(tmp_path / "films"),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["films"] == len(good) and summary["warnings"] == data.warnings


def test_cbis_bad_films_crops_and_masks_are_named_and_skipped(cbis_root: Path,
                                                              tmp_path: Path) -> None:
    """Faults found: with ``with_masks`` one unreadable film raised out of the loader and
    lost the whole dataset; in crop mode an unreadable crop was dropped without a word
    about which file or why."""
    rows = pd.read_csv(cbis_root / CALC_TRAIN, dtype=str, keep_default_na=False).head(4)
    root = tmp_path / "cbis"
    root.mkdir()
    rows.to_csv(root / CALC_TRAIN, index=False)
    rng = np.random.default_rng(0)
    mask = np.zeros((40, 30), np.uint16)
    mask[5:9, 5:9] = 65535
    for index, row in rows.iterrows():
        paths = [root / row[column].strip() for column in
                 ("image file path", "cropped image file path", "ROI mask file path")]
        contents = [dicom(rng.integers(0, 4000, (40, 30)).astype(np.uint16)),
                    dicom(rng.integers(0, 4000, (9, 7)).astype(np.uint16)),
                    dicom(mask, bits_stored=16)]
        if index == 0:
            contents[0] = b"\0\1 not a film"
        if index == 1:
            contents[1] = contents[1][:-50]
        for path, content in zip(paths, contents):
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_bytes(content)
    bad_film = root / rows.loc[0, "image file path"].strip()
    bad_crop = root / rows.loc[1, "cropped image file path"].strip()

    located = load_cbis(root, with_masks=True)
    assert len(located) == len({p.split("/")[0] for p in rows["image file path"]}) - 1
    assert f"{bad_film}: not a DICOM file: no 'DICM' marker" in located.warnings[0]
    assert located.warnings[0].endswith("; film left out")

    crops = load_cbis(root, mode="crop")
    assert len(crops) == 3
    (unreadable,) = [w for w in crops.warnings if "could not be read" in w]
    assert f"{bad_crop}: DICOM pixel data is corrupt or truncated" in unreadable
