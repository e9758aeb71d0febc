"""The MIAS (mini-MIAS) loader: ``Info.txt`` plus ``mdbNNN`` films into a ``Dataset``.

``Info.txt`` comes in two layouts: the whole original MIAS README (prose, no header, the
literal ``*NOTE 3*`` tokens) and the Kaggle table (a ``REFNUM ...`` header, no prose). Both
are read with one rule: a line is an annotation row exactly when its first
whitespace-separated token is ``mdbNNN``; everything else is prose and is ignored. A row that
breaks the format is skipped with a warning naming its line, never a crash, because one bad
line should not cost the user the other 329.

Where things are found (decided here, see ``load``):

* ``Info.txt`` (any letter case) at any depth below the root. If several exist, the
  shallowest is used and a warning names the others; two at the same shallowest depth are
  ambiguous and raise ``BadDatasetError``, since guessing would silently change the labels.
* Films at any depth: ``mdbNNN`` with suffix ``.pgm`` or a converted copy
  (``.png``, ``.tif``, ``.tiff``, ``.jpg``, ``.jpeg``). When one film exists several times,
  lossless copies win (``.pgm`` first, then ``.png``, ``.tif``, ``.tiff``), then the
  shallowest path, and a warning lists the duplicates.

Coordinates: MIAS gives ``x, y`` with the origin at the bottom-left of its 1024 x 1024
frame. Records hold ``(row, col)`` from the top-left with pixel centres at integers, so in
that frame ``row = 1023 - y`` and ``col = x``: ``Transform.flip_vertical`` of the frame maps
the point ``(y, x)`` there. A film of another size (a user's downscaled copy, synthetic films)
gets the lesion mapped on through ``Transform.resize((1024, 1024), film_shape)``, recorded in
``extra``.
"""

from __future__ import annotations

import codecs
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.options import resolve_options
from core.data.records import (
    MIAS_CLASSES,
    NORMAL_CLASS,
    SEVERITIES,
    SYNTHETIC_MARKER,
    TISSUES,
    Dataset,
    FilmRecord,
)
from core.errors import BadAnnotationError, BadDatasetError, BadFilmError
from core.films import check_pixel_limit, probe_film
from core.geometry import Lesion, Transform

INFO_NAME = "info.txt"
#: The frame Info.txt's coordinates refer to.
MIAS_FRAME: tuple[int, int] = (1024, 1024)
#: Info.txt's points, read as ``(y, x)`` with the origin at the frame's bottom-left, onto the
#: frame's ``(row, col)`` from the top-left (and back: a flip is its own inverse).
INFO_TO_FRAME = Transform.flip_vertical(MIAS_FRAME)
#: Film suffixes in order of preference when one film exists in several copies.
FILM_SUFFIXES: tuple[str, ...] = (".pgm", ".png", ".tif", ".tiff", ".jpg", ".jpeg")

_REFNUM = re.compile(r"mdb[0-9]{3}")
_FILM_STEM = re.compile(r"mdb[0-9]{3}", re.IGNORECASE)
_NUMBER = re.compile(r"[0-9]+")
_NOTE = re.compile(r"\*NOTE\s*\d+\*")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class InfoRow:
    """One usable annotation row of Info.txt, still in MIAS's own coordinates.

    ``x``, ``y`` and ``radius`` are all ``None`` when the row gives no location (mdb059,
    the ``*NOTE 3*`` rows, every NORM row).
    """

    line: int
    refnum: str
    tissue: str
    kind: str
    severity: str | None = None
    x: int | None = None
    y: int | None = None
    radius: int | None = None

    @property
    def fields(self) -> tuple[Any, ...]:
        """Everything but the line number: what makes two rows duplicates."""
        return (self.refnum, self.tissue, self.kind, self.severity, self.x, self.y, self.radius)


class _RowFault(ValueError):
    """Why one line is not a usable row; becomes a warning, never escapes this module."""


# -- parsing ----------------------------------------------------------------------------------
def parse_info(text: str, name: str) -> tuple[list[InfoRow], list[str]]:
    """Parse the text of an Info.txt into its usable rows and one warning per skipped line.

    Pure (no file access) so that it can be tested on any text. ``name`` only labels the
    messages. Raises ``BadAnnotationError`` when no line at all is a usable row.
    """
    rows: list[InfoRow] = []
    warnings: list[str] = []
    seen: dict[tuple[Any, ...], int] = {}
    first_of_film: dict[str, InfoRow] = {}
    candidates = 0
    for number, line in enumerate(_LINE_BREAK.split(text.removeprefix("\ufeff")), start=1):
        tokens = line.split()
        if not tokens or not tokens[0].lower().startswith("mdb"):
            continue
        candidates += 1
        try:
            row = _parse_row(number, tokens)
            _check_consistent(row, first_of_film.get(row.refnum), seen.get(row.fields))
        except _RowFault as fault:
            warnings.append(f"{name} line {number}: {fault}; row skipped")
            continue
        seen[row.fields] = number
        first_of_film.setdefault(row.refnum, row)
        rows.append(row)
    if not rows:
        detail = (f"none of its {candidates} mdbNNN lines is usable" if candidates
                  else "no annotation rows (lines starting with mdbNNN)")
        raise BadAnnotationError(name, detail)
    return rows, warnings


