"""Evaluating a run: on its own test split, on an external dataset, and refusing a dataset
of another class set; the command line keeps its contract."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve
from sklearn.metrics import confusion_matrix as sk_confusion
from test_predict import tiny_run

from conftest import REPO
from core.data import load_dataset
from core.data.mias import load as load_mias
from core.errors import BadConfigError
from core.evaluate.evaluate import GALLERY_FILMS, evaluate_run
from core.evaluate.predict import predict_films
from core.evaluate.report import write_report
from core.evaluate.saved import headline_rows
from core.render.film_view import caption, framed
from core.runs.config import TrainConfig
from core.runs.folder import Run
from factories import TINY

KEYS = {"n", "labels", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "per_class",
        "confusion_matrix", "auc_abnormal", "auc_malignant", "pointing_game", "localisation",
        "confidence_intervals", "baselines", "operating_points", "calibration",
        "per_class_intervals", "temperature"}
PER_CLASS = {"precision", "recall", "f1", "support", "sensitivity", "specificity"}
#: The screening figures of a two-class dataset with a positive class; None on seven classes.
SCREENING = ("auc_malignant", "sensitivity_at_90_specificity", "patient_auc",
             "patient_sensitivity_at_90_specificity")


@pytest.fixture(scope="module")
def run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return tiny_run(synthetic_root, tmp_path_factory.getbasetemp() / "runs")


@pytest.fixture(scope="module")
def own_split(run: Run) -> dict:
    return evaluate_run(run)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_own_test_split(run: Run, own_split: dict) -> None:
    result = own_split
    assert KEYS <= set(result)
    assert result["n"] == len(run.manifest["split"]["test"])
    assert result["labels"] == run.manifest["dataset"]["classes"]
    assert all(set(row) >= PER_CLASS for row in result["per_class"].values())
    assert np.array(result["confusion_matrix"]).sum() == result["n"]
    assert result["source"]["kind"] == "test split" and result["synthetic"] is True
    assert result["heatmap"] == "attention"
    # Synthetic films have located lesions (all but the normal ones): the game is played.
    local = result["localisation"]
    assert local["n_scored"] > 0 and local["n_scored"] + local["n_skipped_no_location"] == \
        result["n"]
    assert 0.0 <= result["pointing_game"] <= 1.0
    assert result["pointing_game"] == local["overall"]["pointing_game"]
    assert 0.0 < local["overall"]["chance"] < 1.0
    # MIAS severities give the benign-vs-malignant pair (None if one kind is missing here).
    assert result["auc_malignant"] is None or 0.0 <= result["auc_malignant"] <= 1.0
    intervals = result["confidence_intervals"]
    assert intervals["accuracy"]["unit"] == "patient"
    assert intervals["accuracy"]["low"] <= result["accuracy"] <= intervals["accuracy"]["high"]
    # Seven classes: no screening figure applies; each is None, so reports leave it out.
    assert result["patient_level"] is None
    assert all(result[key] is None for key in SCREENING[1:])
    assert not set(SCREENING[1:]) & set(intervals)
    json.dumps(result)  # a JSON document, as the CLI prints it


def test_external_dataset_of_the_same_classes(run: Run, synthetic_root: Path,
                                              own_split: dict) -> None:
    result = evaluate_run(run, dataset="mias", root=str(synthetic_root))
    assert result["n"] == 28 and result["source"]["kind"] == "external"
    assert result["labels"] == own_split["labels"]


def test_external_dataset_of_another_class_set_is_refused(run: Run, synthetic_root: Path,
                                                          tmp_path: Path) -> None:
    film = cv2.imread(str(next(synthetic_root.glob("*.pgm"))), cv2.IMREAD_GRAYSCALE)
    for name in ("benign", "malignant"):
        (tmp_path / name).mkdir()
        for i in range(2):
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), film)
    with pytest.raises(BadConfigError, match="run of another class set"):
        evaluate_run(run, dataset="folder", root=str(tmp_path))
    result = _cli("evaluate", str(run.path), "--dataset", "folder", "--root", str(tmp_path),
                  "--json")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "run of another class set" in result.stderr


def test_cli_evaluate_prints_the_summary(run: Run, own_split: dict, tmp_path: Path) -> None:
    result = _cli("evaluate", str(run.path), "--report", str(tmp_path / "report"), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert KEYS <= set(document)
    assert document["confusion_matrix"] == own_split["confusion_matrix"]
    assert document["pointing_game"] == pytest.approx(own_split["pointing_game"])
    assert Path(document["report"]["html"]).is_file() and document["gallery"]


def test_report_files_agree_with_the_evaluation(run: Run, tmp_path: Path) -> None:
    evaluation = evaluate_run(run, gallery_dir=tmp_path / "gallery")
    gallery = evaluation["gallery"]
    assert 0 < len(gallery) <= GALLERY_FILMS
    assert {g["actual"] for g in gallery} == {f["actual"] for f in evaluation["films"]}
    files = write_report(evaluation, tmp_path / "report", gallery)

    assert json.loads(Path(files["evaluation"]).read_text()) == evaluation
    report = pd.read_csv(files["classification_report.csv"])
    labels = evaluation["labels"]
    assert list(report["label"]) == [*labels, "micro avg", "macro avg", "weighted avg"]
    for name in labels:
        row = report.set_index("label").loc[name]
        assert row["support"] == evaluation["per_class"][name]["support"]
        assert row["f1"] == pytest.approx(evaluation["per_class"][name]["f1"])
    assert report.set_index("label").loc["micro avg", "precision"] == \
        pytest.approx(evaluation["accuracy"])
    films = pd.read_csv(files["test_films.csv"])
    assert len(films) == evaluation["n"] and films["right"].mean() == \
        pytest.approx(evaluation["accuracy"])
    shares = films[[f"p_{name}" for name in labels]]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-3)
    assert (films["predicted"] == shares.idxmax(axis=1).str[2:]).all()
    assert list(films["p_actual"]) == sorted(films["p_actual"])  # most surely wrong first
    assert set(films["patient"]) == {f["patient"] for f in evaluation["films"]}
    counts = pd.read_csv(files["per_class_counts.csv"]).set_index("class")
    assert counts["tp"].sum() == np.trace(evaluation["confusion_matrix"])
    matrix = pd.read_csv(files["confusion_matrix.csv"], index_col=0)
    assert matrix.to_numpy().tolist() == evaluation["confusion_matrix"]
    for plot in ("confusion_matrix.png", "roc.png"):
        assert cv2.imread(files[plot]) is not None

    page = Path(files["html"]).read_text()
    assert page.count("data:image/png;base64,") == 2 + len(gallery)
    assert "src='http" not in page and 'src="http' not in page  # self-contained
    assert "SYNTHETIC" in page and f"actual {gallery[0]['actual']}" in page
    overlay = cv2.imread(gallery[0]["overlay"])
    film = next(r for r in evaluation["films"] if r["film"] == gallery[0]["film"])
    assert overlay.ndim == 3 and film["predicted"] == gallery[0]["predicted"]


@pytest.mark.parametrize("args", [["--dataset", "folder"], []])
def test_cli_evaluate_bad_requests_are_one_line(tmp_path: Path, run: Run,
                                                args: list[str]) -> None:
    target = str(run.path) if args else str(tmp_path / "missing-run")
    result = _cli("evaluate", target, *args, "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")


def test_transfer_run_uses_grad_cam(synthetic_root: Path,
                                    tmp_path_factory: pytest.TempPathFactory,
                                    tmp_path: Path) -> None:
    run = tiny_run(synthetic_root, tmp_path_factory.getbasetemp() / "runs", "transfer")
    result = evaluate_run(run)
    assert result["heatmap"] == "grad_cam"
    assert result["n"] == len(run.manifest["split"]["test"])
    assert result["pointing_game"] is None or 0.0 <= result["pointing_game"] <= 1.0
    film = next(synthetic_root.glob("*.pgm"))
    (entry,) = predict_films(run, [film], tmp_path)
    assert "error" not in entry, entry
    size = cv2.imread(str(film)).shape[:2]  # the film at its size, caption and colour bar around
    frame = framed(np.zeros((*size, 3), np.uint8), caption(entry["label"], synthetic=True))
    assert cv2.imread(entry["heatmap"]).shape == frame.shape


def test_an_unreadable_film_is_left_out_and_named(run: Run, synthetic_root: Path,
                                                  tmp_path: Path) -> None:
    copy = tmp_path / "films"
    shutil.copytree(synthetic_root, copy)
    victim = min(copy.glob("*.pgm"))
    victim.write_bytes(b"P5\n128 128\n255\n")  # the header survives, the pixels are gone
    result = evaluate_run(run, dataset="mias", root=copy)
    assert result["n"] == 27
    assert len(result["warnings"]) == 1 and victim.name in result["warnings"][0]


def test_an_archive_is_scored_a_part_at_a_time_with_the_same_figures(
        run: Run, synthetic_root: Path, own_split: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluation holds one part of the films at the input size, never all of them: with
    parts of 16 films (the smallest, one predict batch) it reads no more than 16 at once and
    gives the figures it gives in one part. (``tests/prep/test_arrays.py``: a film failing
    in a later part is left out and warned of all the same.)"""
    import core.evaluate.evaluate as evaluation
    from core.prep import arrays

    whole = evaluate_run(run, dataset="mias", root=synthetic_root)
    held: list[int] = []
    reader = arrays.preprocess_files

    def counting(paths, *args, **kwargs):
        held.append(len(paths))
        return reader(paths, *args, **kwargs)

    monkeypatch.setattr(arrays, "preprocess_files", counting)
    size = TrainConfig.from_manifest(run.manifest["config"]).image_size
    monkeypatch.setattr(evaluation, "EVALUATE_HOLDS_BYTES", 16 * size ** 2)
    parts = evaluate_run(run, dataset="mias", root=synthetic_root)
    films = len(load_dataset("mias", synthetic_root).records)
    assert held == [16, films - 16]
    assert parts["n"] == whole["n"] == films
    assert [{**f, "probabilities": None} for f in parts["films"]] == \
        [{**f, "probabilities": None} for f in whole["films"]]
    for part, film in zip(parts["films"], whole["films"]):
        assert part["probabilities"] == pytest.approx(film["probabilities"], abs=1e-4)
    for key in ("accuracy", "macro_f1", "auc_abnormal", "pointing_game"):
        assert parts[key] == pytest.approx(whole[key], abs=1e-6), key
    assert evaluate_run(run)["accuracy"] == pytest.approx(own_split["accuracy"])


