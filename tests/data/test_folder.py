"""Class-folder loader on tiny trees: labels from folder names, every film probed (bad files
named and left out), patients from a file-name pattern or patients.csv, kept whole by splits."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data import load_dataset
from core.data.folder import NO_PATIENT_RULE, load
from core.errors import BadAnnotationError, BadConfigError, BadDatasetError
from core.prep.splits import split_dataset
from factories import dicom

PIXELS = np.arange(48, dtype=np.uint8).reshape(6, 8)


def _film_bytes(suffix: str) -> bytes:
    """A small readable film in the format its suffix names: the loader probes every film."""
    if suffix.lower() == ".dcm":
        return dicom(PIXELS, bits_stored=8)
    if suffix.lower() == ".pgm":
        return b"P5\n8 6\n255\n" + PIXELS.tobytes()
    ok, buffer = cv2.imencode(".png" if suffix.lower() != ".jpg" else ".jpg", PIXELS)
    assert ok
    return buffer.tobytes()


def _touch(path: Path, data: bytes | None = None) -> Path:
    """A file at ``path``: a readable film of its suffix unless ``data`` says otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_film_bytes(path.suffix) if data is None else data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "films"
    _touch(root / "normal" / "a.png")
    _touch(root / "normal" / "deep" / "er" / "b.DCM")
    _touch(root / "Malignant" / "a.png")
    _touch(root / "Malignant" / "c.pgm")
    _touch(root / "Malignant" / "notes.txt")
    _touch(root / "Malignant" / ".DS_Store")
    _touch(root / "Malignant" / ".hidden" / "x.png")
    (root / "empty").mkdir()
    _touch(root / "only-text" / "readme.md")
    _touch(root / "loose.png")
    return root


def test_classes_labels_and_films(tree: Path) -> None:
    data = load_dataset("folder", tree)
    assert data.classes == ("Malignant", "normal")
    assert [(r.film_id, r.label, r.class_id) for r in data.records] == [
        ("Malignant/a.png", "Malignant", 0), ("Malignant/c.pgm", "Malignant", 0),
        ("normal/a.png", "normal", 1), ("normal/deep/er/b.DCM", "normal", 1)]
    assert data.records[3].path == tree / "normal" / "deep" / "er" / "b.DCM"
    assert [r.patient_id for r in data.records] == [r.film_id for r in data.records]
    assert data.summary()["classes"] == {"Malignant": 2, "normal": 2}


def test_warnings_for_what_was_left_out(tree: Path) -> None:
    warnings = load(tree).warnings
    assert f"class folder {tree / 'empty'} holds no film; skipped" in warnings
    assert f"class folder {tree / 'only-text'} holds no film; skipped" in warnings
    assert any(w.startswith("2 file(s) in class folders are not films") for w in warnings)
    assert any("belong to no class folder" in w and "loose.png" in w for w in warnings)
    assert NO_PATIENT_RULE in warnings and "--patient-pattern" in NO_PATIENT_RULE
    assert len(warnings) == 5


def test_patients_csv_groups_films(tree: Path) -> None:
    (tree / "patients.csv").write_text(
        "film,patient\nMalignant/a.png,W1\nc.pgm,W1\nb.DCM,W2\n"
        "a.png,W9\nnowhere.png,W3\nMalignant/c.pgm,W4\n,W5\n")
    data = load(tree)
    patients = {r.film_id: r.patient_id for r in data.records}
    assert patients == {"Malignant/a.png": "W1", "Malignant/c.pgm": "W1",
                        "normal/a.png": "normal/a.png", "normal/deep/er/b.DCM": "W2"}
    (warning,) = [w for w in data.warnings if "patients.csv" in w]
    assert "4 row(s) ignored" in warning
    assert "line 5: 'a.png' names several films; use its path" in warning
    assert "line 6: 'nowhere.png' is not a film here" in warning
    assert "line 7: 'Malignant/c.pgm' already has patient 'W1'" in warning
    assert "line 8: empty film or patient" in warning
    assert sorted(set(data.groups)) == ["W1", "W2", "normal/a.png"]


def test_patients_csv_without_its_columns(tree: Path) -> None:
    (tree / "patients.csv").write_text("name,woman\na.png,W1\n")
    with pytest.raises(BadAnnotationError, match="lacks column\\(s\\) film, patient"):
        load(tree)


