"""CBIS-DDSM loader: the real CSVs without images, and tiny DICOM/PNG trees written at the
paths real CSV rows name."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd
import pytest

from core.data import load_dataset
from core.data.cbis import REQUIRED, identify, is_mask, load, read_csv
from core.data.records import PATHOLOGY_CLASSES
from core.errors import BadConfigError, BadDatasetError
from factories import dicom

CALC_TRAIN = "calc_case_description_train_set.csv"
#: (file, rows, patients, MALIGNANT, BENIGN, BENIGN_WITHOUT_CALLBACK), from the README.
README_TABLE = [
    ("calc_case_description_train_set.csv", 1546, 602, 544, 528, 474),
    ("calc_case_description_test_set.csv", 326, 151, 129, 130, 67),
    ("mass_case_description_train_set.csv", 1318, 691, 637, 577, 104),
    ("mass_case_description_test_set.csv", 378, 201, 147, 194, 37),
]
#: Real films used below: two malignant views of P_00005, two BWC views of P_00010, two
#: views of P_00600 with one benign and one malignant calcification each.
PATIENTS = ("P_00005", "P_00010", "P_00600")
FILM_SHAPE = (40, 30)


def _dicom(path: Path, pixels: np.ndarray) -> Path:
    """A minimal valid 16-bit DICOM file (Part 10, explicit VR little endian)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dicom(pixels.astype(np.uint16), bits_stored=16))
    return path


