"""The CBIS-DDSM loader: the official case-description CSVs plus DICOM or PNG images.

The CSVs (``{calc,mass}_case_description_{train,test}_set.csv``) are found at any depth
below the root, or below ``csv_dir``. One CSV row is one abnormality; its paths follow the
TCIA layout ``<Case>_P_<id>_<SIDE>_<VIEW>[_<abn>]/<study UID>/<series UID>/00000N.dcm``.

How a CSV path becomes a file (first rule that finds anything wins):

1. the exact relative path below the root (a TCIA download unpacked as is);
2. any ``.dcm`` below a folder named like the path's first component, e.g.
   ``Calc-Training_P_00005_RIGHT_CC`` (download tools sometimes rename the UID folders);
3. a PNG export named after that first component: ``<first component>.png``; for crops and
   masks, which share a first component, also ``<first component>_<tag>.png`` (e.g.
   ``..._CC_1_crop.png`` and ``..._CC_1_mask.png``).

Cropped image vs ROI mask: in the TCIA download both sit in one series folder and which of
``000000.dcm``/``000001.dcm`` is the mask does not follow the CSV. So every candidate file of
an abnormality is read and sorted by content: a mask is binary (at most 2 distinct values),
the crop is the one that is not. This reads pixels, so it is only done when needed (crop
mode, or ``with_masks``).

``mode="film"`` gives one record per full film, MALIGNANT when any of its abnormalities is
(BENIGN_WITHOUT_CALLBACK counts as BENIGN). ``mode="crop"`` gives one record per abnormality
whose path is the cropped image. Calc and mass files name the same physical film under
different folders (``Calc-...`` vs ``Mass-...``, as TCIA stores them); with
``abnormality="both"`` they stay separate records, grouped by ``patient_id`` for splits.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import pandas as pd

from core.data.options import CBIS_ABNORMALITIES, CBIS_OPTIONS, resolve_options
from core.data.records import PATHOLOGY_CLASSES, Dataset, FilmRecord
from core.errors import BadConfigError, BadDatasetError, BadFilmError
from core.films import probe_film, read_film
from core.geometry import Lesion, Transform

PATHOLOGIES: dict[str, str] = {"MALIGNANT": "MALIGNANT", "BENIGN": "BENIGN",
                               "BENIGN_WITHOUT_CALLBACK": "BENIGN"}
SIDES: dict[str, str] = {"LEFT": "L", "RIGHT": "R"}

_CSV_NAME = re.compile(r"(calc|mass)_case_description_(train|test)_set\.csv", re.IGNORECASE)
#: Columns every row needs, by their normalised names (lower case, ``_`` read as a space,
#: so the calc files' ``breast density`` and the mass files' ``breast_density`` agree).
REQUIRED = ("patient id", "left or right breast", "image view", "abnormality id",
            "pathology", "image file path")
#: Also needed when crops or masks are read.
CROP_REQUIRED = ("cropped image file path", "roi mask file path")
#: Kept in ``extra`` when present, per kind of abnormality.
DETAILS: dict[str, tuple[str, ...]] = {"calc": ("calc type", "calc distribution"),
                                       "mass": ("mass shape", "mass margins")}
_EMPTY = {"", "NA", "NAN", "NONE"}


@dataclass(frozen=True)
class Abnormality:
    """One usable CSV row."""

    source: str  # the CSV's file name
    row: int  # 1 = first data row
    kind: str  # "calc" or "mass", from the file name
    split: str  # "train" or "test", from the file name
    patient_id: str
    side: str
    view: str
    density: str | None
    number: str
    pathology: str  # as in the CSV
    image_path: str
    crop_path: str | None
    mask_path: str | None
    details: dict[str, str | None] = field(default_factory=dict, compare=False)

    @property
    def film_id(self) -> str:
        return PurePosixPath(self.image_path).parts[0]

    @property
    def crop_id(self) -> str:
        return PurePosixPath(self.crop_path or self.mask_path or self.image_path).parts[0]

    @property
    def label(self) -> str:
        return PATHOLOGIES[self.pathology]

    def describe(self) -> dict[str, Any]:
        """What ``extra`` keeps about this abnormality: everything but the record fields."""
        return {"csv": self.source, "row": self.row, "split": self.split,
                "abnormality_type": self.kind, "abnormality_id": self.number,
                "pathology": self.pathology, **self.details,
                "image_path": self.image_path, "crop_path": self.crop_path,
                "mask_path": self.mask_path}


# -- reading the CSVs -----------------------------------------------------------------------------
def _normalise(column: str) -> str:
    return re.sub(r"[\s_]+", " ", str(column).strip().lower())


def _value(raw: Any) -> str | None:
    text = str(raw).strip()
    return None if text.upper() in _EMPTY else text


def find_csvs(folder: Path, kinds: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """The description CSVs of the wanted kinds below ``folder``; the shallowest copy of
    each file name wins, with a warning naming the others."""
    found: dict[str, list[Path]] = defaultdict(list)
    for directory, _dirs, names in os.walk(folder):
        for name in names:
            match = _CSV_NAME.fullmatch(name)
            if match and match.group(1).lower() in kinds:
                found[name.lower()].append(Path(directory, name))
    chosen, warnings = [], []
    for name in sorted(found):
        paths = sorted(found[name], key=lambda p: (len(p.relative_to(folder).parts), str(p)))
        chosen.append(paths[0])
        if len(paths) > 1:
            warnings.append(f"using {paths[0]}; ignored other copies "
                            f"{', '.join(str(p) for p in paths[1:])}")
    return chosen, warnings


def read_csv(path: Path, required: tuple[str, ...]) -> tuple[list[Abnormality], list[str]]:
    """The usable rows of one description CSV and the warnings about it.

    A CSV that cannot be parsed or lacks required columns gives no rows and one warning;
    a bad row (an unknown value, an empty required cell, more cells than the header, the
    same film and abnormality as an earlier row) is skipped and reported in one warning per
    file, so that one damaged line never costs the other rows.
    """
    match = _CSV_NAME.fullmatch(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a CBIS-DDSM description CSV name")
    kind, split = match.group(1).lower(), match.group(2).lower()
    long_lines: list[int] = []
    try:
        # The python engine hands over-long lines to a callback instead of failing the file.
        table = pd.read_csv(path, dtype=str, keep_default_na=False, engine="python",
                            on_bad_lines=lambda cells: long_lines.append(len(cells)))
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as error:
        return [], [f"{path}: cannot be read as CSV ({' '.join(str(error).split())}); skipped"]
    table.columns = [_normalise(c) for c in table.columns]
    absent = [c for c in required if c not in table.columns]
    if absent:
        return [], [f"{path}: lacks column(s) {', '.join(absent)}; skipped"]
    rows, faults = [], []
    first_row: dict[tuple[str, str], int] = {}
    for index, cells in enumerate(table.to_dict("records"), start=1):
        try:
            row = _abnormality(path.name, index, kind, split, cells)
        except ValueError as fault:
            faults.append(f"row {index}: {fault}")
            continue
        key = (row.film_id, row.number)
        if key in first_row:
            faults.append(f"row {index}: duplicate of row {first_row[key]} (film {row.film_id}, "
                          f"abnormality {row.number})")
            continue
        first_row[key] = index
        rows.append(row)
    faults += [f"a line with {cells} cells where the header has {len(table.columns)}"
               for cells in long_lines]
    warnings = [f"{path}: {len(faults)} row(s) skipped: {'; '.join(faults)}"] if faults else []
    return rows, warnings


def _abnormality(source: str, index: int, kind: str, split: str,
                 cells: dict[str, Any]) -> Abnormality:
    values = {name: _value(raw) for name, raw in cells.items()}
    for name in REQUIRED:
        if values.get(name) is None:
            raise ValueError(f"empty {name}")
    side = SIDES.get(str(values["left or right breast"]).upper())
    if side is None:
        raise ValueError(f"unknown side {values['left or right breast']!r}")
    pathology = str(values["pathology"]).upper()
    if pathology not in PATHOLOGIES:
        raise ValueError(f"unknown pathology {values['pathology']!r}")
    details = {name.replace(" ", "_"): values.get(name)
               for name in (*DETAILS[kind], "assessment", "subtlety")}
    return Abnormality(
        source=source, row=index, kind=kind, split=split,
        patient_id=str(values["patient id"]), side=side,
        view=str(values["image view"]).upper(), density=values.get("breast density"),
        number=str(values["abnormality id"]), pathology=pathology,
        image_path=str(values["image file path"]),
        crop_path=values.get("cropped image file path"),
        mask_path=values.get("roi mask file path"), details=details)


# -- finding images --------------------------------------------------------------------------------
class FileIndex:
    """Every file below the root, indexed once for the three resolution rules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: set[str] = set()
        self.dicom_below: dict[str, list[Path]] = defaultdict(list)
        self.png_by_stem: dict[str, list[Path]] = defaultdict(list)
        for directory, _dirs, names in os.walk(root):
            parts = Path(directory).relative_to(root).parts
            for name in names:
                path = Path(directory, name)
                self.files.add("/".join((*parts, name)))
                suffix = os.path.splitext(name)[1].lower()
                if suffix == ".dcm":
                    for part in set(parts):
                        self.dicom_below[part].append(path)
                elif suffix == ".png":
                    self.png_by_stem[os.path.splitext(name)[0]].append(path)

    def exact(self, relative: str | None) -> Path | None:
        if relative and relative in self.files:
            return self.root / relative
        return None

    def film(self, relative: str) -> list[Path]:
        """Candidate files for a full film, by the first rule that finds any."""
        exact = self.exact(relative)
        if exact is not None:
            return [exact]
        first = PurePosixPath(relative).parts[0]
        return sorted(self.dicom_below.get(first, ())) or sorted(self.png_by_stem.get(first, ()))

    def crop_and_mask(self, item: Abnormality) -> list[Path]:
        """Candidate files for an abnormality's crop and mask (to be told apart by content)."""
        exact = {p for p in (self.exact(item.crop_path), self.exact(item.mask_path)) if p}
        if exact:
            return sorted(exact)
        first = item.crop_id
        if self.dicom_below.get(first):
            return sorted(self.dicom_below[first])
        return sorted(path for stem, paths in self.png_by_stem.items()
                      if stem == first or stem.startswith(first + "_") for path in paths)