# --- a two-class screening dataset ----------------------------------------------------------

@pytest.fixture(scope="module")
def screening_root(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RSNA's shape from the synthetic films, as class folders: malignant films are
    ``cancer``, the others ``no_cancer`` (alphabetically first, so the order cannot tell
    which class is positive), and ``patients.csv`` keeps MIAS's pairs, two films a woman,
    so some women have one film of each kind and women are fewer than films."""
    root = tmp_path_factory.mktemp("screening")
    rows = ["film,patient"]
    for record in load_mias(synthetic_root).records:
        label = "cancer" if record.severity == "M" else "no_cancer"
        (root / label).mkdir(exist_ok=True)
        shutil.copy(record.path, root / label / record.path.name)
        rows.append(f"{label}/{record.path.name},{record.patient_id}")
    (root / "patients.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def screening_run(screening_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    from core.train.fit import train

    # Half the women held out, so the test split has women of both kinds. GoogLeNet, not
    # TINY's MobileNet: untrained and frozen, MobileNet's features are ~1e-17 and every film
    # gets the same score, under which a wrong patient rule (her lowest film) would pass.
    config = TrainConfig(dataset="folder", root=str(screening_root)).with_overrides(
        **{**TINY, "test_size": 0.5, "backbone": "googlenet"})
    run = train(config, tmp_path_factory.getbasetemp() / "runs" / "screening")
    assert run.manifest["status"] == "done"
    return run


@pytest.fixture(scope="module")
def screening_result(screening_run: Run) -> dict:
    return evaluate_run(screening_run)


@pytest.fixture(scope="module")
def p_cancer(screening_run: Run, screening_root: Path,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """Each test film's p(cancer) as `predict` gives it, by film id."""
    test = [entry["film"] for entry in screening_run.manifest["split"]["test"]]
    predictions = predict_films(screening_run, [screening_root / film for film in test],
                                tmp_path_factory.mktemp("predicted"))
    return {film: entry["probabilities"]["cancer"] for film, entry in zip(test, predictions)}


def _sensitivity_at_90_specificity(positive: list[bool], score: list[float]) -> float:
    """By scikit-learn's every-threshold ROC curve: the best sensitivity at FPR <= 10%."""
    fpr, tpr, _ = roc_curve(positive, score, drop_intermediate=False)
    return float(tpr[fpr <= 0.1 + 1e-12].max())


def test_a_two_class_dataset_gets_screening_figures_per_film_and_per_woman(
        screening_run: Run, screening_root: Path, screening_result: dict,
        p_cancer: dict[str, float]) -> None:
    result = screening_result
    assert result["labels"] == ["cancer", "no_cancer"]
    assert result["malignancy_score"] == "p(cancer)"
    intervals = result["confidence_intervals"]
    for key in SCREENING:
        assert 0.0 <= result[key] <= 1.0, key
        interval = intervals[key]
        assert interval["unit"] == "patient" and interval["n_resamples"] > 0, key
        assert interval["low"] <= result[key] <= interval["high"], key
    assert {row["figure"] for row in headline_rows(result)} >= set(SCREENING)
    # the stored curve carries the pair's own names, which the ROC charts show
    curve = result["curves"]["malignant"]
    assert (curve["positive"], curve["negative"]) == ("cancer", "no_cancer")

    # The same figures by hand, from each test film's p(cancer) as `predict` gives it.
    test = [entry["film"] for entry in screening_run.manifest["split"]["test"]]
    patient_of = {r.film_id: r.patient_id
                  for r in load_dataset("folder", screening_root).records}
    assert len(set(p_cancer.values())) > len(test) // 2  # scores that rank the films
    films_positive = [film.startswith("cancer/") for film in test]
    assert result["auc_malignant"] == pytest.approx(
        roc_auc_score(films_positive, [p_cancer[film] for film in test]))
    women = sorted({patient_of[film] for film in test})
    ill = [any(film.startswith("cancer/") for film in test if patient_of[film] == woman)
           for woman in women]
    highest = [max(p_cancer[film] for film in test if patient_of[film] == woman)
               for woman in women]
    patient = result["patient_level"]
    assert patient["n_patients"] == len(women) < result["n"]
    assert patient["n_positive"] == sum(ill) and 0 < sum(ill) < len(women)
    assert result["patient_auc"] == patient["auc"] == pytest.approx(
        roc_auc_score(ill, highest), abs=1e-6)
    assert result["patient_sensitivity_at_90_specificity"] == \
        patient["sensitivity_at_90_specificity"] == \
        pytest.approx(_sensitivity_at_90_specificity(ill, highest))
    json.dumps(result, allow_nan=False)


def test_operating_points_and_calibration_of_p_cancer_agree_with_scikit_learn(
        screening_run: Run, screening_result: dict, p_cancer: dict[str, float]) -> None:
    """``evaluate --json``'s ``operating_points`` and ``calibration``, recomputed from each
    test film's p(cancer) with scikit-learn."""
    test = [entry["film"] for entry in screening_run.manifest["split"]["test"]]
    positive = np.array([film.startswith("cancer/") for film in test])
    score = np.array([p_cancer[film] for film in test])
    points = screening_result["operating_points"]
    assert (points["positive"], points["negative"], points["score"]) == \
        ("cancer", "no_cancer", "p(cancer)")
    assert points["n_positive"] == positive.sum() and points["n_negative"] == (~positive).sum()
    presets = {p["key"]: p for p in points["presets"]}
    assert set(presets) == {"sensitivity_at_90_specificity", "youden", "half"}
    assert presets["sensitivity_at_90_specificity"]["sensitivity"] == pytest.approx(
        _sensitivity_at_90_specificity(list(positive), list(score)))
    assert presets["sensitivity_at_90_specificity"]["sensitivity"] == \
        screening_result["sensitivity_at_90_specificity"]
    for preset in presets.values():
        called = np.zeros_like(positive) if preset["threshold"] is None else \
            score >= preset["threshold"]
        assert preset["confusion_matrix"] == sk_confusion(positive, called,
                                                          labels=[False, True]).tolist()
    fpr, tpr, _ = roc_curve(positive, score, drop_intermediate=False)
    youden = presets["youden"]
    assert youden["tpr"] - youden["fpr"] == pytest.approx((tpr - fpr).max(), abs=1e-6)
    roc = points["roc"]
    assert roc["thresholds"][0] is None and len(roc["fpr"]) == len(roc["tpr"])
    assert roc["fpr"] == pytest.approx(fpr.tolist()) and roc["tpr"] == pytest.approx(tpr.tolist())

    calibration = screening_result["calibration"]
    observed, predicted = calibration_curve(positive, score, n_bins=calibration["n_bins"])
    filled = [b for b in calibration["bins"] if b["count"]]
    assert [b["observed"] for b in filled] == pytest.approx(observed.tolist(), abs=1e-6)
    assert [b["mean_predicted"] for b in filled] == pytest.approx(predicted.tolist(), abs=1e-6)
    assert calibration["brier"] == pytest.approx(brier_score_loss(positive, score), abs=1e-6)
    for name in ("ece", "brier"):
        interval = calibration["confidence_intervals"][name]
        assert interval["unit"] == "patient"
        assert interval["low"] <= calibration[name] <= interval["high"]
    f1 = screening_result["per_class_intervals"]["cancer"]["f1"]
    assert f1["unit"] == "patient" and f1["estimate"] == pytest.approx(
        screening_result["per_class"]["cancer"]["f1"])


def test_an_older_evaluation_without_films_probabilities_gets_no_film_table(
        tmp_path: Path) -> None:
    from core.evaluate.report import films_table

    older = {"labels": ["NORM", "CALC"], "confusion_matrix": [[1, 0], [0, 1]],
             "films": [{"film": "a", "actual": "NORM", "predicted": "NORM"},
                       {"film": "b", "actual": "CALC", "predicted": "CALC"}]}
    assert films_table(older) is None and films_table({"labels": ["A", "B"]}) is None
    files = write_report(older, tmp_path / "report")
    assert "test_films.csv" not in files and Path(files["html"]).is_file()
