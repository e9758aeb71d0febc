"""Bad annotations give warnings, never a crash, and an account of what was skipped.

tests/data/test_mias.py tries each Info.txt quirk on its own through ``parse_info``; here
they are all in one file, read from disk in every encoding a user's editor may save, and
followed to what ``Dataset.summary()`` and the CLI report. The CBIS-DDSM CSVs get the same
treatment: missing columns, paths to nowhere, duplicates, damaged lines, foreign files.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.data import load_dataset
from core.data.cbis import REQUIRED, read_csv
from core.errors import BadAnnotationError
from film_cases import pgm

#: (line text, why it is skipped or None when usable); line numbers are list index + 1.
INFO_LINES = [
    ("MIAS MiniMammographic Database, re-saved by a user", None),
    ("REFNUM BG CLASS SEVERITY X Y RADIUS", None),
    ("mdb001 G CIRC B 535 425 197", None),
    ("mdb002 G NORM", None),
    ("mdb003 D BLOB B 10 10 10", "unknown class 'BLOB'"),
    ("mdb004 F CIRC B 12x 425 19", "are not whole numbers"),
    ("mdb005 F CIRC B 535 425", "2 location fields"),
    ("mdb006 F", "2 fields, expected at least REFNUM BG CLASS"),
    ("mdb007 F CALC", "without a severity"),
    ("mdb008 Q NORM", "unknown background tissue 'Q'"),
    ("mdb009\tF\tCALC\tM\t*NOTE 3*", None),
    ("mdb001 G CIRC B 535 425 197", "duplicate of line 3"),
    ("mdb010 G NORM   ", None),
    ("mdb011 G CIRC B 1024 5 5", "outside the 1024 x 1024 MIAS frame"),
    ("mdb012 G NORM B", "extra fields"),
    ("mdb002 D NORM", "is D NORM here but G NORM on line 4"),
    ("mdb13 G NORM", "'mdb13' is not a MIAS reference number"),
    ("mdb014 G NORM", None),
    ("notes: mdb015 had a label on it \xe9 \x00", None),
]
USABLE = {"mdb001", "mdb002", "mdb009", "mdb010", "mdb014"}
SKIPPED = [(number, why) for number, (_, why) in enumerate(INFO_LINES, start=1) if why]
LINE_ENDINGS = {"lf": ["\n"], "crlf": ["\r\n"], "cr": ["\r"], "mixed": ["\r\n", "\n", "\r"]}
ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 with BOM": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-16 with BOM (Windows Unicode)": lambda text: text.encode("utf-16"),
    "latin-1": lambda text: text.encode("latin-1"),
}


def _info_text(endings: list[str]) -> str:
    return "".join(line + endings[i % len(endings)] for i, (line, _) in enumerate(INFO_LINES))


def _films(root: Path, refnums: list[str]) -> None:
    for refnum in refnums:
        (root / f"{refnum}.pgm").write_bytes(pgm(np.full((16, 16), 40, np.uint8)))


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("endings", sorted(LINE_ENDINGS))
def test_one_info_txt_with_every_fault(tmp_path: Path, encoding: str, endings: str) -> None:
    """Every bad line is skipped with one warning naming its line and fault, whatever the
    encoding and line endings; the good lines all become films."""
    (tmp_path / "Info.txt").write_bytes(ENCODINGS[encoding](_info_text(LINE_ENDINGS[endings])))
    _films(tmp_path, [f"mdb{n:03d}" for n in range(1, 16)])
    data = load_dataset("mias", tmp_path)
    assert {r.film_id for r in data.records} == USABLE
    info = tmp_path / "Info.txt"
    row_warnings = [w for w in data.warnings if w.startswith(str(info))]
    assert len(row_warnings) == len(SKIPPED)
    for warning, (number, why) in zip(row_warnings, SKIPPED):
        assert warning.startswith(f"{info} line {number}: ") and why in warning, warning
        assert warning.endswith("; row skipped")
    (unlisted,) = [w for w in data.warnings if w not in row_warnings]
    assert unlisted.startswith("10 film(s) have no row in Info.txt and are left out")
    summary = data.summary()
    assert (summary["films"], summary["rows"]) == (len(USABLE), len(USABLE))
    assert summary["warnings"] == data.warnings and summary["missing"] == []
    assert summary["lesions_located"] == 1  # mdb001's; mdb009 is a *NOTE 3* row


def test_the_cli_reports_the_skipped_rows_and_fails_only_when_nothing_is_usable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Info.txt").write_text(_info_text(["\r\n"]))
    _films(tmp_path, sorted(USABLE))
    assert main(["data", "summary", "--dataset", "mias", "--root", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["films"] == len(USABLE) and len(summary["warnings"]) == len(SKIPPED)

    # Alone, a duplicate or a disagreeing row would be usable: leave those out.
    bad_alone = [line for line, why in INFO_LINES if why and "line" not in why]
    (tmp_path / "Info.txt").write_text("".join(line + "\n" for line in bad_alone))
    assert main(["data", "summary", "--dataset", "mias", "--root", str(tmp_path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line == (f"error: {tmp_path / 'Info.txt'}: none of its {len(bad_alone)} mdbNNN "
                    "lines is usable")


def test_info_txt_that_is_not_text_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "Info.txt").write_bytes(pgm(np.zeros((40, 40), np.uint8)))
    _films(tmp_path, ["mdb001"])
    with pytest.raises(BadAnnotationError, match="no annotation rows") as caught:
        load_dataset("mias", tmp_path)
    assert caught.value.path == str(tmp_path / "Info.txt")


# -- CBIS-DDSM ----------------------------------------------------------------------------------
CALC_TRAIN = "calc_case_description_train_set.csv"
CALC_TEST = "calc_case_description_test_set.csv"


@pytest.fixture
def rows(cbis_root: Path) -> pd.DataFrame:
    return pd.read_csv(cbis_root / CALC_TRAIN, dtype=str, keep_default_na=False).head(6)


def _write_csv(path: Path, table: pd.DataFrame, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table.to_csv(index=False, **options))
    return path


def test_cbis_csv_variants_are_read_or_skipped_with_one_line(rows: pd.DataFrame,
                                                             tmp_path: Path) -> None:
    """Each damaged CSV gives one warning line naming it (never a crash, never a second
    line); an Excel re-save (BOM, CRLF) reads as the original."""
    path = tmp_path / CALC_TRAIN
    text = rows.to_csv(index=False)
    for data in (codecs.BOM_UTF8 + text.encode(), text.replace("\n", "\r\n").encode()):
        path.write_bytes(data)
        parsed, warnings = read_csv(path, REQUIRED)
        assert len(parsed) == len(rows) and warnings == []
    foreign = {
        "empty": b"",
        "binary": bytes(range(256)) * 8,
        "semicolons": rows.to_csv(index=False, sep=";").encode(),
        "a film": pgm(np.zeros((8, 8), np.uint8)),
    }
    for kind, data in foreign.items():
        path.write_bytes(data)
        parsed, warnings = read_csv(path, REQUIRED)
        assert parsed == [], kind
        (warning,) = warnings
        assert warning.startswith(f"{path}: ") and warning.endswith("; skipped"), kind
        assert "\n" not in warning


def test_cbis_duplicate_and_damaged_rows_are_skipped_and_counted(rows: pd.DataFrame,
                                                                 tmp_path: Path) -> None:
    """Faults found: a duplicated row made the film's abnormality count twice, and one line
    with an extra cell threw the whole file away (with a two-line message)."""
    text = pd.concat([rows, rows.iloc[[0]]]).to_csv(index=False)
    extra = ",".join(["x"] * (len(rows.columns) + 3))
    path = tmp_path / CALC_TRAIN
    path.write_text(text + extra + "\n")
    parsed, warnings = read_csv(path, REQUIRED)
    assert len(parsed) == len(rows)
    (warning,) = warnings
    film = rows.loc[0, "image file path"].split("/")[0]
    assert warning == (f"{path}: 2 row(s) skipped: row {len(rows) + 1}: duplicate of row 1 "
                       f"(film {film}, abnormality {rows.loc[0, 'abnormality id']}); "
                       f"a line with {len(rows.columns) + 3} cells where the header has "
                       f"{len(rows.columns)}")


def test_cbis_missing_columns_and_absent_images_keep_the_other_files(
        rows: pd.DataFrame, cbis_root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cbis"
    _write_csv(root / CALC_TRAIN, rows.drop(columns=["pathology"]))
    test_rows = pd.read_csv(cbis_root / CALC_TEST, dtype=str, keep_default_na=False).head(3)
    _write_csv(root / "csv" / CALC_TEST, test_rows)
    films = {path.split("/")[0] for path in test_rows["image file path"]}
    assert main(["data", "summary", "--dataset", "cbis", "--root", str(root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["films"] == 0 and summary["missing"] == sorted(films)
    assert summary["warnings"][0].startswith(f"{len(films)} film(s) named in the CSVs have no "
                                             f"image below {root}")
    assert f"{root / CALC_TRAIN}: lacks column(s) pathology; skipped" in summary["warnings"]

    (root / "csv" / CALC_TEST).unlink()
    assert main(["data", "summary", "--dataset", "cbis", "--root", str(root), "--json"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no usable CBIS-DDSM description CSV" in line and "lacks column(s) pathology" in line


def test_a_damaged_patients_csv_is_one_line_on_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Fault found: pandas' parser message ends in a line break, so the CLI's one-line error
    for a damaged class-folder ``patients.csv`` came out on two lines."""
    (tmp_path / "CALC").mkdir()
    (tmp_path / "CALC" / "a.png").write_bytes(pgm(np.zeros((4, 4), np.uint8)))
    (tmp_path / "patients.csv").write_bytes(b"film,patient\nCALC/a.png,W1\nx,y,z\n")
    assert main(["data", "summary", "--dataset", "folder", "--root", str(tmp_path),
                 "--json"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'patients.csv'}: cannot be read as CSV (")

