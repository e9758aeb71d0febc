"""The class-folder loader: ``root/<class name>/<films>``, for a user's own collection.

The folder names are the labels, sorted, so the class order (and hence class ids) does not
depend on the order the file system lists them in. Films may sit at any depth below their
class folder and are recognised by suffix (``core.films.SUPPORTED_SUFFIXES``); hidden files
and folders (names starting with ``.``, such as ``.DS_Store``) are not films. Every film's
header is probed (``core.films.probe_film``: the file is read once, nothing is decoded), so
an empty file, a text file named ``.png``, a FIFO or a header over the pixel limit is left
out with a warning naming it, and ``data summary`` counts only films that can be read. A
class folder without a readable film is skipped with a warning, since a class with no
examples cannot be learned. A DICOM's laterality and view position become the record's
``side`` and ``view``.

Patients: films of one woman must not be split between training and test, so two rules
group them (options ``patient_pattern`` and ``patients_csv``, declared in
``core.data.options``):

* ``patient_pattern``: a regular expression searched in each film's file name whose named
  group ``patient`` is the patient id (CBIS-DDSM's ``^(?P<patient>P_\\d+)_``); a film whose
  name does not match stays its own patient, and a warning names it;
* ``patients.csv`` in the root (or the file ``patients_csv`` names, relative to the root),
  columns ``file`` (or ``film``) and ``patient``. ``file`` is the film's path relative to the
  root (``CALC/case7/left.png``) or, when that name is unique in the collection, its bare
  file name (``left.png``). Rows that name no film, or a film a second time, are reported
  and ignored. Its rows win over the pattern for the films they name.

Without either, every film is its own patient, as before, and a warning says so and how to
set a rule. Film ids are the films' paths relative to the root, unique by construction.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from core.data.options import FOLDER_OPTIONS, resolve_options
from core.data.records import Dataset, FilmRecord
from core.errors import BadAnnotationError, BadConfigError, BadDatasetError, BadFilmError
from core.films import SUPPORTED_SUFFIXES, FilmInfo, check_pixel_limit, probe_film

#: Film headers kept between loads (``_probe_unchanged``): a FilmInfo is a few hundred bytes.
PROBES_KEPT = 100_000

PATIENTS_FILE = "patients.csv"
#: Films named in full in a summarising warning; the rest are counted.
NAMED = 10
NO_PATIENT_RULE = (
    "every film is counted as its own patient (no patients.csv and no patient_pattern), so "
    "one woman's films may fall on both sides of a split: set a rule with --patient-pattern "
    "(a regular expression on the file name with a group named patient, e.g. "
    "'^(?P<patient>P_\\d+)_' for CBIS-DDSM) or a patients.csv in the folder (columns "
    "file,patient)")


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
    if "film" not in table.columns and "file" in table.columns:
        table = table.rename(columns={"file": "film"})  # the name and the old one
    absent = [c for c in ("film", "patient") if c not in table.columns]
    if absent:
        raise BadAnnotationError(path, f"lacks column(s) {', '.join(absent)} "
                                       "(expected file (or film), patient)")
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


def _named(items: list[str]) -> str:
    return " ".join(items[:NAMED]) + (f" and {len(items) - NAMED} more"
                                      if len(items) > NAMED else "")


def _probe(path: Path) -> FilmInfo:
    """The film's header, refused as ``read_film`` would refuse it (pixel limit included),
    so nothing that training or ``data summary`` cannot read is counted as a film."""
    try:
        stat = path.stat()
    except OSError as error:
        raise BadFilmError(path, f"cannot be read ({error.strerror or error})") from None
    info = _probe_unchanged(path, stat.st_size, stat.st_mtime_ns)
    check_pixel_limit(info, str(path))  # outside the cache: the limit is the caller's setting
    return info


@functools.lru_cache(maxsize=PROBES_KEPT)
def _probe_unchanged(path: Path, size: int, mtime_ns: int) -> FilmInfo:
    """``probe_film``, kept per (path, size, modification time): the app loads a collection
    on every visit to a page, and a film that has not changed need not be opened again
    (10,000 DICOM headers take tens of seconds). A refused film is not kept: its error is
    raised again, and a film rewritten since gets a new key."""
    del size, mtime_ns  # the key only
    return probe_film(path)


def _readable(films: list[Path]) -> tuple[dict[Path, FilmInfo], list[str]]:
    """Each readable film's header, and one warning per film left out, naming it."""
    infos: dict[Path, FilmInfo] = {}
    warnings = []
    for path in films:
        try:
            infos[path] = _probe(path)
        except BadFilmError as error:
            warnings.append(f"{error}; film left out")
    return infos, warnings


