"""Class-folder loader on tiny trees: labels from folder names, patients from patients.csv."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.data import load_dataset
from core.data.folder import load
from core.errors import BadAnnotationError, BadConfigError, BadDatasetError


def _touch(path: Path, data: bytes = b"film") -> Path:
    """Film files are never opened by this loader, so their bytes do not matter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
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
    assert len(warnings) == 4


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
    (tree / "patients.csv").write_text("file,woman\na.png,W1\n")
    with pytest.raises(BadAnnotationError, match="lacks column\\(s\\) film, patient"):
        load(tree)


def test_no_class_folder_and_options(tmp_path: Path) -> None:
    _touch(tmp_path / "loose.png")
    _touch(tmp_path / "docs" / "readme.txt")
    with pytest.raises(BadDatasetError, match="no class folder holding films"):
        load(tmp_path)
    with pytest.raises(BadConfigError, match="no options"):
        load(tmp_path, mode="crop")
