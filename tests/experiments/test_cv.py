"""Cross-validation: every film is tested once, in a fold its patient never trained in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import factories
from core.errors import BadConfigError
from core.experiments.cv import run_cv, summarise_folds
from core.runs.config import TrainConfig

TINY = {**factories.TINY, "epochs": 1}


def test_folds_cover_every_film_once(synthetic_root: Path, tmp_path: Path) -> None:
    base = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(**TINY)
    result = run_cv(base, folds=2, out_root=tmp_path)
    tested = []
    for fold in result["folds"]:
        manifest = json.loads((Path(fold["run"]) / "manifest.json").read_text())
        split = manifest["split"]
        test_patients = {f["patient"] for f in split["test"]}
        assert not test_patients & {f["patient"] for f in split["train"] + split["val"]}
        tested += [f["film"] for f in split["test"]]
        assert fold["n"] == len(split["test"])
    assert sorted(tested) == sorted(f"mdb{i:03d}" for i in range(1, 29))
    assert set(result["mean"]) >= {"macro_f1", "auc_abnormal"} and result["std"]["macro_f1"] >= 0
    assert TrainConfig.from_dict(result["config"]) == base  # what was measured, kept with it


def test_summary_is_mean_and_sample_std() -> None:
    folds = [{"accuracy": a, "macro_f1": a / 2, "auc_abnormal": None,
              "baselines": {"majority": {"accuracy": 0.5, "balanced_accuracy": 0.2,
                                         "macro_f1": 0.1, "weighted_f1": 0.3}}}
             for a in (0.6, 0.8)]
    summary = summarise_folds(folds)
    assert summary["mean"]["accuracy"] == pytest.approx(0.7)
    assert summary["std"]["accuracy"] == pytest.approx(0.1414, abs=1e-4)
    assert summary["mean"]["auc_abnormal"] is None
    assert summary["baseline_majority_mean"]["macro_f1"] == pytest.approx(0.1)


def test_bad_fold_settings_are_refused() -> None:
    with pytest.raises(BadConfigError):
        TrainConfig(folds=5, fold=5)
    with pytest.raises(BadConfigError):
        run_cv(TrainConfig(), folds=1)
