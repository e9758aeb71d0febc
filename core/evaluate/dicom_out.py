"""Predict's results as DICOM, so a PACS or viewer (OHIF, Weasis) files them with the study.

For each DICOM film ``predict --dicom-out DIR`` writes two new objects in new series of the
film's own study (its Study Instance UID, patient and study attributes copied, so a viewer
shows them beside the film; new Series and SOP Instance UIDs of their own):

* a **Secondary Capture** (``*-overlay.dcm``): the overlay picture predict draws, the same
  RGB pixels as its PNG, referencing the film it was drawn on (Source Image Sequence and
  Referenced Series Sequence);
* a **Comprehensive 3D SR** (``*-result.dcm``) holding a TID 1500 measurement report: one
  measurement group for the film, referencing it as its source image, with each class's
  probability (a measurement, UCUM unit "1"), the predicted class (a qualitative
  evaluation) and the model (Algorithm Identification: the run's name, the software and its
  version). The film is the SR's evidence, so its study, series and instance are listed.

highdicom builds both, since it knows the modules and templates each needs; the codes it
cannot take from DICOM's vocabularies (a run's class names) are in a local coding scheme,
``99MAMMO`` (PS3.3 8.2: local schemes start with "99"). Both objects say in their series
description that the tool is research software, not for diagnosis.

Writes are atomic and names are claimed exclusively, so two predicts into one folder never
overwrite each other; a film whose objects cannot be built or written gets one error line
in its entry, and the other films' results stand.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from core import __version__
from core.atomic import atomic_path, claim_name
from core.errors import BadConfigError

#: The local coding scheme of what DICOM's vocabularies have no code for (class names).
SCHEME = "99MAMMO"
MANUFACTURER = "mammo (open research software)"
DISCLAIMER = "research software, not for diagnosis"
SC_SUFFIX = "-overlay.dcm"
SR_SUFFIX = "-result.dcm"
#: Series numbers of the new series: high, so a viewer lists them after the film's own.
SC_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902
#: What a film's entry says when it is not a DICOM (nothing to file the results with).
NOT_DICOM = "not a DICOM film: DICOM outputs are made only for DICOM inputs"
_UNIT = hd.sr.CodedConcept("1", "UCUM", "no units")
_FINDING = hd.sr.CodedConcept("MAMMO-CLASS", SCHEME, "Mammogram classification")
_PREDICTED = hd.sr.CodedConcept("MAMMO-PRED", SCHEME, "Predicted class")


def source_header(source: str | Path | bytes, label: str) -> Dataset:
    """The film's DICOM header (no pixels), to copy the patient and study from and refer to."""
    try:
        data = io.BytesIO(source) if isinstance(source, bytes) else source
        return pydicom.dcmread(data, stop_before_pixels=True, force=True)
    except Exception as error:  # noqa: BLE001 - the reader took it; pydicom raises many types
        raise BadConfigError(f"{label}: DICOM header cannot be read again ({error})") from None


def write_results(header: Dataset, overlay: np.ndarray, probabilities: Mapping[str, float],
                  predicted: str, model: Mapping[str, str], folder: Path,
                  stem: str) -> dict[str, Any]:
    """Write the film's Secondary Capture and SR into ``folder``; their paths and UIDs.

    ``model`` names the run (``name``) and says what it is (``kind``); ``stem`` starts the
    file names (the heatmap PNG's, so the three files sort together). Raises BadConfigError
    with one line when an object cannot be built (a header without the UIDs to refer to)
    or written; nothing half-written is left behind.
    """
    _check_refers(header)
    try:
        capture = _secondary_capture(header, overlay)
        report = _report(header, probabilities, predicted, model)
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise BadConfigError(f"cannot build the DICOM results ({error})") from None
    written: list[Path] = []
    try:
        for suffix, dataset in ((SC_SUFFIX, capture), (SR_SUFFIX, report)):
            written.append(_write(dataset, stem, folder, suffix))
    except BadConfigError:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return {"secondary_capture": str(written[0]), "structured_report": str(written[1]),
            "series_instance_uids": [str(capture.SeriesInstanceUID),
                                     str(report.SeriesInstanceUID)],
            "sop_instance_uids": [str(capture.SOPInstanceUID), str(report.SOPInstanceUID)]}


