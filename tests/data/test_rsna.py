"""The RSNA loader on both layouts: the class-folder export and RSNA's own train.csv with
its images; classes named cancer and no_cancer, patients grouping the films."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.cli import main
from core.data import load_dataset
from core.data.pairs import other_breasts
from core.data.records import RSNA_CLASSES
from core.errors import BadAnnotationError, BadConfigError, BadDatasetError
from core.films import read_film
from core.prep.splits import split_dataset
from factories import dicom, rsna_export, screening_film

HEADER = ("site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,invasive,BIRADS,"
          "implant,density,machine_id,difficult_negative_case")


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """Three women: 10 with cancer in one breast (two views) and none in the other, 11
    without cancer, 12 with cancer; one film of 11 is stored inverted (``~``)."""
    return rsna_export(tmp_path / "rsna-640", {
        "malignant": ["10_100", "10_101", "12_120"],
        "benign": ["10_102", "11_110", "11_111~", "11_112"],
    })


def test_the_export_reads_as_cancer_and_no_cancer(export: Path) -> None:
    data = load_dataset("rsna", export)
    assert data.name == "rsna" and data.classes == RSNA_CLASSES == ("no_cancer", "cancer")
    by_id = {r.film_id: r for r in data.records}
    assert set(by_id) == {"10_100", "10_101", "12_120", "10_102", "11_110", "11_111",
                          "11_112"}
    assert [by_id[f].label for f in ("10_100", "12_120", "10_102", "11_111")] == [
        "cancer", "cancer", "no_cancer", "no_cancer"]
    assert by_id["10_101"].patient_id == "10" and by_id["11_111"].extra["image_id"] == "111"
    assert by_id["10_100"].path.parent.name == "malignant"
    assert by_id["10_100"].side is None and by_id["10_100"].view is None
    summary = data.summary()
    assert (summary["films"], summary["patients"]) == (7, 3)
    assert summary["classes"] == {"no_cancer": 4, "cancer": 3}
    assert summary["warnings"] == [] and summary["missing"] == []
    assert summary["films_with_other_breast"] == 0  # the export keeps no laterality
    assert not any(r.severity for r in data.records)  # never "benign"/"malignant" lesions


def test_odd_names_and_repeated_images_are_reported(export: Path) -> None:
    cv2.imwrite(str(export / "benign" / "scan.jpg"), screening_film((32, 32), label=False))
    (export / "benign" / "notes.txt").write_text("not a film")
    cv2.imwrite(str(export / "malignant" / "11_110_png.rf.copy.jpg"),
                screening_film((32, 32), label=False))
    data = load_dataset("rsna", export)
    assert len(data) == 8  # scan.jpg counted, as its own patient; the repeat left out
    scan = next(r for r in data.records if r.film_id == "scan")
    assert scan.patient_id == "scan" and scan.label == "no_cancer"
    assert len(data.warnings) == 2
    assert data.warnings[0].startswith("1 file(s) are not named <patient_id>_<image_id>")
    assert "appear more than once" in data.warnings[1] and "11_110" in data.warnings[1]


@pytest.fixture
def table_layout(tmp_path: Path) -> Path:
    """RSNA's download: train.csv and train_images/<patient>/<image>.dcm, one image as a
    PNG conversion, one row without its image, one bad row."""
    root = tmp_path / "rsna"
    rows = [
        "1,5,501,L,CC,61.0,0,0,0,,0,B,49,False",
        "1,5,502,L,MLO,61.0,0,0,0,,0,B,49,False",
        "1,5,503,R,CC,61.0,1,1,1,0,0,B,49,False",
        "2,6,601,R,MLO,,0,0,0,1,0,,21,True",
        "2,7,701,L,CC,70.0,1,1,0,0,1,D,21,False",
        "2,7,702,L,MLO,70.0,1,1,0,0,1,D,21,False",  # no image anywhere
        "2,8,801,L,CC,55.0,maybe,0,0,,0,C,21,False",  # bad cancer value
    ]
    root.mkdir()
    (root / "train.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    twelve = screening_film((48, 40), label=False).astype(np.uint16) * 16
    for patient, image in (("5", "501"), ("5", "502"), ("5", "503"), ("7", "701")):
        folder = root / "train_images" / patient
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{image}.dcm").write_bytes(dicom(twelve))
    (root / "train_images" / "6").mkdir()
    cv2.imwrite(str(root / "train_images" / "6" / "601.png"), screening_film((48, 40)))
    return root


def test_the_train_csv_layout_keeps_what_rsna_says(table_layout: Path) -> None:
    data = load_dataset("rsna", table_layout)
    by_id = {r.film_id: r for r in data.records}
    assert sorted(by_id) == ["5_501", "5_502", "5_503", "6_601", "7_701"]
    first = by_id["5_501"]
    assert (first.patient_id, first.label, first.side, first.view, first.tissue) == (
        "5", "no_cancer", "L", "CC", "BI-RADS B")
    assert first.extra["age"] == 61.0 and first.extra["density"] == "B"
    assert first.extra["site_id"] == "1" and first.extra["machine_id"] == "49"
    assert by_id["5_503"].label == "cancer" and by_id["5_503"].side == "R"
    assert by_id["6_601"].extra["age"] is None and by_id["6_601"].tissue is None
    assert by_id["6_601"].extra["difficult_negative_case"] == "True"
    assert by_id["6_601"].path.suffix == ".png"
    assert read_film(first.path).pixels.shape == (48, 40)  # the DICOM is a readable film
    assert data.missing == ["7/702"]
    assert data.warnings[0].startswith("1 image(s) named in train.csv have no file below ")
    assert any("row(s) skipped: line 8: cancer must be 0 or 1, got 'maybe'" in w
               for w in data.warnings)
    assert data.summary()["tissue"] == {"BI-RADS B": 3, "BI-RADS D": 1}
    # Laterality and view pair a woman's breasts: 5_501 (L CC) with 5_503 (R CC) only.
    assert other_breasts(data.records) == [2, None, 0, None, None]
    assert data.summary()["films_with_other_breast"] == 2


def test_flat_png_conversions_and_the_options(table_layout: Path, tmp_path: Path) -> None:
    """A user's PNG conversion, flat in another folder, with the table elsewhere too."""
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for name in ("5_501", "5_502", "7_701", "7_702"):
        cv2.imwrite(str(pngs / f"{name}.png"), screening_film((40, 32), label=False))
    table = tmp_path / "tables" / "mine.csv"
    table.parent.mkdir()
    table.write_text((table_layout / "train.csv").read_text())
    data = load_dataset("rsna", table_layout, csv_file=str(table), images_dir=str(pngs))
    assert sorted(r.film_id for r in data.records) == ["5_501", "5_502", "7_701", "7_702"]
    assert all(r.path.parent == pngs for r in data.records)
    # Relative paths are taken from the dataset's folder.
    again = load_dataset("rsna", table_layout, csv_file="train.csv",
                         images_dir="train_images")
    assert len(again) == 5
    with pytest.raises(BadDatasetError, match="no such file .csv_file."):
        load_dataset("rsna", table_layout, csv_file="nope.csv")
    with pytest.raises(BadDatasetError, match="not a folder .images_dir."):
        load_dataset("rsna", table_layout, images_dir="nope")
    with pytest.raises(BadConfigError, match="unknown rsna option"):
        load_dataset("rsna", table_layout, abnormality="mass")