def is_mask(image: np.ndarray) -> bool:
    """A ROI mask is binary: it holds at most two distinct values (a crop holds many)."""
    low, high = image.min(), image.max()
    return not np.any((image != low) & (image != high))


@dataclass(frozen=True)
class CropFiles:
    crop: Path | None
    mask: Path | None
    mask_image: np.ndarray | None = None
    unreadable: tuple[str, ...] = ()  # one message per candidate that could not be read


def identify(candidates: list[Path]) -> CropFiles:
    """Tell the cropped image from the ROI mask by content. A file that is not readable is
    neither (its message is kept for the warnings); with several non-binary files (or
    several masks) the choice would be a guess, so that part stays ``None``."""
    crops, masks, unreadable = [], [], []
    for path in candidates:
        try:
            image = read_film(path).pixels
        except BadFilmError as error:
            unreadable.append(str(error))
            continue
        (masks if is_mask(image) else crops).append((path, image))
    crop = crops[0][0] if len(crops) == 1 else None
    mask, mask_image = masks[0] if len(masks) == 1 else (None, None)
    return CropFiles(crop, mask, mask_image, tuple(unreadable))


def _unreadable_warning(messages: list[str]) -> list[str]:
    """One warning for the crop and mask files that could not be read (the first ten in
    full: a broken download can hold thousands)."""
    if not messages:
        return []
    shown = "; ".join(messages[:10]) + (f"; and {len(messages) - 10} more"
                                        if len(messages) > 10 else "")
    return [f"{len(messages)} crop or mask file(s) could not be read and were not used: {shown}"]