def _parse_row(number: int, tokens: list[str]) -> InfoRow:
    """``REFNUM BG CLASS [SEVERITY [X Y RADIUS | *NOTE 3*]]`` -> ``InfoRow``."""
    refnum = tokens[0]
    if not _REFNUM.fullmatch(refnum):
        raise _RowFault(f"{refnum!r} is not a MIAS reference number (mdbNNN)")
    if len(tokens) < 3:
        raise _RowFault(f"{len(tokens)} fields, expected at least REFNUM BG CLASS")
    tissue, kind = tokens[1], tokens[2]
    if tissue not in TISSUES:
        raise _RowFault(f"unknown background tissue {tissue!r} (expected {'/'.join(TISSUES)})")
    if kind not in MIAS_CLASSES:
        raise _RowFault(f"unknown class {kind!r} (expected one of {' '.join(MIAS_CLASSES)})")
    rest = tokens[3:]
    if kind == NORMAL_CLASS:
        if rest:
            raise _RowFault(f"a NORM row has extra fields {' '.join(rest)!r}")
        return InfoRow(number, refnum, tissue, kind)
    if not rest:
        raise _RowFault(f"class {kind} without a severity")
    severity, location = rest[0], rest[1:]
    if severity not in SEVERITIES:
        raise _RowFault(f"unknown severity {severity!r} (expected B or M)")
    if not location or _NOTE.fullmatch(" ".join(location)):
        return InfoRow(number, refnum, tissue, kind, severity)
    if len(location) != 3:
        raise _RowFault(f"{len(location)} location fields, expected X Y RADIUS")
    if not all(_NUMBER.fullmatch(token) for token in location):
        raise _RowFault(f"X Y RADIUS {' '.join(location)!r} are not whole numbers")
    x, y, radius = (int(token) for token in location)
    if not (0 <= x < MIAS_FRAME[1] and 0 <= y < MIAS_FRAME[0]):
        raise _RowFault(f"centre ({x}, {y}) lies outside the 1024 x 1024 MIAS frame")
    if radius <= 0:
        raise _RowFault(f"radius {radius} is not positive")
    return InfoRow(number, refnum, tissue, kind, severity, x, y, radius)


def _check_consistent(row: InfoRow, first: InfoRow | None, duplicate_of: int | None) -> None:
    if duplicate_of is not None:
        raise _RowFault(f"duplicate of line {duplicate_of}")
    if first is None:
        return
    if (row.kind, row.tissue) != (first.kind, first.tissue):
        raise _RowFault(f"{row.refnum} is {row.tissue} {row.kind} here but {first.tissue} "
                        f"{first.kind} on line {first.line}")


def is_synthetic(text: str) -> bool:
    """Whether an Info.txt was written for synthetic films (its first words say so)."""
    for line in _LINE_BREAK.split(text.removeprefix("\ufeff")):
        if line.strip():
            return line.strip().startswith(SYNTHETIC_MARKER)
    return False


# -- finding files ------------------------------------------------------------------------------
def _walk(root: Path) -> tuple[list[Path], dict[str, list[Path]]]:
    """One pass over the tree: every Info.txt, and every film file grouped by refnum."""
    infos: list[Path] = []
    films: dict[str, list[Path]] = defaultdict(list)
    for folder, _dirs, names in os.walk(root):
        for file_name in names:
            stem, suffix = os.path.splitext(file_name)
            if file_name.lower() == INFO_NAME:
                infos.append(Path(folder, file_name))
            elif suffix.lower() in FILM_SUFFIXES and _FILM_STEM.fullmatch(stem):
                films[stem.lower()].append(Path(folder, file_name))
    return infos, films


def _choose_info(root: Path, infos: list[Path]) -> tuple[Path, list[str]]:
    if not infos:
        raise BadDatasetError(f"{root}: no Info.txt found (MIAS needs its annotation file)")
    infos.sort(key=lambda p: (len(p.relative_to(root).parts), str(p)))
    depth = len(infos[0].relative_to(root).parts)
    tied = [p for p in infos if len(p.relative_to(root).parts) == depth]
    if len(tied) > 1:
        raise BadDatasetError(f"{root}: several Info.txt files at the same depth, cannot tell "
                              f"which one to use: {', '.join(str(p) for p in tied)}")
    warnings = [] if len(infos) == 1 else [
        f"using {infos[0]}; ignored the deeper {', '.join(str(p) for p in infos[1:])}"]
    return infos[0], warnings


