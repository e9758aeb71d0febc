"""The RSNA screening mammography loader (RSNA and Kaggle, 2022): cancer vs no cancer.

One loader for the two ways the films come:

* **RSNA's own layout**, as users download it: ``train.csv`` (``site_id, patient_id,
  image_id, laterality, view, age, cancer, biopsy, invasive, BIRADS, implant, density,
  machine_id, difficult_negative_case``) beside ``train_images/<patient_id>/<image_id>.dcm``
  (or a ``.png``/``.jpg`` conversion, nested the same way or flat as
  ``<patient_id>_<image_id>.png``). Laterality becomes ``side``, the view ``view``, the
  BI-RADS density ``tissue`` (as ``"BI-RADS A"``, since a bare ``D`` would read as MIAS's
  dense-glandular), and the age and the other columns go to ``extra``.
* **The 640-px class-folder export** (``../shared/data/rsna-640``): ``malignant/`` and
  ``benign/`` (or ``cancer/`` and ``no_cancer/``) holding ``<patient_id>_<image_id>_...jpg``.
  It keeps no laterality, view, age or density.

``csv_file`` picks the table (default ``train.csv`` in the root); with no table there, the
root is read as the export. The classes are ``no_cancer`` and ``cancer`` (cancer second: the
positive class of a two-class problem) in both layouts, because RSNA labels a breast, not a
lesion: the export's ``benign`` means no cancer was found at screening, not a proven benign
lesion, and users must read it that way. ``patient_id`` groups the films, so splits keep a
woman's films on one side.

Films are not opened here (the full set is 54,706 DICOMs); a bad one is named when it is
shown or trained on. Orientation and inversion are judged from the pixels wherever films are
prepared (``core.prep.preprocess``): laterality alone does not say which side of a stored
image the chest wall is on, and the export dropped the tags that say a film is inverted.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from core.data.options import RSNA_OPTIONS, resolve_options
from core.data.records import RSNA_CLASSES, Dataset, FilmRecord
from core.errors import BadAnnotationError, BadDatasetError

CANCER, NO_CANCER = RSNA_CLASSES[1], RSNA_CLASSES[0]
#: Class folders of the export (and their plain names) and the class each holds.
FOLDER_CLASSES: dict[str, str] = {"malignant": CANCER, "benign": NO_CANCER,
                                  CANCER: CANCER, NO_CANCER: NO_CANCER}
TABLE = "train.csv"
IMAGES = "train_images"
#: Image files in order of preference when one image exists several times: the DICOM
#: original (its header says how to read it), then lossless, then lossy conversions.
SUFFIXES: tuple[str, ...] = (".dcm", ".png", ".jpg", ".jpeg")
REQUIRED = ("patient_id", "image_id", "cancer")
#: Columns kept in ``extra`` as they are (empty cells as None).
DETAILS = ("site_id", "machine_id", "biopsy", "invasive", "BIRADS", "implant",
           "difficult_negative_case")
SIDES = {"L": "L", "R": "R", "LEFT": "L", "RIGHT": "R"}
_TRUTH = {"0": False, "1": True, "0.0": False, "1.0": True, "FALSE": False, "TRUE": True}
#: ``<patient_id>_<image_id>`` at the start of a file name (the export adds ``_png.rf...``).
_IDS = re.compile(r"(\d+)_(\d+)(?=$|[_.])")
#: Bad rows and files named in full in a warning; the rest are counted.
NAMED = 10


def load(root: Path, **options: Any) -> Dataset:
    """Load RSNA films from ``root``: its ``train.csv`` layout if the table is there (or
    ``csv_file`` names one), else the class-folder export. Options: ``RSNA_OPTIONS``."""
    values = resolve_options("rsna", RSNA_OPTIONS, options)
    root = Path(root)
    table = _within(root, values["csv_file"]) if values["csv_file"] else root / TABLE
    if values["csv_file"] and not table.is_file():
        raise BadDatasetError(f"{table}: no such file (csv_file)")
    if table.is_file():
        images = _within(root, values["images_dir"]) if values["images_dir"] else (
            root / IMAGES if (root / IMAGES).is_dir() else root)
        if not images.is_dir():
            raise BadDatasetError(f"{images}: not a folder (images_dir)")
        return _from_table(root, table, images)
    if values["images_dir"]:
        raise BadDatasetError(f"images_dir is for the train.csv layout, but {table} is absent")
    return _from_folders(root)


def _within(root: Path, given: str) -> Path:
    """An option's path: absolute as given, relative from the dataset's folder."""
    path = Path(given).expanduser()
    return path if path.is_absolute() else root / path


def _named(items: list[str]) -> str:
    return "; ".join(items[:NAMED]) + (f"; and {len(items) - NAMED} more"
                                       if len(items) > NAMED else "")


# -- the class-folder export ----------------------------------------------------------------------
def _from_folders(root: Path) -> Dataset:
    folders = [(entry, FOLDER_CLASSES[entry.name.lower()]) for entry in sorted(root.iterdir())
               if entry.is_dir() and entry.name.lower() in FOLDER_CLASSES]
    if not folders:
        raise BadDatasetError(
            f"{root}: neither RSNA layout: no {TABLE} (with {IMAGES}/<patient_id>/<image_id>"
            f".dcm) and no class folders malignant/ and benign/ (or cancer/ and no_cancer/)")
    records: list[FilmRecord] = []
    seen: dict[str, Path] = {}
    unnamed, repeated = [], []
    for folder, label in folders:
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in SUFFIXES \
                    or not path.is_file():
                continue
            ids = _IDS.match(path.name)
            if ids is None:
                unnamed.append(path.name)
                patient, film_id = path.stem, path.stem
            else:
                patient, film_id = ids.group(1), f"{ids.group(1)}_{ids.group(2)}"
            if film_id in seen:
                repeated.append(f"{path.relative_to(root)} (also {seen[film_id].relative_to(root)})")
                continue
            seen[film_id] = path
            records.append(FilmRecord(
                film_id=film_id, patient_id=patient, label=label, classes=RSNA_CLASSES,
                path=path, extra={"layout": "export", "folder": folder.name,
                                  "image_id": ids.group(2) if ids else None}))
    warnings = []
    if unnamed:
        warnings.append(f"{len(unnamed)} file(s) are not named <patient_id>_<image_id>...; "
                        f"each is counted as its own patient: {_named(unnamed)}")
    if repeated:
        warnings.append(f"{len(repeated)} image(s) appear more than once; the first was "
                        f"kept: {_named(repeated)}")
    if not records:
        raise BadDatasetError(f"{root}: the class folders hold no film ({' '.join(SUFFIXES)})")
    return Dataset("rsna", root, RSNA_CLASSES, records, warnings=warnings)


# -- RSNA's train.csv layout ----------------------------------------------------------------------
def _from_table(root: Path, table: Path, images: Path) -> Dataset:
    rows, warnings = _read_table(table)
    files, ambiguous = _index(images)
    records, missing = [], []
    for row in rows:
        key = (row["patient_id"], row["image_id"])
        if key not in files:
            missing.append(f"{key[0]}/{key[1]}")
            continue
        records.append(_record(row, files[key]))
    if missing:
        warnings.insert(0, f"{len(missing)} image(s) named in {table.name} have no file "
                           f"below {images}: {' '.join(missing[:NAMED])}"
                           + (" ..." if len(missing) > NAMED else ""))
    if ambiguous:
        warnings.append(f"{len(ambiguous)} image(s) have several files; used the first of "
                        f"{' '.join(SUFFIXES)}: {_named(ambiguous)}")
    return Dataset("rsna", root, RSNA_CLASSES, records, missing=missing, warnings=warnings)


def _read_table(table: Path) -> tuple[list[dict[str, str | None]], list[str]]:
    """The usable rows of ``train.csv`` (cells stripped, empty ones None) and a warning
    for the rows left out, so that one damaged line never costs the others."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [cell.strip() for cell in next(reader, [])]
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BadAnnotationError(table, f"cannot be read as CSV ({error})") from None
    columns = {name.lower(): index for index, name in enumerate(header)}
    absent = [name for name in REQUIRED if name not in columns]
    if absent:
        raise BadAnnotationError(table, f"lacks column(s) {', '.join(absent)} (RSNA's "
                                        "train.csv has patient_id, image_id, cancer, ...)")
    rows, faults, first = [], [], {}
    for number, cells in enumerate(lines, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            faults.append(f"line {number}: {len(cells)} cells where the header has "
                          f"{len(header)}")
            continue
        row = {name: (cells[index].strip() or None) if index < len(cells) else None
               for name, index in columns.items()}
        fault = _row_fault(row)
        if fault is None and row["image_id"] in first:
            fault = f"image {row['image_id']} already on line {first[row['image_id']]}"
        if fault:
            faults.append(f"line {number}: {fault}")
            continue
        first[str(row["image_id"])] = number
        rows.append(row)
    warnings = [f"{table}: {len(faults)} row(s) skipped: {_named(faults)}"] if faults else []
    if not rows:
        raise BadAnnotationError(table, "holds no usable row" + (
            f" ({_named(faults)})" if faults else ""))
    return rows, warnings


def _row_fault(row: dict[str, str | None]) -> str | None:
    for name in REQUIRED:
        if row[name] is None:
            return f"empty {name}"
    if str(row["cancer"]).upper() not in _TRUTH:
        return f"cancer must be 0 or 1, got {row['cancer']!r}"
    side = row.get("laterality")
    if side is not None and side.upper() not in SIDES:
        return f"unknown laterality {side!r}"
    age = row.get("age")
    if age is not None:
        try:
            float(age)
        except ValueError:
            return f"age {age!r} is not a number"
    return None


def _index(images: Path) -> tuple[dict[tuple[str, str], Path], list[str]]:
    """Every image file below ``images`` by ``(patient_id, image_id)``: from
    ``<patient_id>/<image_id>.dcm`` or a flat ``<patient_id>_<image_id>...png``."""
    found: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for directory, dirs, names in os.walk(images):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        parent = Path(directory).name
        for name in names:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() not in SUFFIXES or name.startswith("."):
                continue
            ids = _IDS.match(name)
            key = (parent, stem) if stem.isdigit() else \
                (ids.group(1), ids.group(2)) if ids else None
            if key is not None:
                found[key].append(Path(directory, name))
    rank = {suffix: index for index, suffix in enumerate(SUFFIXES)}
    chosen, ambiguous = {}, []
    for key, paths in found.items():
        paths.sort(key=lambda p: (rank[p.suffix.lower()], len(p.parts), str(p)))
        chosen[key] = paths[0]
        if len(paths) > 1:
            ambiguous.append(f"{key[0]}/{key[1]}")
    return chosen, sorted(ambiguous)


def _record(row: dict[str, str | None], path: Path) -> FilmRecord:
    patient, image = str(row["patient_id"]), str(row["image_id"])
    cancer = _TRUTH[str(row["cancer"]).upper()]
    density = row.get("density")
    age = row.get("age")
    view = row.get("view")
    side = row.get("laterality")
    return FilmRecord(
        film_id=f"{patient}_{image}", patient_id=patient,
        label=CANCER if cancer else NO_CANCER, classes=RSNA_CLASSES, path=path,
        side=SIDES[side.upper()] if side else None, view=view.upper() if view else None,
        tissue=f"BI-RADS {density.upper()}" if density else None,
        extra={"layout": "train.csv", "image_id": image,
               "age": float(age) if age is not None else None,
               "density": density, **{name: row.get(name.lower()) for name in DETAILS}})