def mask_lesion(mask: np.ndarray, film_shape: tuple[int, int]) -> Lesion | None:
    """The lesion a mask's foreground marks, on the full film's grid: centre at its centroid,
    radius that of the disk of equal area; ``None`` for an empty mask."""
    foreground = (mask > mask.min()).astype(np.uint8)
    moments = cv2.moments(foreground, binaryImage=True)
    if moments["m00"] == 0:
        return None
    lesion = Lesion((moments["m01"] / moments["m00"], moments["m10"] / moments["m00"]),
                    float(np.sqrt(moments["m00"] / np.pi)))
    mask_shape = (mask.shape[0], mask.shape[1])
    if mask_shape != film_shape:
        lesion = Transform.resize(mask_shape, film_shape).map_lesion(lesion)
    return lesion


# -- records ----------------------------------------------------------------------------------
def _severity(label: str) -> str:
    return "M" if label == "MALIGNANT" else "B"


def _film_records(items: list[Abnormality], index: FileIndex, with_masks: bool,
                  ) -> tuple[list[FilmRecord], list[str], list[str]]:
    by_film: dict[str, list[Abnormality]] = defaultdict(list)
    for item in items:
        by_film[item.film_id].append(item)
    records, missing, warnings = [], [], []
    ambiguous, unlocated, unreadable = [], 0, []
    for film_id, group in by_film.items():
        candidates = index.film(group[0].image_path)
        if not candidates:
            missing.append(film_id)
            continue
        if len(candidates) > 1:
            ambiguous.append(film_id)
        path = candidates[0]
        film_shape = None
        if with_masks:  # masks are mapped onto the film's grid, so its header must be read
            try:
                info = probe_film(path)
            except BadFilmError as error:
                warnings.append(f"{error}; film left out")
                continue
            film_shape = (info.rows, info.cols)
        lesions = []
        for item in group:
            located: Lesion | None = None
            if film_shape is not None:
                files = identify(index.crop_and_mask(item))
                unreadable += files.unreadable
                if files.mask_image is not None:
                    located = mask_lesion(files.mask_image, film_shape)
                unlocated += located is None
            lesions.append(replace(located or Lesion(None, None),
                                   severity=_severity(item.label), kind=item.kind))
        label = "MALIGNANT" if any(i.label == "MALIGNANT" for i in group) else "BENIGN"
        first = group[0]
        records.append(FilmRecord(
            film_id=film_id, patient_id=first.patient_id, label=label,
            classes=PATHOLOGY_CLASSES, path=path, side=first.side, view=first.view,
            tissue=first.density, severity=_severity(label), lesions=tuple(lesions),
            rows=len(group),
            extra={"split": first.split, "abnormality_type": first.kind,
                   "image_path": first.image_path,
                   "abnormalities": [item.describe() for item in group]}))
    if ambiguous:
        warnings.append(f"{len(ambiguous)} film(s) matched several files; used the first by "
                        f"name: {' '.join(ambiguous)}")
    if unlocated:
        warnings.append(f"{unlocated} abnormalit(ies) have no usable ROI mask; their lesions "
                        "have no location")
    return records, missing, warnings + _unreadable_warning(unreadable)