def _choose_films(root: Path, films: dict[str, list[Path]]) -> tuple[dict[str, Path], list[str]]:
    chosen: dict[str, Path] = {}
    duplicates: list[str] = []

    def preference(path: Path) -> tuple[int, int, str]:
        return (FILM_SUFFIXES.index(path.suffix.lower()), len(path.relative_to(root).parts),
                str(path))

    for refnum, paths in sorted(films.items()):
        paths.sort(key=preference)
        chosen[refnum] = paths[0]
        if len(paths) > 1:
            others = ", ".join(str(p.relative_to(root)) for p in paths[1:])
            duplicates.append(f"{refnum}: {paths[0].relative_to(root)} over {others}")
    warnings = [f"{len(duplicates)} film(s) found in several copies; using "
                + "; ".join(duplicates)] if duplicates else []
    return chosen, warnings


# -- records --------------------------------------------------------------------------------------
def _pair(refnum: str) -> tuple[str, str]:
    """MIAS films come in left/right pairs: mdb001 + mdb002 is patient P001; even is left."""
    number = int(refnum[3:])
    return f"P{(number + 1) // 2:03d}", "L" if number % 2 == 0 else "R"


def _lesion(row: InfoRow, to_film: Transform | None) -> Lesion:
    """The row's lesion in film pixels: flipped onto the frame's top-left origin first, then,
    for a film that is not 1024 x 1024, mapped onto the film (two steps rather than one
    composed map, so frame positions stay exact integers)."""
    if row.x is None or row.y is None or row.radius is None:
        return Lesion(None, None, row.severity, row.kind)
    frame_row, frame_col = INFO_TO_FRAME.forward((row.y, row.x))
    lesion = Lesion((float(frame_row), float(frame_col)), float(row.radius), row.severity,
                    row.kind)
    return lesion if to_film is None else to_film.map_lesion(lesion)


def _record(refnum: str, rows: list[InfoRow], path: Path, synthetic: bool) -> FilmRecord:
    shape = probe_film(path)
    check_pixel_limit(shape, str(path))
    film_shape = (shape.rows, shape.cols)
    extra: dict[str, Any] = {"info_lines": [row.line for row in rows],
                             "film_shape": film_shape, "source_format": shape.source_format}
    to_film = None
    if film_shape != MIAS_FRAME:
        to_film = Transform.resize(MIAS_FRAME, film_shape)
        extra["from_mias_frame"] = to_film.to_dict()
    kind = rows[0].kind
    abnormal = kind != NORMAL_CLASS
    severity = ("M" if any(row.severity == "M" for row in rows) else "B") if abnormal else None
    patient, side = _pair(refnum)
    return FilmRecord(
        film_id=refnum, patient_id=patient, label=kind, classes=MIAS_CLASSES, path=path,
        side=side, view="MLO", tissue=rows[0].tissue, severity=severity,
        lesions=tuple(_lesion(row, to_film) for row in rows) if abnormal else (),
        synthetic=synthetic, rows=len(rows), extra=extra)


def _read_text(path: Path) -> str:
    """Info.txt is ASCII, but users re-save it: accept UTF-16 with a BOM (Windows "Unicode
    text") and let stray non-UTF-8 bytes in the prose pass as replacement characters."""
    if not path.is_file():  # a FIFO named Info.txt would block the read for ever
        raise BadAnnotationError(path, "is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadAnnotationError(path, f"cannot be read ({error.strerror})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8", errors="replace")


def load(root: Path, **options: Any) -> Dataset:
    """Load a MIAS folder. MIAS has no options; any given is a mistake and says so."""
    resolve_options("mias", (), options)  # it takes none: any given is a mistake
    root = Path(root)
    infos, film_files = _walk(root)
    info_path, warnings = _choose_info(root, infos)
    text = _read_text(info_path)
    rows, row_warnings = parse_info(text, str(info_path))
    warnings += row_warnings
    films, film_warnings = _choose_films(root, film_files)
    warnings += film_warnings
    synthetic = is_synthetic(text)

    by_film: dict[str, list[InfoRow]] = defaultdict(list)
    for row in rows:
        by_film[row.refnum].append(row)
    missing = sorted(set(by_film) - set(films))
    if missing:
        warnings.append(f"{len(missing)} film(s) listed in Info.txt are absent: "
                        f"{' '.join(missing)}")
    unlisted = sorted(set(films) - set(by_film))
    if unlisted:
        warnings.append(f"{len(unlisted)} film(s) have no row in Info.txt and are left out: "
                        f"{' '.join(unlisted)}")

    records = []
    for refnum in sorted(set(by_film) & set(films)):
        try:
            records.append(_record(refnum, by_film[refnum], films[refnum], synthetic))
        except BadFilmError as error:
            warnings.append(f"{error}; film left out")
    return Dataset("mias", root, MIAS_CLASSES, records, missing=missing, warnings=warnings,
                   synthetic=synthetic)