def test_a_file_of_both_kinds_prefers_the_dicom(table_layout: Path) -> None:
    cv2.imwrite(str(table_layout / "train_images" / "5" / "501.png"),
                screening_film((48, 40), label=False))
    data = load_dataset("rsna", table_layout)
    assert next(r for r in data.records if r.film_id == "5_501").path.suffix == ".dcm"
    assert any("several files; used the first of .dcm" in w and "5/501" in w
               for w in data.warnings)


@pytest.mark.parametrize("content, fault", [
    ("patient_id,image_id\n1,2\n", "lacks column.s. cancer"),
    (f"{HEADER}\n1,,2,L,CC,50,0,0,0,,0,A,1,False\n", "holds no usable row .line 2: empty"),
    ("", "lacks column"),
])
def test_an_unusable_table_is_one_clear_error(tmp_path: Path, content: str,
                                              fault: str) -> None:
    (tmp_path / "train.csv").write_text(content)
    with pytest.raises(BadAnnotationError, match=fault):
        load_dataset("rsna", tmp_path)


def test_neither_layout_says_what_it_expected(tmp_path: Path) -> None:
    (tmp_path / "films").mkdir()
    with pytest.raises(BadDatasetError, match="neither RSNA layout: no train.csv .* and no "
                                              "class folders malignant/ and benign/"):
        load_dataset("rsna", tmp_path)
    with pytest.raises(BadDatasetError, match="images_dir is for the train.csv layout"):
        load_dataset("rsna", tmp_path, images_dir="films")


