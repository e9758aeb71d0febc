"""Predict's results as DICOM (``predict --dicom-out``): a Secondary Capture of the overlay
and a TID 1500 SR of the probabilities for each DICOM film, filed in the film's study with
UIDs of their own, read back here with pydicom and highdicom and every reference checked."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import Comprehensive3DSRStorage, SecondaryCaptureImageStorage, generate_uid
from test_predict import tiny_run

from core import __version__
from core.cli import main
from core.evaluate import dicom_out
from core.evaluate.predict import predict_films
from core.films import read_film
from core.runs.folder import Run
from factories import dicom

DISCLAIMER = "research software, not for diagnosis"


@pytest.fixture(scope="module")
def run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return tiny_run(synthetic_root, tmp_path_factory.getbasetemp() / "runs")


@pytest.fixture(scope="module")
def film_png(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic film as a PNG: a film that is not a DICOM."""
    film = read_film(min(synthetic_root.glob("*.pgm")))
    path = tmp_path_factory.mktemp("png") / "plain.png"
    cv2.imwrite(str(path), film.pixels)
    return path


def _mammogram(synthetic_root: Path, folder: Path, name: str, **elements: object) -> Path:
    """A synthetic film as a 12-bit MG DICOM of a study, with what a viewer files it by."""
    film = read_film(sorted(synthetic_root.glob("*.pgm"))[1])
    pixels = (film.pixels.astype(np.uint16) * 16) if film.bit_depth == 8 else film.pixels
    study = {"StudyInstanceUID": generate_uid(), "SeriesInstanceUID": generate_uid(),
             "PatientID": "P-0042", "PatientName": "Test^Patient", "PatientBirthDate": "19600101",
             "PatientSex": "F", "StudyDate": "20260102", "StudyTime": "093000",
             "StudyID": "7", "AccessionNumber": "ACC-7", "ReferringPhysicianName": "",
             "ImageLaterality": "L", "ViewPosition": "CC", "PatientOrientation": ["A", "FR"]}
    study.update(elements)
    path = folder / name
    path.write_bytes(dicom(pixels, **{key: value for key, value in study.items()
                                      if value is not None}))
    return path


def _content(item: Dataset, meaning: str) -> Dataset:
    """The one child content item of ``item`` whose concept name means ``meaning``."""
    found = [child for child in item.ContentSequence
             if child.ConceptNameCodeSequence[0].CodeMeaning == meaning]
    assert len(found) == 1, f"{len(found)} items named {meaning!r}"
    return found[0]