def _check_refers(header: Dataset) -> None:
    """The film must name what the results refer to; a bare dataset may not."""
    missing = [keyword for keyword in ("StudyInstanceUID", "SeriesInstanceUID",
                                       "SOPInstanceUID", "SOPClassUID")
               if not str(header.get(keyword, "") or "").strip()]
    if missing:
        raise BadConfigError(f"the film has no {', '.join(missing)}, so DICOM results could "
                             "not refer to it")


def _secondary_capture(header: Dataset, overlay: np.ndarray) -> hd.sc.SCImage:
    """The overlay picture as an RGB Secondary Capture in a new series of the film's study."""
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=header, pixel_array=overlay, photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT",
        # highdicom takes single letters only; a mammogram's own (e.g. "A\FR") is set below.
        patient_orientation=("A", "F"),
        series_instance_uid=hd.UID(), series_number=SC_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    # The picture keeps the film's directions (predict draws it unflipped), or none (Type 2).
    capture.PatientOrientation = header.get("PatientOrientation", "")
    for keyword in ("Laterality", "ImageLaterality", "ViewPosition"):
        if str(header.get(keyword, "") or "").strip():
            setattr(capture, keyword, header.get(keyword))
    capture.SeriesDescription = f"mammo heatmap overlay ({DISCLAIMER})"
    capture.ImageType = ["DERIVED", "SECONDARY"]
    capture.BurnedInAnnotation = "YES"  # the predicted class is written above the film
    capture.DerivationDescription = (f"Heatmap of where the model looked, over the film; "
                                     f"{DISCLAIMER}")
    reference = Dataset()
    reference.ReferencedSOPClassUID = header.SOPClassUID
    reference.ReferencedSOPInstanceUID = header.SOPInstanceUID
    capture.SourceImageSequence = [reference]
    series = Dataset()
    series.SeriesInstanceUID = header.SeriesInstanceUID
    series.ReferencedInstanceSequence = [_copy(reference)]
    capture.ReferencedSeriesSequence = [series]
    return capture


def _report(header: Dataset, probabilities: Mapping[str, float], predicted: str,
            model: Mapping[str, str]) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 measurement report of the film's classification, as a Comprehensive 3D
    SR in a new series of the film's study, the film its evidence."""
    algorithm = hd.sr.AlgorithmIdentification(
        name=f"mammo run {model['name']}"[:64], version=__version__,
        parameters=[f"model: {model['kind']}"[:64]], manufacturer=MANUFACTURER)
    names = list(probabilities)
    measurements = [
        hd.sr.Measurement(name=_class_code(names.index(name), f"Probability of {name}"),
                          value=float(probability), unit=_UNIT, algorithm_id=algorithm)
        for name, probability in probabilities.items()
    ]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(),
                                                     identifier="mammo classification"),
        finding_type=_FINDING, algorithm_id=algorithm,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(header)],
        measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(
            name=_PREDICTED, value=_class_code(names.index(predicted), predicted))],
    )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="mammo", manufacturer_name=MANUFACTURER,
            model_name=f"run {model['name']}"[:64]))
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.SCT.Mammography, imaging_measurements=[group])
    report = hd.sr.Comprehensive3DSR(
        evidence=[header], content=content, series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True)
    report.SeriesDescription = f"mammo result ({DISCLAIMER})"
    return report


def _class_code(index: int, meaning: str) -> hd.sr.CodedConcept:
    """A run's class in the local scheme: its index in the run's class list (a code value
    is 16 characters at most) and its name as the meaning (64 at most)."""
    return hd.sr.CodedConcept(f"CLASS-{index}", SCHEME, meaning[:64])


def _copy(dataset: Dataset) -> Dataset:
    copy = Dataset()
    copy.update(dataset)
    return copy


def _write(dataset: Dataset, stem: str, folder: Path, suffix: str) -> Path:
    target = claim_name(folder, stem, suffix)
    try:
        with atomic_path(target) as tmp:
            dataset.save_as(tmp, enforce_file_format=True)
    except BadConfigError:
        target.unlink(missing_ok=True)
        raise
    return target
