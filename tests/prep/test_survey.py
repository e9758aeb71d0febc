"""The survey of a dataset's pixels: what the DICOM gate says of each DICOM film, counted,
with the films it doubts or refuses named; ``data summary`` reports it as ``dicom``.
(Inverted films and unreadable files: ``tests/prep/test_polarity.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.data.records import FilmRecord
from core.prep.survey import survey
from factories import dicom


def _films(folder: Path) -> list[FilmRecord]:
    """Four DICOM films in a class folder: two MG films (left CC, right MLO, presentation),
    one CT, one FOR PROCESSING, and a PNG beside them."""
    rng = np.random.default_rng(0)
    pixels = (rng.random((96, 64)) * 4095).astype(np.uint16)
    pixels[:, 40:] = 0  # a dark background, as a mammogram has
    (folder / "A").mkdir(parents=True)
    films = {
        "left_cc.dcm": dicom(pixels, ImageLaterality="L", ViewPosition="CC",
                             PresentationIntentType="FOR PRESENTATION"),
        "right_mlo.dcm": dicom(pixels, ImageLaterality="R", ViewPosition="MLO",
                               PresentationIntentType="FOR PRESENTATION"),
        "ct.dcm": dicom(pixels, Modality="CT"),
        "raw.dcm": dicom(pixels, PresentationIntentType="FOR PROCESSING"),
    }
    for name, data in films.items():
        (folder / "A" / name).write_bytes(data)
    import cv2

    cv2.imwrite(str(folder / "A" / "plain.png"), (pixels >> 4).astype(np.uint8))
    return [FilmRecord(path.stem, path.stem, "A", ("A",), path)
            for path in sorted((folder / "A").iterdir())]


def test_the_dicom_gate_is_counted_and_its_doubts_and_refusals_named(tmp_path: Path) -> None:
    found = survey(_films(tmp_path), ("A",), workers=2)
    assert found.dicom == {
        "films": 3,  # the FOR PROCESSING film is refused, so not counted as read
        "modality": {"CT": 1, "MG": 2},
        "presentation_intent": {"FOR PRESENTATION": 2, "not given": 1},
        "laterality": {"L": 1, "R": 1, "not given": 1},
        "view_position": {"CC": 1, "MLO": 1, "not given": 1},
    }
    unreadable, doubtful = found.warnings()
    assert unreadable.startswith("1 film(s) could not be read") and "raw.dcm" in unreadable
    assert "FOR PROCESSING" in unreadable
    assert doubtful.startswith("1 DICOM film(s) are doubtful: ct: DICOM modality is CT, not MG")


def test_no_dicom_film_means_no_dicom_section(tmp_path: Path) -> None:
    records = [r for r in _films(tmp_path) if r.path.suffix == ".png"]
    found = survey(records, ("A",))
    assert found.dicom is None and found.doubtful == []


def test_data_summary_reports_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _films(tmp_path)
    code = main(["data", "summary", "--dataset", "folder", "--root", str(tmp_path),
                 "--inverted", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["dicom"]["modality"] == {"CT": 1, "MG": 2}
    assert any(line.startswith("1 DICOM film(s) are doubtful") for line in summary["warnings"])