def test_splits_keep_each_woman_on_one_side(tmp_path: Path) -> None:
    films = defaultdict(list)
    for patient in range(20):
        for image in range(4):
            # A woman's films in both classes, as the 15 in the real export are.
            folder = "malignant" if patient % 3 == 0 and image < 2 else "benign"
            films[folder].append(f"{100 + patient}_{patient * 10 + image}")
    data = load_dataset("rsna", rsna_export(tmp_path / "export", films, size=16))
    splits = split_dataset(data, test_size=0.25, val_fraction=0.2, seed=3)
    owners = [{data.records[i].patient_id for i in part}
              for part in (splits.train, splits.val, splits.test)]
    assert owners[0].isdisjoint(owners[1]) and owners[0].isdisjoint(owners[2])
    assert owners[1].isdisjoint(owners[2])
    assert sum(map(len, owners)) == 20


def test_data_summary_counts_inverted_films(capsys: pytest.CaptureFixture[str],
                                            export: Path) -> None:
    assert main(["data", "summary", "--dataset", "rsna", "--root", str(export), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["films"], doc["patients"]) == (7, 3)
    assert doc["classes"] == {"no_cancer": 4, "cancer": 3}
    assert doc["inverted"] == 1 and doc["inverted_by_class"] == {"no_cancer": 1, "cancer": 0}
    assert doc["warnings"] == []
    assert main(["data", "summary", "--dataset", "rsna", "--root", str(export), "--json",
                 "--no-inverted"]) == 0
    skipped = json.loads(capsys.readouterr().out)
    assert skipped["inverted"] is None and skipped["films"] == 7


def test_a_film_that_cannot_be_read_is_a_summary_warning(capsys: pytest.CaptureFixture[str],
                                                         export: Path) -> None:
    (export / "benign" / "13_130_png.rf.broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    assert main(["data", "summary", "--dataset", "rsna", "--root", str(export), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["films"] == 8 and doc["inverted"] == 1
    (line,) = doc["warnings"]
    assert line.startswith("1 film(s) could not be read to check their polarity: ")
    assert "13_130" in line


# -- the real export ------------------------------------------------------------------------------
def test_the_real_export_matches_its_readme(rsna_root: Path) -> None:
    """The counts that need no pixel read (the inversion count is bench/rsna_summary.py's)."""
    data = load_dataset("rsna", rsna_root)
    summary = data.summary()
    assert (summary["films"], summary["patients"]) == (2711, 771)
    assert summary["classes"] == {"no_cancer": 1784, "cancer": 927}
    assert summary["warnings"] == [] and summary["missing"] == []
    assert summary["films_with_other_breast"] == 0  # the export keeps no laterality
    classes_of = defaultdict(set)
    for record in data.records:
        classes_of[record.patient_id].add(record.label)
    with_cancer = sum("cancer" in labels for labels in classes_of.values())
    only_no_cancer = sum(labels == {"no_cancer"} for labels in classes_of.values())
    both = sum(len(labels) == 2 for labels in classes_of.values())
    assert (with_cancer, only_no_cancer, both) == (389, 382, 15)