def _noise(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(100, 4000, shape).astype(np.uint16)


def _disk_mask(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros(shape, np.uint16)
    cv2.circle(mask, (centre[1], centre[0]), radius, 65535, -1)
    return mask


def _rows(cbis_root: Path, name: str = CALC_TRAIN) -> pd.DataFrame:
    table = pd.read_csv(cbis_root / name, dtype=str, keep_default_na=False)
    return table[table["patient_id"].isin(PATIENTS)].reset_index(drop=True)


def _path(row: pd.Series, column: str) -> str:
    return row[column].strip()


@pytest.fixture
def tcia(tmp_path: Path, cbis_root: Path) -> tuple[Path, pd.DataFrame]:
    """A TCIA-layout tree for the rows of PATIENTS, with the CSV copied beside it.

    P_00005 RIGHT_CC at its exact path; P_00005 RIGHT_MLO with renamed UID folders;
    P_00010 LEFT_CC exact, LEFT_MLO absent; P_00600 LEFT_CC exact, LEFT_MLO absent. Crops
    and masks: for every abnormality of a present film, the crop and the mask at the CSV's
    two paths but swapped (the crop where the CSV names the mask), as TCIA does at times.
    """
    root = tmp_path / "cbis"
    rows = _rows(cbis_root)
    root.mkdir()
    rows.to_csv(root / CALC_TRAIN, index=False)
    absent = {"Calc-Training_P_00010_LEFT_MLO", "Calc-Training_P_00600_LEFT_MLO"}
    for index, row in rows.iterrows():
        image = PurePosixPath(_path(row, "image file path"))
        film = image.parts[0]
        if film in absent:
            continue
        target = root / image
        if film == "Calc-Training_P_00005_RIGHT_MLO":
            target = root / film / "renamed-study" / "renamed-series" / "1-1.dcm"
        if not target.exists():
            _dicom(target, _noise(FILM_SHAPE, index))
        centre = (10 + 5 * int(row["abnormality id"]), 12)
        _dicom(root / _path(row, "cropped image file path"), _disk_mask(FILM_SHAPE, centre, 4))
        _dicom(root / _path(row, "ROI mask file path"), _noise((9, 7), 100 + index))
    return root, rows


# -- the real CSVs, no images ------------------------------------------------------------------------
@pytest.mark.parametrize("name, n_rows, patients, malignant, benign, bwc", README_TABLE)
def test_real_csv_rows_and_patients(cbis_root: Path, name: str, n_rows: int, patients: int,
                                    malignant: int, benign: int, bwc: int) -> None:
    rows, warnings = read_csv(cbis_root / name, REQUIRED)
    assert warnings == []
    assert len(rows) == n_rows and len({r.patient_id for r in rows}) == patients
    pathologies = [r.pathology for r in rows]
    assert (pathologies.count("MALIGNANT"), pathologies.count("BENIGN"),
            pathologies.count("BENIGN_WITHOUT_CALLBACK")) == (malignant, benign, bwc)
    assert all(r.image_path.endswith(".dcm") and "\n" not in (r.crop_path or "")
               and "\n" not in (r.mask_path or "") for r in rows)
    assert all(r.density in {"0", "1", "2", "3", "4"} for r in rows)


@pytest.mark.parametrize("abnormality, kinds", [("calc", ("calc",)), ("mass", ("mass",)),
                                                ("both", ("calc", "mass"))])
def test_real_csvs_without_images_are_all_missing(cbis_root: Path, abnormality: str,
                                                  kinds: tuple[str, ...]) -> None:
    data = load_dataset("cbis", cbis_root, abnormality=abnormality)
    expected = set()
    for name, *_ in README_TABLE:
        if name.split("_")[0] in kinds:
            table = pd.read_csv(cbis_root / name, dtype=str, keep_default_na=False)
            expected |= {p.strip().split("/")[0] for p in table["image file path"]}
    assert len(data) == 0 and data.missing == sorted(expected)
    assert len(data.warnings) == 1 and data.warnings[0].startswith(f"{len(expected)} film(s)")
    assert data.classes == PATHOLOGY_CLASSES


def test_real_csvs_crop_mode_missing_counts_abnormalities(cbis_root: Path) -> None:
    data = load(cbis_root, abnormality="mass", mode="crop")
    assert len(data.missing) == 1318 + 378 and len(data) == 0


# -- a TCIA-layout tree --------------------------------------------------------------------------------
def test_film_mode_resolves_labels_and_patients(tcia) -> None:
    root, rows = tcia
    data = load(root)
    films = {r.film_id: r for r in data.records}
    assert sorted(films) == ["Calc-Training_P_00005_RIGHT_CC", "Calc-Training_P_00005_RIGHT_MLO",
                             "Calc-Training_P_00010_LEFT_CC", "Calc-Training_P_00600_LEFT_CC"]
    assert data.missing == ["Calc-Training_P_00010_LEFT_MLO", "Calc-Training_P_00600_LEFT_MLO"]
    assert data.warnings[0].startswith("2 film(s) named in the CSVs have no image")
    exact = films["Calc-Training_P_00005_RIGHT_CC"]
    assert exact.path == root / _path(rows.iloc[0], "image file path")
    assert films["Calc-Training_P_00005_RIGHT_MLO"].path.name == "1-1.dcm"
    assert films["Calc-Training_P_00010_LEFT_CC"].label == "BENIGN"  # BWC counts as benign
    assert films["Calc-Training_P_00010_LEFT_CC"].extra["abnormalities"][0]["pathology"] \
        == "BENIGN_WITHOUT_CALLBACK"
    mixed = films["Calc-Training_P_00600_LEFT_CC"]
    assert mixed.label == "MALIGNANT" and mixed.severity == "M" and mixed.rows == 2
    assert sorted(les.severity for les in mixed.lesions) == ["B", "M"]
    assert not mixed.located_lesions
    assert (exact.patient_id, exact.side, exact.view, exact.tissue) == ("P_00005", "R", "CC", "3")
    assert exact.label == "MALIGNANT" and exact.class_id == 1
    assert exact.extra["split"] == "train" and exact.extra["abnormality_type"] == "calc"
    details = exact.extra["abnormalities"][0]
    assert (details["calc_type"], details["calc_distribution"]) == ("AMORPHOUS", "CLUSTERED")
    assert details["assessment"] == "3" and details["subtlety"] == "3"
    assert list(data.groups).count("P_00005") == 2


def test_crop_mode_tells_crop_from_mask_by_content(tcia) -> None:
    root, rows = tcia
    data = load(root, mode="crop")
    assert len(data) == 5 and data.missing == ["Calc-Training_P_00010_LEFT_MLO_1",
                                                "Calc-Training_P_00600_LEFT_MLO_1",
                                                "Calc-Training_P_00600_LEFT_MLO_2"]
    crops = {r.film_id: r for r in data.records}
    first = crops["Calc-Training_P_00005_RIGHT_CC_1"]
    # The CSV calls 000001.dcm the crop, but this tree holds the crop at the mask's path.
    assert first.path == root / _path(rows.iloc[0], "ROI mask file path")
    assert first.extra["mask_file"] == str(root / _path(rows.iloc[0], "cropped image file path"))
    assert first.extra["film_id"] == "Calc-Training_P_00005_RIGHT_CC"
    assert first.label == "MALIGNANT" and first.rows == 1
    assert crops["Calc-Training_P_00010_LEFT_CC_1"].label == "BENIGN"
    assert {r.label for r in crops.values() if "P_00600" in r.film_id} == {"BENIGN",
                                                                           "MALIGNANT"}


def test_is_mask_and_identify(tmp_path: Path) -> None:
    assert is_mask(np.array([[0, 255], [255, 0]], np.uint8))
    assert is_mask(np.zeros((3, 3), np.uint8))
    assert not is_mask(np.array([[0, 1, 2]], np.uint8))
    crop = _dicom(tmp_path / "000001.dcm", _noise((8, 8), 1))
    mask = _dicom(tmp_path / "000000.dcm", _disk_mask((20, 20), (10, 10), 3))
    files = identify([mask, crop])
    assert (files.crop, files.mask) == (crop, mask)
    assert identify([crop, _dicom(tmp_path / "2.dcm", _noise((8, 8), 2))]).crop is None


def test_with_masks_locates_lesions_on_the_film(tcia) -> None:
    root, _rows = tcia
    data = load(root, with_masks=True)
    lesions = {r.film_id: r.lesions for r in data.records}
    (lesion,) = lesions["Calc-Training_P_00005_RIGHT_CC"]
    assert lesion.center == pytest.approx((15.0, 12.0))
    disk_area = np.count_nonzero(_disk_mask(FILM_SHAPE, (15, 12), 4))
    assert lesion.radius == pytest.approx(np.sqrt(disk_area / np.pi))
    centres = sorted(les.center for les in lesions["Calc-Training_P_00600_LEFT_CC"])
    assert centres == [pytest.approx((15.0, 12.0)), pytest.approx((20.0, 12.0))]


def test_with_masks_maps_a_smaller_mask_onto_the_film(tmp_path: Path, cbis_root: Path) -> None:
    root = tmp_path / "cbis"
    row = _rows(cbis_root).iloc[0]
    root.mkdir()
    _rows(cbis_root).iloc[:1].to_csv(root / CALC_TRAIN, index=False)
    _dicom(root / _path(row, "image file path"), _noise((80, 60), 0))
    crop_id = PurePosixPath(_path(row, "cropped image file path")).parts[0]
    half = np.zeros((40, 30), np.uint8)
    half[10:14, 6:10] = 255  # centroid (11.5, 7.5), area 16, on a half-size grid
    cv2.imwrite(str(root / f"{crop_id}_mask.png"), half)
    cv2.imwrite(str(root / f"{crop_id}_crop.png"), _noise((9, 7), 3).astype(np.uint8))
    (record,) = load(root, with_masks=True).records
    (lesion,) = record.lesions
    assert lesion.center == pytest.approx((23.5, 15.5))  # (11.5 + 0.5) * 2 - 0.5, ditto
    assert lesion.radius == pytest.approx(2 * np.sqrt(16 / np.pi))


def test_png_exports(tmp_path: Path, cbis_root: Path) -> None:
    root = tmp_path / "png"
    rows = _rows(cbis_root)
    (root / "csv").mkdir(parents=True)
    rows.to_csv(root / "csv" / CALC_TRAIN, index=False)
    film = PurePosixPath(_path(rows.iloc[0], "image file path")).parts[0]
    crop_id = PurePosixPath(_path(rows.iloc[0], "cropped image file path")).parts[0]
    (root / "films").mkdir()
    cv2.imwrite(str(root / "films" / f"{film}.png"), _noise((20, 16), 1).astype(np.uint8))
    cv2.imwrite(str(root / "films" / f"{crop_id}_a.png"), _disk_mask((20, 16), (9, 9), 3))
    cv2.imwrite(str(root / "films" / f"{crop_id}_b.png"), _noise((6, 6), 2).astype(np.uint8))
    data = load(root)
    assert [r.film_id for r in data.records] == [film]
    assert data.records[0].path == root / "films" / f"{film}.png"
    crops = load(root, mode="crop")
    assert [r.path.name for r in crops.records] == [f"{crop_id}_b.png"]
    assert crops.records[0].extra["mask_file"].endswith(f"{crop_id}_a.png")


def test_csv_dir_and_column_names(tmp_path: Path, cbis_root: Path) -> None:
    elsewhere = tmp_path / "tables"
    elsewhere.mkdir()
    shutil.copy(cbis_root / "mass_case_description_test_set.csv", elsewhere)
    images = tmp_path / "images"
    images.mkdir()
    data = load(images, abnormality="mass", csv_dir=elsewhere)
    assert len(data.missing) == 361
    with pytest.raises(BadDatasetError, match="no usable CBIS-DDSM description CSV"):
        load(images)  # the calc CSVs are nowhere below images


def test_csv_lacking_columns_is_skipped(tmp_path: Path, cbis_root: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    _rows(cbis_root).drop(columns=["pathology", "image view"]).to_csv(root / CALC_TRAIN,
                                                                       index=False)
    with pytest.raises(BadDatasetError, match="lacks column\\(s\\) image view, pathology"):
        load(root)
    shutil.copy(cbis_root / "calc_case_description_test_set.csv", root)
    data = load(root)
    assert len(data.missing) == 284
    assert any(CALC_TRAIN in w and "lacks column(s) image view, pathology" in w
               for w in data.warnings)


def test_bad_rows_and_empty_fields(tmp_path: Path, cbis_root: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    rows = _rows(cbis_root)
    rows.loc[0, "pathology"] = "UNSURE"
    rows.loc[1, "left or right breast"] = ""
    rows.loc[2, "calc type"] = ""
    rows.to_csv(root / CALC_TRAIN, index=False)
    data = load(root)
    (warning,) = [w for w in data.warnings if "skipped" in w]
    assert "2 row(s) skipped: row 1: unknown pathology 'UNSURE'; row 2: empty left or right" \
        in warning
    assert len(data.missing) == len({p.split("/")[0] for p in rows["image file path"][2:]})


def test_bad_options(cbis_root: Path) -> None:
    with pytest.raises(BadConfigError, match="abnormality"):
        load(cbis_root, abnormality="cyst")
    with pytest.raises(BadConfigError, match="mode"):
        load(cbis_root, mode="patch")
    with pytest.raises(BadConfigError, match="with_masks"):
        load(cbis_root, mode="crop", with_masks=True)
    with pytest.raises(BadConfigError, match="colour"):
        load(cbis_root, colour="red")
