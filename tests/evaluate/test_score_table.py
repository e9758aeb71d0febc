"""The archive scoring table without Ray: rows from predict's entries, the scores each class
set defines, and parts read as one table with each film once."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.errors import BadConfigError
from core.evaluate import score_table


def _entries(out: Path, label: str) -> list[dict[str, object]]:
    return [
        {"file": "/archive/a.dcm", "label": label,
         "probabilities": {"benign": 0.25, "malignant": 0.75},
         "heatmap": str(out / score_table.OVERLAYS / "a-heatmap.png"), "synthetic": False,
         "dicom": {"for_presentation": True}, "warnings": ["laterality not recorded"]},
        {"file": "/archive/b.png", "error": "/archive/b.png: truncated"},
    ]


def test_rows_hold_each_field_and_the_score_the_class_set_defines(tmp_path: Path) -> None:
    table = score_table.entries_table(_entries(tmp_path, "malignant"), ("benign", "malignant"),
                                      "/runs/r", tmp_path, synthetic=False)
    good, bad = table.to_pylist()
    assert good["cancer_score"] == 0.75 and good["abnormal_score"] is None  # no NORM class
    assert good["probability_benign"] == 0.25 and good["overlay"] == "overlays/a-heatmap.png"
    assert good["warnings"] == ["laterality not recorded"] and good["error"] is None
    assert json.loads(good["details"]) == {"dicom": {"for_presentation": True}}
    assert bad["label"] is None and bad["cancer_score"] is None and bad["warnings"] == []
    assert bad["error"] == "/archive/b.png: truncated" and bad["synthetic"] is False

    normal = score_table.entries_table(
        [{"file": "c.png", "label": "NORM", "probabilities": {"NORM": 0.9, "CALC": 0.1}}],
        ("CALC", "NORM"), "/runs/r", tmp_path, synthetic=True).to_pylist()[0]
    assert normal["abnormal_score"] == pytest.approx(0.1) and normal["cancer_score"] is None


def test_parts_are_one_table_with_each_film_once_from_its_newest_part(tmp_path: Path) -> None:
    """A merge killed between writing the merged part and deleting the others leaves a film
    in two parts; it is read once, and merging again leaves one part."""
    classes = ("benign", "malignant")
    for label in ("benign", "malignant"):
        score_table.write_part(tmp_path, score_table.entries_table(
            _entries(tmp_path, label), classes, "/runs/r", tmp_path, False))
    table = score_table.read_scores(tmp_path, "/runs/r")
    assert table is not None and table.num_rows == 2
    assert table.to_pylist()[0]["label"] == "malignant"
    score_table.compact(tmp_path)
    assert len(score_table.parts(tmp_path)) == 1
    assert pd.read_parquet(tmp_path / score_table.SCORES)["file"].tolist() == [
        "/archive/a.dcm", "/archive/b.png"]


def test_a_part_that_is_not_a_table_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / score_table.SCORES).mkdir()
    part = tmp_path / score_table.SCORES / "part-1.parquet"
    part.write_bytes(b"not parquet")
    with pytest.raises(BadConfigError, match="not a table of scores"):
        score_table.read_scores(tmp_path)
