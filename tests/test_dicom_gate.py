"""The DICOM gate: what the header says about the kind of image, recorded per film, and
what it refuses (FOR PROCESSING, several frames) with the reason; YBR 4:2:2 colour read as
pydicom decodes it. DICOMs are written here (``factories.dicom``) or taken from pydicom's
own test files where those are installed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.pixels import convert_color_space

from core.errors import BadFilmError
from core.films import FOR_PROCESSING, film_notes, probe_film, read_film
from factories import dicom

PIXELS = np.arange(2, 2 + 6 * 8, dtype=np.uint16).reshape(6, 8) * 60
PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"


def _pydicom_file(name: str) -> Path:
    """A pydicom test file from the installed package (never downloaded), or a skip."""
    path = PYDICOM_FILES / name
    if not path.is_file():
        pytest.skip(f"pydicom's test file {name} is not installed here")
    return path


def test_the_gate_is_recorded_for_a_mammogram() -> None:
    data = dicom(PIXELS, ImageLaterality="L", ViewPosition="MLO",
                 PresentationIntentType="FOR PRESENTATION", PatientOrientation=["A", "FR"])
    film = read_film(data, name="l.dcm")
    assert film.metadata["dicom"] == {"modality": "MG", "presentation_intent": "FOR PRESENTATION",
                                      "laterality": "L", "view_position": "MLO",
                                      "row_direction": "A", "frames": 1}
    assert film.metadata["warnings"] == []
    info = probe_film(data, name="l.dcm")
    assert (info.side, info.view, info.warnings) == ("L", "MLO", ())
    assert film_notes(film) == {"warnings": [], "dicom": film.metadata["dicom"]}


def test_series_laterality_is_the_fallback_and_both_breasts_name_no_side() -> None:
    assert probe_film(dicom(PIXELS, Laterality="R"), name="r.dcm").side == "R"
    both = dicom(PIXELS, ImageLaterality="B", Laterality="L")
    assert read_film(both, name="b.dcm").metadata["dicom"]["laterality"] == "B"
    assert probe_film(both, name="b.dcm").side is None


@pytest.mark.parametrize("modality, said", [("CT", "is CT"), (None, "is not given")])
def test_a_modality_not_mg_is_read_with_a_warning(modality: str | None, said: str) -> None:
    data = dicom(PIXELS, Modality=modality) if modality else _without_modality(PIXELS)
    film = read_film(data, name="x.dcm")
    (warning,) = film.metadata["warnings"]
    assert warning.startswith(f"DICOM modality {said}, not MG (mammography)")
    assert film.pixels.shape == PIXELS.shape
    assert probe_film(data, name="x.dcm").warnings == (warning,)
    assert film_notes(film)["warnings"] == [warning]


def _without_modality(pixels: np.ndarray) -> bytes:
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(dicom(pixels)))
    del ds.Modality
    buffer = pydicom.filebase.DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_for_processing_is_refused_with_its_reason_unless_allowed() -> None:
    data = dicom(PIXELS, PresentationIntentType=FOR_PROCESSING)
    for read in (read_film, probe_film):
        with pytest.raises(BadFilmError, match="FOR PROCESSING image .raw detector data") as bad:
            read(data, name="raw.dcm")
        assert bad.value.path == "raw.dcm"
        assert "use the FOR PRESENTATION image" in str(bad.value)
    film = read_film(data, name="raw.dcm", allow_for_processing=True)
    assert film.metadata["dicom"]["presentation_intent"] == FOR_PROCESSING
    assert probe_film(data, name="raw.dcm", allow_for_processing=True).rows == 6


def test_a_multi_frame_dicom_is_refused_naming_its_frames() -> None:
    frames = np.stack([PIXELS] * 3)
    data = dicom(frames[0], NumberOfFrames=3, PixelData=frames.tobytes())
    for read in (read_film, probe_film):
        with pytest.raises(BadFilmError, match="holds 3 frames .a multi-frame object"):
            read(data, name="tomo.dcm")


def test_pydicoms_multi_frame_file_is_refused_naming_its_frames() -> None:
    path = _pydicom_file("rtdose.dcm")
    with pytest.raises(BadFilmError, match="holds 15 frames"):
        read_film(path)


def test_ybr_full_422_is_read_pixel_for_pixel_as_pydicom_decodes_it() -> None:
    """Fault found: an uncompressed YBR_FULL_422 film was refused as truncated (its length
    was checked as 3 samples a pixel, where 4:2:2 stores 2) though pydicom decodes it."""
    path = _pydicom_file("SC_ybr_full_422_uncompressed.dcm")
    film = read_film(path)
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(as_rgb=False)
    ybr = ds.pixel_array
    expected = cv2.cvtColor(convert_color_space(ybr, "YBR_FULL", "RGB"), cv2.COLOR_RGB2GRAY)
    assert film.pixels.dtype == np.uint8 and film.pixels.shape == (100, 100)
    np.testing.assert_array_equal(film.pixels, expected)
    assert len(np.unique(expected)) > 4  # colour bars: a real comparison, not one grey
    assert film.metadata["rgb_converted"] is True
    assert film.metadata["photometric_interpretation"] == "YBR_FULL_422"
    assert film.metadata["dicom"]["modality"] == "OT" and film.metadata["warnings"]
    assert probe_film(path).rows == 100


def test_a_ybr_full_422_file_cut_short_is_still_truncated() -> None:
    data = _pydicom_file("SC_ybr_full_422_uncompressed.dcm").read_bytes()
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    cut = data[: len(data) - len(ds.PixelData) // 4]
    for read in (read_film, probe_film):
        with pytest.raises(BadFilmError, match="truncated"):
            read(cut, name="cut.dcm")


def test_pydicoms_ct_is_read_with_a_modality_warning() -> None:
    film = read_film(_pydicom_file("CT_small.dcm"))
    assert film.metadata["dicom"]["modality"] == "CT"
    assert film.metadata["warnings"][0].startswith("DICOM modality is CT")


def test_other_formats_carry_no_gate_and_no_notes() -> None:
    ok, png = cv2.imencode(".png", PIXELS.astype(np.uint8))
    assert ok
    film = read_film(png.tobytes(), name="a.png")
    assert film.metadata["warnings"] == [] and film_notes(film) == {}
    mismatch = read_film(png.tobytes(), name="a.pgm")  # read as what it is: no doubt
    assert mismatch.metadata["warnings"] == [] and film_notes(mismatch) == {}


def test_predict_entries_carry_the_gate(synthetic_root: Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    """``predict``'s JSON says per DICOM film what the gate saw, and why one was refused."""
    from core.evaluate.predict import predict_films
    from core.runs.config import TrainConfig
    from core.train.fit import train
    from factories import TINY

    base = tmp_path_factory.mktemp("gate")
    run = train(TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**TINY),
                base / "run")
    pixels = read_film(min(synthetic_root.glob("*.pgm"))).pixels
    mammogram = dicom(pixels, bits_stored=8, ImageLaterality="R", ViewPosition="CC")
    ct = dicom(pixels, bits_stored=8, Modality="CT")
    raw = dicom(pixels, bits_stored=8, PresentationIntentType=FOR_PROCESSING)
    entries = predict_films(run, [("mg.dcm", mammogram), ("ct.dcm", ct), ("raw.dcm", raw)],
                            base / "out")
    mg, other, refused = entries
    assert mg["dicom"]["laterality"] == "R" and mg["dicom"]["view_position"] == "CC"
    assert mg["warnings"] == [] and "label" in mg
    assert other["warnings"][0].startswith("DICOM modality is CT") and "label" in other
    assert set(refused) == {"file", "error"} and "FOR PROCESSING" in refused["error"]