def test_no_class_folder_and_options(tmp_path: Path) -> None:
    _touch(tmp_path / "loose.png")
    _touch(tmp_path / "docs" / "readme.txt")
    with pytest.raises(BadDatasetError, match="no class folder holding films"):
        load(tmp_path)
    with pytest.raises(BadConfigError, match="unknown folder option.s.: mode .it takes "
                                             "patient_pattern, patients_csv"):
        load(tmp_path, mode="crop")


# -- every film probed (fault 6) ------------------------------------------------------------------
def test_bad_files_are_named_and_left_out_so_the_summary_counts_only_films(
        tmp_path: Path) -> None:
    """Fault found: the loader counted files by suffix, so an empty file, a text file named
    .png, a FIFO and a pixel bomb's header were each a film (a lone empty file: films 1)."""
    root = tmp_path / "films"
    good = [_touch(root / "A" / "good.png"), _touch(root / "A" / "good.dcm"),
            _touch(root / "B" / "good.pgm")]
    empty = _touch(root / "A" / "empty.png", b"")
    text = _touch(root / "B" / "notes.png", b"not a film at all\n" * 4)
    bomb = _touch(root / "B" / "bomb.pgm", b"P5\n100000 100000\n255\n")
    bad = {empty: "file is empty", text: "is a text file", bomb: "truncated"}
    if hasattr(os, "mkfifo"):
        fifo = root / "A" / "pipe.png"
        os.mkfifo(fifo)
        bad[fifo] = "not a regular file"
    data = load(root)
    assert sorted(r.path for r in data.records) == sorted(good)
    for path, fault in bad.items():
        (line,) = [w for w in data.warnings if w.startswith(f"{path}:")]
        assert fault in line and line.endswith("; film left out"), line
    summary = data.summary()
    assert summary["films"] == 3 and summary["classes"] == {"A": 2, "B": 1}


def test_a_bomb_whose_bytes_are_all_there_is_left_out_by_the_pixel_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "films"
    _touch(root / "A" / "good.png")
    big = _touch(root / "A" / "big.pgm", b"P5\n80 60\n255\n" + bytes(80 * 60))
    monkeypatch.setenv("MAMMO_MAX_PIXELS", "1000")
    data = load(root)
    assert [r.film_id for r in data.records] == ["A/good.png"]
    (line,) = [w for w in data.warnings if w.startswith(f"{big}:")]
    assert "over the pixel limit of 1,000" in line


def test_a_lone_empty_file_is_no_film(tmp_path: Path) -> None:
    _touch(tmp_path / "A" / "empty.png", b"")
    with pytest.raises(BadDatasetError, match="no class folder holding films"):
        load(tmp_path)


def test_a_folder_of_only_bad_files_says_no_readable_film(tmp_path: Path) -> None:
    _touch(tmp_path / "A" / "good.png")
    _touch(tmp_path / "B" / "empty.png", b"")
    data = load(tmp_path)
    assert data.classes == ("A",)
    assert f"class folder {tmp_path / 'B'} holds no readable film; skipped" in data.warnings


def test_dicom_laterality_view_and_modality_reach_the_records(tmp_path: Path) -> None:
    _touch(tmp_path / "A" / "l.dcm", dicom(PIXELS, bits_stored=8, ImageLaterality="L",
                                           ViewPosition="MLO"))
    _touch(tmp_path / "A" / "r.dcm", dicom(PIXELS, bits_stored=8, Laterality="R",
                                           ViewPosition="CC", Modality="CT"))
    _touch(tmp_path / "A" / "p.png")
    data = load(tmp_path)
    assert {r.film_id: (r.side, r.view) for r in data.records} == {
        "A/l.dcm": ("L", "MLO"), "A/r.dcm": ("R", "CC"), "A/p.png": (None, None)}
    (line,) = [w for w in data.warnings if "modality" in w]
    assert line.startswith("1 film(s): DICOM modality is CT, not MG") and "A/r.dcm" in line


# -- patients: a pattern on the file name, or patients.csv ----------------------------------------
def _cbis_like(root: Path) -> Path:
    """8 films of 2 women, CBIS-DDSM style names: P_00001 has 5 films, P_00002 has 3."""
    names = {"BENIGN": ["P_00001_LEFT_CC.png", "P_00001_LEFT_MLO.png", "P_00002_RIGHT_CC.png"],
             "MALIGNANT": ["P_00001_RIGHT_CC.png", "P_00001_RIGHT_MLO.png",
                           "P_00001_LEFT_XCCL.png", "P_00002_RIGHT_MLO.png",
                           "P_00002_LEFT_CC.png"]}
    for label, files in names.items():
        for name in files:
            _touch(root / label / name)
    return root


