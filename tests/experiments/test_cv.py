"""Cross-validation: every film is tested once, in a fold its patient never trained in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import factories
from core.errors import BadConfigError
from core.experiments.cv import (
    difference_interval,
    mean_interval,
    read_summaries,
    run_cv,
    save_summary,
    split_comparison,
    split_pairs,
    summarise_folds,
)
from core.metrics.headline import by_key
from core.runs.config import TrainConfig
from core.runs.folder import list_runs

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
    # ... and kept where the Runs page finds it, beside the fold runs it names
    saved, problems = read_summaries(tmp_path)
    assert not problems and [s["file"] for s in saved] == [result["saved"]]
    assert saved[0]["config"]["split_by_patient"] is True and saved[0]["synthetic"]
    assert [fold["run"] for fold in saved[0]["folds"]] == [f["run"] for f in result["folds"]]
    assert saved[0]["mean"] == pytest.approx(result["mean"], nan_ok=True)
    assert len(list_runs(tmp_path)) == 2  # the summaries' folder is not a run


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


def test_the_interval_of_the_mean_is_student_t() -> None:
    low, high = mean_interval([0.6, 0.8])
    half = 12.7062047 * 0.1414213 / 2 ** 0.5  # t(0.975, 1 df) * sd / sqrt(n)
    assert (low, high) == pytest.approx((0.7 - half, 0.7 + half), abs=1e-5)
    assert mean_interval([0.5]) is None
    assert summarise_folds([{"accuracy": a, "baselines": {"majority": {
        "accuracy": 0, "balanced_accuracy": 0, "macro_f1": 0, "weighted_f1": 0}}}
        for a in (0.6, 0.8)])["interval"]["accuracy"] == pytest.approx([low, high])


def test_the_difference_interval_is_welchs() -> None:
    from scipy import stats

    film, patient = [0.8, 0.85, 0.9, 0.7], [0.6, 0.5, 0.65]
    expected = stats.ttest_ind(film, patient, equal_var=False).confidence_interval(0.95)
    assert difference_interval(film, patient) == pytest.approx(list(expected))
    assert difference_interval([0.8], patient) is None


CONFIG = TrainConfig(dataset="mias", root="/films").to_dict()


def _summary(created: str, split_by_patient: bool, folds: int = 3, **changes: object) -> dict:
    return {"created": created, "config": {**CONFIG, "split_by_patient": split_by_patient,
                                           **changes},
            "folds": [{"fold": i} for i in range(folds)], "mean": {}}


def test_summaries_pair_when_only_the_split_differs() -> None:
    film, patient = _summary("2", False), _summary("1", True)
    other_rate = _summary("3", False, learning_rate=0.5)  # another configuration
    other_folds = _summary("4", True, folds=5)  # as many folds, or no pair
    assert split_pairs([patient, other_rate, film, other_folds]) == [(film, patient)]
    assert split_pairs([film, other_rate]) == []  # no other half
    newer = _summary("5", True)  # the same configuration measured again: the newest pairs
    assert split_pairs([film, patient, newer]) == [(film, newer)]


def test_the_comparison_sets_both_splits_side_by_side_with_their_difference() -> None:
    film = factories.cv_document({**CONFIG, "split_by_patient": False},
                                 [{"macro_f1": 0.5, "auc_abnormal": 0.9},
                                  {"macro_f1": 0.7, "auc_abnormal": 0.8}])
    patient = factories.cv_document({**CONFIG, "split_by_patient": True},
                                    [{"macro_f1": 0.3}, {"macro_f1": 0.4}])
    rows = split_comparison(film, patient)
    assert [row["key"] for row in rows] == ["macro_f1"]  # only figures both have
    row = rows[0]
    assert row["figure"] == by_key("macro_f1").label
    assert (row["film_level"], row["patient_grouped"]) == pytest.approx((0.6, 0.35))
    assert row["difference"] == pytest.approx(0.25)
    assert row["film_level_interval"] == pytest.approx(mean_interval([0.5, 0.7]))
    assert row["difference_interval"] == pytest.approx(difference_interval([0.5, 0.7],
                                                                           [0.3, 0.4]))


def test_saved_summaries_are_read_back_newest_first_and_bad_files_named(
        tmp_path: Path) -> None:
    first = save_summary(factories.cv_document({**CONFIG, "split_by_patient": True},
                                               [{"macro_f1": 0.3}, {"macro_f1": 0.4}]),
                         tmp_path)
    second = save_summary(factories.cv_document({**CONFIG, "split_by_patient": True},
                                                [{"macro_f1": 0.3}, {"macro_f1": 0.4}]),
                          tmp_path)
    assert first != second  # never over an earlier one
    (tmp_path / "cv" / "broken.json").write_text("{")
    (tmp_path / "cv" / "other.json").write_text('{"config": {}}')
    summaries, problems = read_summaries(tmp_path)
    assert [s["file"] for s in summaries] == [str(second), str(first)]
    assert summaries[0]["folds"][0] == {"fold": 0, "run": "/runs/fold-0", "n": 10,
                                        **{m: None for m in summaries[0]["mean"]},
                                        "macro_f1": 0.3}
    assert sorted(problems) == [f"{tmp_path}/cv/broken.json: unreadable (JSONDecodeError)",
                                (f"{tmp_path}/cv/other.json: not a cross-validation summary "
                                 "(no split_by_patient in its config)")]
    assert read_summaries(tmp_path / "nothing") == ([], [])


def test_compare_splits_runs_both_protocols_and_leaves_a_pair(
        synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    flags = [f"--{name.replace('_', '-')}={value}" for name, value in TINY.items()]
    assert main(["cv", "--dataset", "mias", "--root", str(synthetic_root), *flags,
                 "--folds", "2", "--compare-splits", "--out", str(tmp_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    film, patient = document["film_level"], document["patient_grouped"]
    assert (film["config"]["split_by_patient"], patient["config"]["split_by_patient"]) == \
        (False, True)
    for fold in film["folds"]:  # the film-level folds really were split by film
        manifest = json.loads((Path(fold["run"]) / "manifest.json").read_text())
        assert manifest["config"]["split_by_patient"] is False
    assert [row["key"] for row in document["comparison"]] == \
        [row["key"] for row in split_comparison(film, patient)]
    summaries, _ = read_summaries(tmp_path)
    pairs = split_pairs(summaries)
    assert [(a["file"], b["file"]) for a, b in pairs] == [(film["saved"], patient["saved"])]
