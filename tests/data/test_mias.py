"""MIAS loader: the real folder's counts, every Info.txt quirk on its own, and parse_info's
promises checked on generated text."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data import load_dataset
from core.data.mias import InfoRow, load, parse_info
from core.data.records import MIAS_CLASSES, SYNTHETIC_MARKER, TISSUES
from core.errors import BadAnnotationError, BadConfigError, BadDatasetError
from core.geometry import Transform

ABSENT = ["mdb025", "mdb026", "mdb031", "mdb032", "mdb047", "mdb048", "mdb051", "mdb052", "mdb055", "mdb056", "mdb057", "mdb058", "mdb061", "mdb062", "mdb069", "mdb070", "mdb079", "mdb080", "mdb083", "mdb084", "mdb095", "mdb096", "mdb105", "mdb106", "mdb121", "mdb122", "mdb123", "mdb124", "mdb131", "mdb132", "mdb145", "mdb146", "mdb149", "mdb150", "mdb169", "mdb170", "mdb173", "mdb174", "mdb175", "mdb176", "mdb183", "mdb184", "mdb201", "mdb202", "mdb209", "mdb210", "mdb219", "mdb220", "mdb225", "mdb226", "mdb229", "mdb230", "mdb233", "mdb234", "mdb243", "mdb244", "mdb249", "mdb250", "mdb253", "mdb254", "mdb279", "mdb280", "mdb307", "mdb308", "mdb311", "mdb312"]

PROSE = """The Mammographic Image Analysis Society database v1.21

1st column: MIAS database reference number.
\t2nd column: Character of background tissue:
   Coordinate system origin is the bottom-left corner.
