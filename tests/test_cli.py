"""The CLI contract: --json prints one document, user mistakes exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from core.cli import main


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_mias_summary_matches_the_shared_readme(capsys, mias_root: Path) -> None:
    doc = _run_json(capsys, "data", "summary", "--dataset", "mias", "--root", str(mias_root))
    assert doc["dataset"] == "mias" and doc["synthetic"] is False
    assert (doc["films"], doc["rows"]) == (256, 260)
    assert doc["classes"] == {"ARCH": 15, "ASYM": 12, "CALC": 19, "CIRC": 18, "MISC": 11,
                              "NORM": 166, "SPIC": 15}
    assert doc["severity"] == {"B": 49, "M": 41}
    assert len(doc["missing"]) == 66 and {"mdb025", "mdb312"} <= set(doc["missing"])
    assert any("mdb025" in warning for warning in doc["warnings"])


def test_synth_then_summary_round_trip(capsys, tmp_path: Path) -> None:
    out = tmp_path / "films"
    made = _run_json(capsys, "data", "synth", "--out", str(out), "--n", "70", "--seed", "3",
                     "--size", "128")
    assert made["synthetic"] is True and made["films"] == 70
    doc = _run_json(capsys, "data", "summary", "--dataset", "mias", "--root", str(out))
    assert doc["films"] == 70 and doc["synthetic"] is True
    assert all(count > 0 for count in doc["classes"].values())


def test_human_output_is_not_json(capsys, tmp_path: Path) -> None:
    assert main(["data", "synth", "--out", str(tmp_path), "--n", "7", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "films: 7" in out and not out.lstrip().startswith("{")


@pytest.mark.parametrize("argv, fragment", [
    (["data", "summary", "--dataset", "mias", "--root", "/no/such/folder", "--json"],
     "/no/such/folder"),
    (["data", "summary", "--dataset", "nope", "--root", ".", "--json"], "invalid choice"),
    (["data", "synth", "--out", "x", "--n", "-3", "--json"], "positive integer"),
    (["data"], "required"),
])
def test_user_mistakes_give_one_line_and_status_2(argv: list[str], fragment: str) -> None:
    result = subprocess.run([sys.executable, "-m", "core", *argv], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr


def test_folder_without_info_txt_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "core", "data", "summary", "--dataset", "mias",
                             "--root", str(tmp_path), "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 2
    assert "Info.txt" in result.stderr and len(result.stderr.strip().splitlines()) == 1