def test_patient_pattern_groups_a_womans_films(tmp_path: Path) -> None:
    root = _cbis_like(tmp_path / "cbis")
    assert load(root).summary()["patients"] == 8  # the default: one patient per file
    data = load_dataset("folder", root, patient_pattern=r"^(?P<patient>P_\d+)_")
    assert data.summary()["patients"] == 2
    assert {r.film_id: r.patient_id for r in data.records}["MALIGNANT/P_00002_LEFT_CC.png"] \
        == "P_00002"
    assert NO_PATIENT_RULE not in data.warnings


def test_the_grouping_reaches_the_splits(tmp_path: Path) -> None:
    """A woman's films are never split: every seed, every fold puts each in one part."""
    root = _cbis_like(tmp_path / "cbis")
    for number in range(3, 9):  # more women, so there is something to split
        for view in ("CC", "MLO"):
            _touch(root / ("BENIGN", "MALIGNANT")[number % 2] / f"P_{number:05d}_LEFT_{view}.png")
    data = load(root, patient_pattern=r"^(?P<patient>P_\d+)_")
    assert data.summary()["patients"] == 8
    for seed in range(5):
        for folds, fold in ((0, 0), (4, seed % 4)):
            splits = split_dataset(data, 0.25, 0.25, seed, folds=folds, fold=fold)
            parts = {part: {data.records[int(i)].patient_id for i in getattr(splits, part)}
                     for part in ("train", "val", "test")}
            assert not parts["train"] & parts["test"] and not parts["train"] & parts["val"]
            assert not parts["val"] & parts["test"]
    # Without the rule the same seed splits women: the test above can fail.
    ungrouped = load(root)
    split = split_dataset(ungrouped, 0.25, 0.25, 0)
    women = [{ungrouped.records[int(i)].film_id.split("/")[1][:7] for i in part}
             for part in (split.train, split.test)]
    assert women[0] & women[1]


def test_films_the_pattern_misses_are_named_and_kept_alone(tmp_path: Path) -> None:
    root = _cbis_like(tmp_path / "cbis")
    _touch(root / "BENIGN" / "scan 7.png")
    data = load(root, patient_pattern=r"^(?P<patient>P_\d+)_")
    assert {r.patient_id for r in data.records} == {"P_00001", "P_00002", "BENIGN/scan 7.png"}
    (line,) = [w for w in data.warnings if "do not match patient_pattern" in w]
    assert line.startswith("1 film(s)") and line.endswith("BENIGN/scan 7.png")


@pytest.mark.parametrize("pattern, fragment", [
    ("(P_", "is not a regular expression"),
    (r"^P_\d+", "has no group named patient"),
])
def test_a_bad_pattern_is_refused_before_files_are_read(pattern: str, fragment: str,
                                                        tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match=fragment):  # the folder is not even looked at
        load(tmp_path / "absent", patient_pattern=pattern)


def test_patients_csv_with_a_file_column_wins_over_the_pattern(tmp_path: Path) -> None:
    root = _cbis_like(tmp_path / "cbis")
    (root / "women.csv").write_text("file,patient\nP_00002_LEFT_CC.png,W9\n")
    data = load(root, patient_pattern=r"^(?P<patient>P_\d+)_", patients_csv="women.csv")
    patients = {r.film_id: r.patient_id for r in data.records}
    assert patients["MALIGNANT/P_00002_LEFT_CC.png"] == "W9"
    assert patients["MALIGNANT/P_00002_RIGHT_MLO.png"] == "P_00002"
    with pytest.raises(BadDatasetError, match="no such file .patients_csv."):
        load(root, patients_csv="absent.csv")


def test_a_second_load_opens_no_unchanged_film_and_a_rewritten_one_again(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.data import folder

    probed: list[str] = []
    real = folder.probe_film

    def counting(path: Path) -> object:
        probed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(folder, "probe_film", counting)
    first = load_dataset("folder", tree)
    assert sorted(probed) == ["a.png", "a.png", "b.DCM", "c.pgm"]
    probed.clear()
    assert [r.film_id for r in load_dataset("folder", tree).records] == \
        [r.film_id for r in first.records] and probed == []
    film = tree / "Malignant" / "c.pgm"
    film.write_bytes(b"P5\n8 6\n255\n" + PIXELS.tobytes()[:-1])  # one byte short now
    stat = film.stat()
    os.utime(film, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    again = load_dataset("folder", tree)
    assert probed == ["c.pgm"]
    assert "Malignant/c.pgm" not in [r.film_id for r in again.records]
    assert any("c.pgm" in warning for warning in again.warnings)