def _crop_records(items: list[Abnormality], index: FileIndex,
                  ) -> tuple[list[FilmRecord], list[str], list[str]]:
    records, missing, unclear, unreadable = [], [], [], []
    for item in items:
        candidates = index.crop_and_mask(item)
        if not candidates:
            missing.append(item.crop_id)
            continue
        files = identify(candidates)
        unreadable += files.unreadable
        if files.crop is None:
            unclear.append(item.crop_id)
            continue
        records.append(FilmRecord(
            film_id=item.crop_id, patient_id=item.patient_id, label=item.label,
            classes=PATHOLOGY_CLASSES, path=files.crop, side=item.side, view=item.view,
            tissue=item.density, severity=_severity(item.label),
            lesions=(Lesion(None, None, _severity(item.label), item.kind),),
            extra={**item.describe(), "film_id": item.film_id,
                   "mask_file": str(files.mask) if files.mask else None}))
    warnings = [(f"{len(unclear)} abnormalit(ies) have files but no single non-binary image "
                 f"to use as the crop; left out: {' '.join(unclear)}")] if unclear else []
    return records, missing, warnings + _unreadable_warning(unreadable)


def load(root: Path, **options: Any) -> Dataset:
    """Load CBIS-DDSM. Options (``CBIS_OPTIONS``, where their defaults are): ``abnormality``
    (which description CSVs), ``mode`` (whole films or lesion crops), ``csv_dir`` (where the
    CSVs are, if not below the root), ``with_masks`` (film mode: locate lesions from their
    ROI masks)."""
    values = resolve_options("cbis", CBIS_OPTIONS, options)  # the defaults are declared there
    abnormality, mode = values["abnormality"], values["mode"]
    csv_dir, with_masks = values["csv_dir"], values["with_masks"]
    if with_masks and mode != "film":
        raise BadConfigError("with_masks locates lesions on full films; use it with mode film")
    root = Path(root)
    csv_root = Path(csv_dir) if csv_dir is not None else root
    if not csv_root.is_dir():
        raise BadDatasetError(f"{csv_root}: not a folder (csv_dir)")

    paths, warnings = find_csvs(csv_root, CBIS_ABNORMALITIES[abnormality])
    required = REQUIRED + (CROP_REQUIRED if mode == "crop" or with_masks else ())
    items: list[Abnormality] = []
    for path in paths:
        rows, csv_warnings = read_csv(path, required)
        items += rows
        warnings += csv_warnings
    if not items:
        wanted = " and ".join(f"{k}_case_description_{{train,test}}_set.csv"
                              for k in CBIS_ABNORMALITIES[abnormality])
        raise BadDatasetError(f"{csv_root}: no usable CBIS-DDSM description CSV ({wanted})"
                              + (f"; {'; '.join(warnings)}" if warnings else ""))

    index = FileIndex(root)
    if mode == "film":
        records, missing, more = _film_records(items, index, bool(with_masks))
        noun = "film(s)"
    else:
        records, missing, more = _crop_records(items, index)
        noun = "abnormalit(ies)"
    warnings += more
    missing = sorted(set(missing))
    if missing:
        shown = " ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        warnings.insert(0, f"{len(missing)} {noun} named in the CSVs have no image below "
                           f"{root}: {shown}")
    return Dataset("cbis", root, PATHOLOGY_CLASSES, records, missing=missing,
                   warnings=warnings)
