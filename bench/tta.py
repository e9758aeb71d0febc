"""Test-time augmentation, measured on saved cross-validation runs: does averaging a model's
answers over jittered copies of each test film beat its answer on the film alone?

Reads ``python -m core cv ... --json`` documents (each fold names its run folder, which
must still be on disk), scores every fold's test films plainly and with TTA (the film plus
``--copies`` copies, each rotated, scaled, shifted and re-lit a little, as training
augmentation does; attention maps are warped back onto the film before they are averaged)
and prints the gains paired fold by fold, pooled over all folds given, with 95% t-intervals.

    python bench/tta.py bench/out/results/variants/patchlesion-finetune10.json \
        bench/out/results/seed1/patchlesion-finetune10.json \
        bench/out/results/seed2/patchlesion-finetune10.json [--copies 8]

TTA is not part of the product: this measured it (README, "What did not help").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import stats

from core.data import load_dataset
from core.evaluate.evaluate import (
    _localisation,
    _predict,
    _test_records,
    load_model,
    run_settings,
)
from core.metrics.scores import classification_summary, clinical_pairs
from core.prep.arrays import FilmArrays, load_arrays
from core.prep.augment import AugmentConfig, augment_image
from core.runs.folder import open_run

#: Milder than training augmentation: a copy should still be the same film.
JITTER = AugmentConfig(rotation_deg=10.0, scale=(0.93, 1.07), shift=0.04, brightness=0.05,
                       contrast=0.05, noise_std=0.0)
FIGURES = ("macro_f1", "accuracy", "auc_abnormal", "auc_malignant", "pointing_game")


def _on_input(grid_maps: np.ndarray, size: int) -> np.ndarray:
    return np.stack([cv2.resize(m.astype(np.float32), (size, size),
                                interpolation=cv2.INTER_LINEAR) for m in grid_maps])


def _scores(arrays: FilmArrays, classes: tuple[str, ...], majority: int,
            probabilities: np.ndarray, maps: np.ndarray) -> dict[str, Any]:
    summary = classification_summary(arrays.labels, probabilities, classes, majority)
    severities = [r.severity for r in arrays.records]
    pairs = clinical_pairs(arrays.labels, probabilities, classes, severities=severities)
    return {"macro_f1": summary["macro_f1"], "accuracy": summary["accuracy"],
            "auc_abnormal": summary["auc_abnormal"],
            "auc_malignant": pairs["malignant"]["auc"] if pairs["malignant"] else None,
            "pointing_game": _localisation(arrays, maps)["overall"]["pointing_game"]}


def fold_gains(run_path: str, copies: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """One fold's figures, plain and with TTA."""
    run = open_run(run_path)
    config = run_settings(run).config
    manifest = run.manifest
    data = load_dataset(config.dataset, config.root, **config.dataset_options)
    arrays = load_arrays(_test_records(run, manifest, data), config.prep, [])
    train_ids = {entry["film"] for entry in manifest["split"]["train"]}
    majority = int(np.bincount([r.class_id for r in data.records if r.film_id in train_ids],
                               minlength=len(data.classes)).argmax())
    model = load_model(run)
    size = arrays.images.shape[1]
    probabilities, grid_maps, _ = _predict(model, arrays)
    plain = _scores(arrays, data.classes, majority, probabilities, _on_input(grid_maps, size))
    total_p, total_maps = probabilities.copy(), _on_input(grid_maps, size)
    rng = np.random.default_rng(seed)
    for _ in range(copies):
        images, transforms = zip(*(augment_image(image, rng, JITTER) for image in arrays.images))
        copy = FilmArrays(arrays.records, np.stack(images), arrays.transforms, arrays.lesions,
                          arrays.labels)
        p, copy_maps, _ = _predict(model, copy)
        total_p += p
        total_maps += np.stack([t.unapply(m) for t, m in
                                zip(transforms, _on_input(copy_maps, size))])
    tta = _scores(arrays, data.classes, majority, total_p / (copies + 1),
                  total_maps / (copies + 1))
    return {"plain": plain, "tta": tta}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cv_json", nargs="+", type=Path)
    parser.add_argument("--copies", type=int, default=8)
    args = parser.parse_args()
    folds = []
    for document in args.cv_json:
        for fold in json.loads(document.read_text())["folds"]:
            folds.append(fold_gains(fold["run"], args.copies))
            print(f"{document.parent.name}/{document.stem} fold {fold['fold']}: "
                  + ", ".join(f"{name} {folds[-1]['plain'][name]:.3f} -> "
                              f"{folds[-1]['tta'][name]:.3f}" for name in FIGURES
                              if folds[-1]["plain"][name] is not None), flush=True)
    pooled = {}
    for name in FIGURES:
        gains = np.array([f["tta"][name] - f["plain"][name] for f in folds
                          if f["plain"][name] is not None and f["tta"][name] is not None])
        half = stats.t.ppf(0.975, len(gains) - 1) * gains.std(ddof=1) / np.sqrt(len(gains))
        pooled[name] = {"gain": round(float(gains.mean()), 3), "folds": len(gains),
                        "interval": [round(float(gains.mean() - half), 3),
                                     round(float(gains.mean() + half), 3)]}
    print(json.dumps({"copies": args.copies, "pooled": pooled}))
    for name, entry in pooled.items():
        low, high = entry["interval"]
        print(f"TTA minus plain, {name}: {entry['gain']:+.3f} [{low:+.3f}, {high:+.3f}] "
              f"over {entry['folds']} folds")


if __name__ == "__main__":
    main()