def _compile_pattern(pattern: str | None) -> re.Pattern[str] | None:
    """The patient rule, checked before any file is read: it must compile and name a group
    ``patient``, or the error says what is wrong (a typed option must not be ignored)."""
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise BadConfigError(f"patient_pattern {pattern!r} is not a regular expression "
                             f"({error})") from None
    if "patient" not in compiled.groupindex:
        raise BadConfigError(f"patient_pattern {pattern!r} has no group named patient; "
                             "write it as (?P<patient>...)")
    return compiled


def _patients_by_pattern(pattern: re.Pattern[str], film_ids: list[str],
                         ) -> tuple[dict[str, str], list[str]]:
    """Film id -> the ``patient`` group found in its file name; films it misses stay their
    own patient, and one warning names them."""
    patients, unmatched = {}, []
    for film_id in film_ids:
        found = pattern.search(PurePosixPath(film_id).name)
        patient = found.group("patient") if found else None
        if patient:
            patients[film_id] = patient
        else:
            unmatched.append(film_id)
    if not unmatched:
        return patients, []
    return patients, [(f"{len(unmatched)} film(s) do not match patient_pattern "
                      f"{pattern.pattern!r} and are each counted as their own patient: "
                      f"{_named(unmatched)}")]


def _patients_table(root: Path, name: str | None) -> Path | None:
    """The patients CSV to read: the one named (which must exist), else ``patients.csv``
    in the root when there is one."""
    if name is None:
        default = root / PATIENTS_FILE
        return default if default.is_file() else None
    path = root / name
    if not path.is_file():
        raise BadDatasetError(f"{path}: no such file (patients_csv)")
    return path


def _patients(root: Path, pattern: re.Pattern[str] | None, table_name: str | None,
              film_ids: list[str]) -> tuple[dict[str, str], list[str]]:
    """Film id -> patient id by the rules given (the CSV's rows over the pattern), with
    the warnings they raised; the rule-less default warns that it is one."""
    table = _patients_table(root, table_name)
    if pattern is None and table is None:
        return {}, [NO_PATIENT_RULE]
    patients, warnings = _read_patients(table, film_ids) if table else ({}, [])
    if pattern is not None:
        rest = [film_id for film_id in film_ids if film_id not in patients]
        matched, more = _patients_by_pattern(pattern, rest)
        patients.update(matched)
        warnings += more
    return patients, warnings


def _dicom_warnings(infos: dict[Path, FilmInfo], root: Path) -> list[str]:
    """The probed films' doubts (a DICOM modality other than MG), one line per kind."""
    by_text: dict[str, list[str]] = {}
    for path, info in infos.items():
        for text in info.warnings:
            by_text.setdefault(text, []).append(path.relative_to(root).as_posix())
    return [f"{len(names)} film(s): {text}: {_named(names)}" for text, names in by_text.items()]


def load(root: Path, **options: Any) -> Dataset:
    """Load ``root/<class>/<films>``, probing every film; options: ``FOLDER_OPTIONS``."""
    values = resolve_options("folder", FOLDER_OPTIONS, options)
    pattern = _compile_pattern(values["patient_pattern"])  # fails before files are read
    root = Path(root)
    class_films: dict[str, list[Path]] = {}
    infos: dict[Path, FilmInfo] = {}
    warnings: list[str] = []
    skipped_files = 0
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        films, others = _films_below(entry)
        skipped_files += others
        readable, bad = _readable(films)
        warnings += bad
        infos.update(readable)
        if readable:
            class_films[entry.name] = list(readable)
        else:
            warnings.append(f"class folder {entry} holds no " + ("readable " if films else "")
                            + "film; skipped")
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
    warnings += _dicom_warnings(infos, root)

    classes = tuple(sorted(class_films))
    films = [(label, path, path.relative_to(root).as_posix())
             for label, paths in class_films.items() for path in paths]
    patients, more = _patients(root, pattern, values["patients_csv"],
                               [film_id for _, _, film_id in films])
    warnings += more
    records = [FilmRecord(film_id=film_id, patient_id=patients.get(film_id, film_id),
                          label=label, classes=classes, path=path, side=infos[path].side,
                          view=infos[path].view)
               for label, path, film_id in films]
    return Dataset("folder", root, classes, records, warnings=warnings)
