"""The class-folder loader: ``root/<class name>/<films>``, for a user's own collection.

The folder names are the labels, sorted, so the class order (and hence class ids) does not
depend on the order the file system lists them in. Films may sit at any depth below their
class folder and are recognised by suffix (``core.films.SUPPORTED_SUFFIXES``); hidden files
and folders (names starting with ``.``, such as ``.DS_Store``) are not films. A class folder
without a film is skipped with a warning, since a class with no examples cannot be learned.

Patients: by default every film is its own patient. Films of one woman must not be split
between training and test, so an optional ``patients.csv`` in the root (columns ``film`` and
``patient``) groups them. ``film`` is the film's path relative to the root
(``CALC/case7/left.png``) or, when that name is unique in the collection, its bare file name
(``left.png``). Rows that name no film, or a film a second time, are reported and ignored.

Film ids are the films' paths relative to the root (``CALC/case7/left.png``), unique by
construction.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from core.data.options import resolve_options
from core.data.records import Dataset, FilmRecord
from core.errors import BadAnnotationError, BadDatasetError
from core.films import SUPPORTED_SUFFIXES

PATIENTS_FILE = "patients.csv"


def _films_below(folder: Path) -> tuple[list[Path], int]:
    """The film files below a class folder (sorted) and how many other files were there."""
    films, others = [], 0
    for directory, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in SUPPORTED_SUFFIXES:
                films.append(Path(directory, name))
            else:
                others += 1
    return sorted(films), others


def _read_patients(path: Path, film_ids: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map film ids (relative paths) to patients from ``patients.csv``."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:  # pandas' parser messages end in a line break
        raise BadAnnotationError(path, "cannot be read as CSV "
                                       f"({' '.join(str(error).split())})") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    absent = [c for c in ("film", "patient") if c not in table.columns]
    if absent:
        raise BadAnnotationError(path, f"lacks column(s) {', '.join(absent)} "
                                       "(expected film, patient)")
    known = set(film_ids)
    name_counts = Counter(PurePosixPath(film_id).name for film_id in film_ids)
    by_name = {PurePosixPath(f).name: f for f in film_ids
               if name_counts[PurePosixPath(f).name] == 1}
    patients: dict[str, str] = {}
    faults = []
    for row, (film, patient) in enumerate(zip(table["film"], table["patient"]), start=2):
        film, patient = film.strip().replace("\\", "/"), patient.strip()
        film_id = film if film in known else by_name.get(film)
        if not film or not patient:
            faults.append(f"line {row}: empty film or patient")
        elif film_id is None:
            ambiguous = name_counts.get(film, 0) > 1
            faults.append(f"line {row}: {film!r} " + ("names several films; use its path"
                                                     if ambiguous else "is not a film here"))
        elif film_id in patients:
            faults.append(f"line {row}: {film!r} already has patient {patients[film_id]!r}")
        else:
            patients[film_id] = patient
    warnings = [f"{path}: {len(faults)} row(s) ignored: {'; '.join(faults)}"] if faults else []
    return patients, warnings


def load(root: Path, **options: Any) -> Dataset:
    """Load ``root/<class>/<films>``. Takes no options; any given is a mistake and says so."""
    resolve_options("folder", (), options)  # it takes none: any given is a mistake
    root = Path(root)
    class_films: dict[str, list[Path]] = {}
    warnings: list[str] = []
    skipped_files = 0
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        films, others = _films_below(entry)
        skipped_files += others
        if films:
            class_films[entry.name] = films
        else:
            warnings.append(f"class folder {entry} holds no film; skipped")
    if not class_films:
        raise BadDatasetError(f"{root}: no class folder holding films (expected "
                              f"root/<class name>/<films> with suffixes "
                              f"{' '.join(SUPPORTED_SUFFIXES)})")
    if skipped_files:
        warnings.append(f"{skipped_files} file(s) in class folders are not films (suffixes "
                        f"{' '.join(SUPPORTED_SUFFIXES)}) and were ignored")
    loose = [e.name for e in root.iterdir()
             if e.is_file() and e.suffix.lower() in SUPPORTED_SUFFIXES]
    if loose:
        warnings.append(f"{len(loose)} film(s) directly in {root} belong to no class folder "
                        f"and were ignored: {' '.join(sorted(loose))}")

    classes = tuple(sorted(class_films))
    films = [(label, path, path.relative_to(root).as_posix())
             for label, paths in class_films.items() for path in paths]
    patients: dict[str, str] = {}
    patients_path = root / PATIENTS_FILE
    if patients_path.is_file():
        patients, more = _read_patients(patients_path, [film_id for _, _, film_id in films])
        warnings += more
    records = [FilmRecord(film_id=film_id, patient_id=patients.get(film_id, film_id),
                          label=label, classes=classes, path=path)
               for label, path, film_id in films]
    return Dataset("folder", root, classes, records, warnings=warnings)