=================================================================
"""


def _film(path: Path, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((size, size), 7, np.uint8))
    return path


def _folder(root: Path, info: str | bytes, films: tuple[str, ...] = (), size: int = 16,
            suffix: str = ".png") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = info.encode() if isinstance(info, str) else info
    (root / "Info.txt").write_bytes(data)
    for refnum in films:
        _film(root / f"{refnum}{suffix}", size)
    return root


def _by_id(dataset) -> dict:
    return {record.film_id: record for record in dataset.records}


# -- the real mini-MIAS folder ------------------------------------------------------------------
@pytest.fixture(scope="module")
def real(mias_root: Path):
    return load_dataset("mias", mias_root)


def test_real_counts_match_the_readme(real) -> None:
    summary = real.summary()
    assert (summary["films"], summary["rows"], summary["patients"]) == (256, 260, 128)
    assert summary["classes"] == {"ARCH": 15, "ASYM": 12, "CALC": 19, "CIRC": 18, "MISC": 11,
                                  "NORM": 166, "SPIC": 15}
    assert summary["severity"] == {"B": 49, "M": 41}
    assert summary["tissue"] == {"D": 92, "F": 84, "G": 80}
    assert summary["synthetic"] is False
    assert real.classes == MIAS_CLASSES and real.records[0].classes.index("NORM") == 5


def test_real_absent_films_are_missing_with_one_warning(real) -> None:
    assert real.missing == ABSENT
    assert len(real.warnings) == 1
    assert "66 film(s)" in real.warnings[0] and "mdb312" in real.warnings[0]


def test_real_quirky_films(real) -> None:
    films = _by_id(real)
    mixed = films["mdb144"]
    assert mixed.severity == "M" and mixed.rows == 2
    assert [lesion.severity for lesion in mixed.lesions] == ["B", "M"]
    for refnum in ("mdb059", "mdb216", "mdb245"):
        assert films[refnum].lesions and not films[refnum].located_lesions
    assert films["mdb059"].label == "CIRC" and films["mdb216"].label == "CALC"
    first = films["mdb001"]  # mdb001 G CIRC B 535 425 197
    assert first.lesions[0].center == (598.0, 535.0) and first.lesions[0].radius == 197.0
    assert (first.patient_id, first.side, first.view) == ("P001", "R", "MLO")
    assert films["mdb002"].patient_id == "P001" and films["mdb002"].side == "L"
    assert films["mdb003"].lesions == () and films["mdb003"].severity is None
    assert first.path.name == "mdb001.png" and first.extra["film_shape"] == (1024, 1024)


# -- Info.txt quirks, one each ---------------------------------------------------------------------
def test_prose_without_header(tmp_path: Path) -> None:
    text = PROSE + "mdb001 G CIRC B 535 425 197\nmdb002 G NORM \n\n" + "=" * 65 + "\n"
    data = load(_folder(tmp_path, text, ("mdb001", "mdb002")))
    assert [r.label for r in data.records] == ["CIRC", "NORM"] and data.warnings == []


def test_kaggle_header_layout() -> None:
    text = ("REFNUM BG CLASS SEVERITY X Y RADIUS\nmdb001 G CIRC B 535 425 197\n"
            "mdb216 D CALC M\nmdb233 G CALC M \n")
    rows, warnings = parse_info(text, "Info.txt")
    assert [r.refnum for r in rows] == ["mdb001", "mdb216", "mdb233"] and warnings == []
    assert rows[1].x is None and rows[2].severity == "M"


def test_note_3_rows_have_no_location(tmp_path: Path) -> None:
    text = "mdb216 D CALC M *NOTE 3* \nmdb245 F CALC M *NOTE 3*\n"
    data = load(_folder(tmp_path, text, ("mdb216", "mdb245")))
    assert data.warnings == []
    for record in data.records:
        assert record.severity == "M" and record.lesions[0].center is None
        assert record.lesions[0].radius is None and record.lesions[0].kind == "CALC"


def test_several_rows_of_one_film_aggregate(tmp_path: Path) -> None:
    text = ("mdb226 D CALC B 287 610 7\nmdb226 D CALC B 329 550 25\n"
            "mdb226 D CALC B 531 721 8\n")
    (record,) = load(_folder(tmp_path, text, ("mdb226",), size=1024)).records
    assert record.rows == 3 and len(record.located_lesions) == 3
    assert record.lesions[1].center == (1023 - 550, 329)


def test_mixed_severity_counts_as_malignant(tmp_path: Path) -> None:
    text = "mdb144 D MISC B 233 994 29\nmdb144 D MISC M 313 540 27\n"
    (record,) = load(_folder(tmp_path, text, ("mdb144",))).records
    assert record.severity == "M" and [les.severity for les in record.lesions] == ["B", "M"]


def test_trailing_spaces() -> None:
    rows, warnings = parse_info("mdb003 D NORM    \nmdb005 F CIRC B 477 133 30  \t\n", "t")
    assert [(r.refnum, r.radius) for r in rows] == [("mdb003", None), ("mdb005", 30)]
    assert warnings == []


def test_crlf_line_endings() -> None:
    text = "prose\r\nmdb003 D NORM \r\nmdb005 F CIRC B 477 133 30\r\n"
    rows, warnings = parse_info(text, "t")
    assert [(r.line, r.refnum) for r in rows] == [(2, "mdb003"), (3, "mdb005")]
    assert warnings == []


def test_utf8_bom(tmp_path: Path) -> None:
    info = "\ufeffmdb001 G CIRC B 535 425 197\nmdb002 G NORM \n".encode()
    data = load(_folder(tmp_path, info, ("mdb001", "mdb002")))
    assert len(data) == 2 and data.warnings == []


def test_unknown_class_is_skipped_with_its_line(tmp_path: Path) -> None:
    rows, warnings = parse_info("mdb001 G BLOB B 1 2 3\nmdb002 G NORM \n", "Info.txt")
    assert [r.refnum for r in rows] == ["mdb002"]
    assert warnings == [("Info.txt line 1: unknown class 'BLOB' (expected one of ARCH ASYM CALC "
                         "CIRC MISC NORM SPIC); row skipped")]


def test_bad_number_is_skipped_with_its_line() -> None:
    rows, warnings = parse_info("mdb002 G NORM \nmdb001 G CIRC B 53x 425 197\n", "Info.txt")
    assert [r.refnum for r in rows] == ["mdb002"]
    assert len(warnings) == 1 and warnings[0].startswith("Info.txt line 2:")
    assert "whole numbers" in warnings[0]


def test_missing_fields_and_out_of_frame_are_skipped() -> None:
    text = ("mdb001 G CIRC\nmdb003 G CIRC B 535 425\nmdb005 G CIRC B 1024 10 5\n"
            "mdb007 G CIRC B 10 10 0\nmdb009 X NORM \nmdb011 G NORM B\nmdb13 G NORM\n"
            "mdb015 G NORM \n")
    rows, warnings = parse_info(text, "I")
    assert [r.refnum for r in rows] == ["mdb015"]
    assert [w.split(":")[0] for w in warnings] == [f"I line {n}" for n in range(1, 8)]
    assert "without a severity" in warnings[0] and "2 location fields" in warnings[1]
    assert "outside" in warnings[2] and "radius 0" in warnings[3]
    assert "background tissue 'X'" in warnings[4] and "extra fields" in warnings[5]
    assert "'mdb13' is not a MIAS reference number" in warnings[6]


def test_duplicate_identical_row_is_skipped(tmp_path: Path) -> None:
    text = "mdb005 F CIRC B 477 133 30\nmdb005 F CIRC B 477 133 30\n"
    data = load(_folder(tmp_path, text, ("mdb005",)))
    assert data.records[0].rows == 1
    assert data.warnings == [f"{tmp_path / 'Info.txt'} line 2: duplicate of line 1; row skipped"]


def test_rows_disagreeing_on_class_or_tissue_are_skipped() -> None:
    text = ("mdb005 F CIRC B 477 133 30\nmdb005 F SPIC B 500 168 26\n"
            "mdb005 D CIRC B 500 168 26\nmdb005 F CIRC M 500 168 26\n")
    rows, warnings = parse_info(text, "I")
    assert [r.line for r in rows] == [1, 4]
    assert "F SPIC here but F CIRC on line 1" in warnings[0] and warnings[1].startswith("I line 3")


def test_no_usable_row_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BadAnnotationError, match="no annotation rows"):
        parse_info(PROSE, "Info.txt")
    with pytest.raises(BadAnnotationError, match="none of its 1 mdbNNN lines"):
        load(_folder(tmp_path, "mdb001 G BLOB\n", ("mdb001",)))


def test_missing_film_and_film_without_row(tmp_path: Path) -> None:
    text = "mdb001 G NORM \nmdb002 G NORM \nmdb004 F NORM \n"
    data = load(_folder(tmp_path, text, ("mdb001", "mdb003", "mdb004")))
    assert [r.film_id for r in data.records] == ["mdb001", "mdb004"]
    assert data.missing == ["mdb002"]
    assert any("absent: mdb002" in w for w in data.warnings)
    assert any("no row in Info.txt" in w and "mdb003" in w for w in data.warnings)


def test_converted_suffixes_in_nested_folders(tmp_path: Path) -> None:
    root = _folder(tmp_path, "mdb001 G NORM \nmdb002 G NORM \nmdb003 G NORM \nmdb004 G NORM \n")
    _film(root / "a" / "b" / "mdb001.tif")
    _film(root / "c" / "mdb002.JPG")
    _film(root / "mdb003.jpeg")
    _film(root / "d" / "mdb004.png")
    _film(root / "mdb004.pgm")
    (root / "README.md").write_text("mdb005 is not a film")
    (root / "SHA256SUMS").write_text("0 mdb001.png\n")
    data = load(root)
    paths = {r.film_id: r.path.relative_to(root).as_posix() for r in data.records}
    assert paths == {"mdb001": "a/b/mdb001.tif", "mdb002": "c/mdb002.JPG",
                     "mdb003": "mdb003.jpeg", "mdb004": "mdb004.pgm"}
    assert data.missing == []
    (duplicate,) = [w for w in data.warnings if "several copies" in w]
    assert "mdb004: mdb004.pgm over d/mdb004.png" in duplicate


def test_non_1024_films_get_coordinates_mapped(tmp_path: Path) -> None:
    text = "mdb001 G CIRC B 535 425 197\nmdb002 G NORM \n"
    data = load(_folder(tmp_path, text, ("mdb001", "mdb002"), size=256))
    (lesion,) = data.records[0].lesions
    to_film = Transform.resize((1024, 1024), (256, 256))
    assert lesion.center == pytest.approx(tuple(to_film.forward((598.0, 535.0))))
    assert lesion.center == pytest.approx(((598 + 0.5) / 4 - 0.5, (535 + 0.5) / 4 - 0.5))
    assert lesion.radius == pytest.approx(197 / 4)
    assert data.records[0].extra["film_shape"] == (256, 256)
    assert Transform.from_dict(data.records[0].extra["from_mias_frame"]).dst_shape == (256, 256)


def test_synthetic_marker(tmp_path: Path) -> None:
    text = f"\n{SYNTHETIC_MARKER} - not real\nmdb001 G NORM \n"
    data = load(_folder(tmp_path, text, ("mdb001",)))
    assert data.synthetic and data.records[0].synthetic and data.summary()["synthetic"]
    plain = load(_folder(tmp_path / "real", "x\n" + text, ("mdb001",)))
    assert not plain.synthetic


def test_info_txt_location_rules(tmp_path: Path) -> None:
    root = tmp_path / "r"
    _film(root / "films" / "mdb001.png")
    with pytest.raises(BadDatasetError, match="no Info.txt"):
        load(root)
    _folder(root / "deep" / "er", "mdb001 G CIRC B 1 2 3\n")
    (root / "meta").mkdir()
    (root / "meta" / "INFO.TXT").write_text("mdb001 G NORM \n")
    data = load(root)
    assert data.records[0].label == "NORM"
    assert any("ignored the deeper" in w for w in data.warnings)
    (root / "other").mkdir()
    (root / "other" / "info.txt").write_text("mdb001 G NORM \n")
    with pytest.raises(BadDatasetError, match="same depth"):
        load(root)


def test_unknown_option_and_unreadable_film(tmp_path: Path) -> None:
    root = _folder(tmp_path, "mdb001 G NORM \nmdb002 G NORM \n", ("mdb001",))
    (root / "mdb002.png").write_bytes(b"not a png")
    with pytest.raises(BadConfigError, match="no options"):
        load(root, mode="crop")
    data = load(root)
    assert [r.film_id for r in data.records] == ["mdb001"]
    assert any("mdb002.png" in w and "left out" in w for w in data.warnings)


# -- parse_info properties ----------------------------------------------------------------------------
_TOKENS = st.sampled_from(["mdb001", "mdb1", "MDB002", "mdb", "F", "G", "D", "NORM", "CALC",
                           "CIRC", "B", "M", "*NOTE", "3*", "12", "-5", "1023", "99999",
                           "x", " ", "  ", "\t", "\n", "\r\n", "\r", "\ufeff", "\x00", "é"])
_TEXT = st.one_of(st.text(), st.lists(st.one_of(_TOKENS, st.text(max_size=3))).map("".join))


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_parse_info_only_ever_raises_bad_annotation(text: str) -> None:
    try:
        rows, warnings = parse_info(text, "Info.txt")
    except BadAnnotationError:
        return
    assert rows and all(isinstance(w, str) for w in warnings)
    assert all(r.kind in MIAS_CLASSES and r.tissue in TISSUES for r in rows)


_LOCATION = st.one_of(st.none(), st.just("note"),
                      st.tuples(st.integers(0, 1023), st.integers(0, 1023),
                                st.integers(1, 600)))


@st.composite
def _films(draw) -> list[InfoRow]:
    numbers = draw(st.lists(st.integers(0, 999), min_size=1, max_size=8, unique=True))
    rows: list[InfoRow] = []
    for number in sorted(numbers):
        refnum, tissue = f"mdb{number:03d}", draw(st.sampled_from(sorted(TISSUES)))
        kind = draw(st.sampled_from(MIAS_CLASSES))
        if kind == "NORM":
            rows.append(InfoRow(0, refnum, tissue, kind))
            continue
        specs = draw(st.lists(st.tuples(st.sampled_from(["B", "M"]), _LOCATION),
                              min_size=1, max_size=3,
                              unique_by=lambda s: (s[0], s[1] if s[1] != "note" else None)))
        for severity, location in specs:
            xyr = location if isinstance(location, tuple) else (None, None, None)
            rows.append(InfoRow(0, refnum, tissue, kind, severity, *xyr))
    return rows


def _render(row: InfoRow, note: bool) -> str:
    tokens = [row.refnum, row.tissue, row.kind]
    if row.severity:
        tokens.append(row.severity)
        if row.x is not None:
            tokens += [str(row.x), str(row.y), str(row.radius)]
        elif note:
            tokens += ["*NOTE", "3*"]
    return " ".join(tokens)


@settings(max_examples=200, deadline=None)
@given(_films(), st.sampled_from(["\n", "\r\n"]), st.booleans(), st.booleans(),
       st.sampled_from(["", " ", "  "]), st.data())
def test_parse_info_returns_valid_rows_exactly(rows: list[InfoRow], newline: str, bom: bool,
                                               prose: bool, trailing: str, data) -> None:
    lines = PROSE.splitlines() if prose else ["REFNUM BG CLASS SEVERITY X Y RADIUS"]
    first = len(lines) + 1
    lines += [_render(row, data.draw(st.booleans())) + trailing for row in rows]
    text = ("\ufeff" if bom else "") + newline.join(lines) + newline
    parsed, warnings = parse_info(text, "Info.txt")
    assert warnings == []
    assert [r.fields for r in parsed] == [r.fields for r in rows]
    assert [r.line for r in parsed] == list(range(first, first + len(rows)))