def test_cli_dicom_out_files_both_results_with_the_films_study(
        run: Run, synthetic_root: Path, film_png: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    source_path = _mammogram(synthetic_root, tmp_path, "left-cc.dcm")
    source = pydicom.dcmread(source_path)
    out, dicom_dir = tmp_path / "out", tmp_path / "dicom"
    capsys.readouterr()
    assert main(["predict", str(run.path), str(source_path), str(film_png), "--out", str(out),
                 "--dicom-out", str(dicom_dir), "--json"]) == 0
    scored, plain = json.loads(capsys.readouterr().out)
    assert plain["dicom_outputs"] == {"skipped": dicom_out.NOT_DICOM}
    assert Path(plain["heatmap"]).is_file()  # the plain film is scored as before
    written = scored["dicom_outputs"]
    assert sorted(Path(p).name for p in dicom_dir.iterdir()) == [
        "left-cc-overlay.dcm", "left-cc-result.dcm"]

    capture = pydicom.dcmread(written["secondary_capture"])
    report = pydicom.dcmread(written["structured_report"])
    assert capture.SOPClassUID == SecondaryCaptureImageStorage
    assert report.SOPClassUID == Comprehensive3DSRStorage
    for made in (capture, report):  # filed with the film's study and patient ...
        for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "PatientBirthDate",
                        "PatientSex", "StudyDate", "StudyID", "AccessionNumber"):
            assert made[keyword].value == source[keyword].value, keyword
        assert DISCLAIMER in made.SeriesDescription
    uids = {str(source.SeriesInstanceUID), str(source.SOPInstanceUID),
            str(capture.SeriesInstanceUID), str(capture.SOPInstanceUID),
            str(report.SeriesInstanceUID), str(report.SOPInstanceUID)}
    assert len(uids) == 6  # ... in new series, as new instances
    assert written["sop_instance_uids"] == [capture.SOPInstanceUID, report.SOPInstanceUID]
    assert written["series_instance_uids"] == [capture.SeriesInstanceUID,
                                               report.SeriesInstanceUID]

    # The Secondary Capture: the overlay PNG's pixels, referring to the film it was drawn on.
    overlay = cv2.imread(scored["heatmap"], cv2.IMREAD_COLOR)[..., ::-1]
    assert capture.PhotometricInterpretation == "RGB"
    np.testing.assert_array_equal(capture.pixel_array, overlay)
    (image,) = capture.SourceImageSequence
    assert (image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID) == (
        source.SOPClassUID, source.SOPInstanceUID)
    (series,) = capture.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == source.SeriesInstanceUID
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert (capture.ImageLaterality, capture.ViewPosition) == ("L", "CC")
    assert list(capture.PatientOrientation) == ["A", "FR"]

    # The SR: the film as evidence, one measurement group with predict's own numbers.
    (evidence,) = report.CurrentRequestedProcedureEvidenceSequence
    assert evidence.StudyInstanceUID == source.StudyInstanceUID
    (evidence_series,) = evidence.ReferencedSeriesSequence
    assert evidence_series.SeriesInstanceUID == source.SeriesInstanceUID
    (evidence_image,) = evidence_series.ReferencedSOPSequence
    assert (evidence_image.ReferencedSOPClassUID, evidence_image.ReferencedSOPInstanceUID) == (
        source.SOPClassUID, source.SOPInstanceUID)
    sr = hd.sr.srread(written["structured_report"])
    (group,) = sr.content.get_image_measurement_groups()
    (source_image,) = group.source_images
    assert source_image.referenced_sop_instance_uid == source.SOPInstanceUID
    assert source_image.referenced_sop_class_uid == source.SOPClassUID
    probabilities = {m.name.meaning.removeprefix("Probability of "): m.value
                     for m in group.get_measurements()}
    assert probabilities == scored["probabilities"]  # exactly: stored as 64-bit floats
    assert all(m.unit.value == "1" and m.unit.scheme_designator == "UCUM"
               for m in group.get_measurements())
    (predicted,) = group.get_qualitative_evaluations()
    assert predicted.name.meaning == "Predicted class"
    assert predicted.value.meaning == scored["label"]
    container = group[0]  # a template is a content sequence: its container comes first
    assert _content(container, "Algorithm Name").TextValue == f"mammo run {run.name}"
    assert _content(container, "Algorithm Version").TextValue == __version__


def test_one_films_failure_keeps_the_others_results(
        run: Run, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A film that names no study cannot have results filed with it; a film whose SR cannot
    be written loses its DICOM results (its Secondary Capture removed too), not its scores;
    the films beside them get theirs, an upload without a path included."""
    no_study = _mammogram(synthetic_root, tmp_path, "bare.dcm", StudyInstanceUID=None,
                          SeriesInstanceUID=None)
    good = _mammogram(synthetic_root, tmp_path, "good.dcm")
    unlucky = _mammogram(synthetic_root, tmp_path, "unlucky.dcm")
    upload = ("upload.dcm", _mammogram(synthetic_root, tmp_path, "u.dcm").read_bytes())
    dicom_dir = tmp_path / "dicom"
    real_save = Dataset.save_as

    def save_as(dataset: Dataset, target: object, *args: object, **kwargs: object) -> None:
        if "unlucky-result" in str(target):
            raise OSError(28, "No space left on device")
        real_save(dataset, target, *args, **kwargs)

    monkeypatch.setattr(Dataset, "save_as", save_as)
    entries = predict_films(run, [no_study, good, unlucky, upload], tmp_path / "out",
                            dicom_dir=dicom_dir)
    for entry in entries:
        assert "error" not in entry and Path(entry["heatmap"]).is_file()
    bare, kept, lost, uploaded = (entry["dicom_outputs"] for entry in entries)
    assert bare == {"error": "the film has no StudyInstanceUID, SeriesInstanceUID, so DICOM "
                             "results could not refer to it"}
    assert lost["error"].endswith("unlucky-result.dcm: cannot write (No space left on device)")
    assert "\n" not in lost["error"]
    for written in (kept, uploaded):
        assert Path(written["secondary_capture"]).is_file()
        assert Path(written["structured_report"]).is_file()
    assert sorted(p.name for p in dicom_dir.iterdir()) == [
        "good-overlay.dcm", "good-result.dcm", "upload-overlay.dcm", "upload-result.dcm"]


def test_dicom_out_is_for_local_predict(run: Run, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(run.path), str(tmp_path / "x.dcm"), "--out", str(tmp_path),
                 "--engine", "ray", "--dicom-out", str(tmp_path / "d")]) == 2
    assert "--dicom-out goes with --engine local" in capsys.readouterr().err
