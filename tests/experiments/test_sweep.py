"""Sweeps: grids parse into typed settings, every combination runs, best first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import factories
from conftest import REPO
from core.errors import BadConfigError
from core.experiments.sweep import configs, parse_grid, run_sweep
from core.runs.config import TrainConfig

TINY = {**factories.TINY, "epochs": 1}


def test_grid_values_take_the_type_of_their_setting() -> None:
    base = TrainConfig(model="transfer")
    grid = parse_grid(["patience=5,10", "weight-lr-factor=15,20", "cell=lstm,gru",
                       "augment_target=none,1300"], base)
    assert grid == {"patience": [5, 10], "weight_lr_factor": [15.0, 20.0],
                    "cell": ["lstm", "gru"], "augment_target": [None, 1300]}
    assert len(configs(base, grid)) == 16


@pytest.mark.parametrize("item, fragment", [
    ("patience", "NAME=V1"), ("colour=red", "not a sweepable"), ("patience=soon", "not of type int"),
    ("prep=x", "not a sweepable"), ("cell=lstm,banana", "cell must be one of"),
])
def test_bad_grids_fail_before_any_training(item: str, fragment: str) -> None:
    with pytest.raises(BadConfigError, match=fragment):
        configs(TrainConfig(), parse_grid([item], TrainConfig()))


def test_sweep_trains_each_combination_and_sorts(synthetic_root: Path, tmp_path: Path) -> None:
    base = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**TINY)
    rows = run_sweep(base, {"steps": [1, 2]}, tmp_path, sort_by="accuracy")
    assert sorted(row["steps"] for row in rows) == [1, 2]
    assert all(row["status"] == "done" and Path(row["run"]).is_dir() for row in rows)
    assert rows[0]["accuracy"] >= rows[1]["accuracy"]
    with pytest.raises(BadConfigError):
        run_sweep(base, {"steps": [1]}, tmp_path, sort_by="loss")


def test_cli_sweep_prints_a_list_of_rows(synthetic_root: Path, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "core", "sweep", "--dataset", "mias", "--root",
            str(synthetic_root), "--out", str(tmp_path), "--model", "transfer",
            "--backbone", "mobilenet_025", "--weights", "none", "--image-size", "64",
            "--patch-epochs", "0", "--fine-tune-layers", "0",
            "--epochs", "1", "--grid", "weight-lr-factor=1,10", "--grid", "patience=0",
            "--json"]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 2
    assert {row["weight_lr_factor"] for row in rows} == {1.0, 10.0}
    assert all(row["patience"] == 0 and row["status"] == "done" for row in rows)
