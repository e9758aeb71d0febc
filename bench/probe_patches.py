"""Do a frozen encoder's feature cells tell lesion from normal tissue? A linear probe.

    python bench/probe_patches.py --mias ../shared/data/mias --weights ../shared/weights [--size 512]

The default model's encoder (MobileNetV2, ImageNet, the stride-16 map) encodes every real
mini-MIAS film once; on each of the 5 patient-grouped folds a logistic regression learns
lesion cells (within a lesion's radius) against breast cells of normal films, and each test
film is scored by the mean of its three most lesion-like cells. If this probe cannot rank
abnormal films above normal ones, no head trained on these frozen features will either:
the encoder itself must learn (fine-tuning), which is what the figure is for. Writes
``bench/out/results/probe.json`` for ``bench/results.py render``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from core.settings import REPO, SHARED

NORMAL_CELLS_PER_FILM = 40
TOP_CELLS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mias", type=Path, default=SHARED / "data" / "mias")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    from bench.scratch import private_caches

    os.environ.update(private_caches(args.weights, Path(tempfile.mkdtemp(prefix="probe-"))))
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from core.data import load_dataset
    from core.models.features import cached_features
    from core.prep.arrays import load_arrays
    from core.prep.splits import kfold
    from core.runs.config import TrainConfig
    from core.train.fit import encoder_for

    config = TrainConfig(dataset="mias", root=str(args.mias), image_size=args.size)
    dataset = load_dataset("mias", args.mias)
    arrays = load_arrays(dataset.records, config.prep)
    _, encoder, key = encoder_for(config)
    features = cached_features(
        lambda batch: np.asarray(encoder.predict_on_batch(batch[..., None].astype(np.float32))),
        arrays.images, key, batch_size=8)
    n, rows, cols, depth = features.shape
    lesion = _lesion_cells(arrays.lesions, n, rows, cols, args.size)
    breast = arrays.images.reshape(n, rows, args.size // rows, cols,
                                   args.size // cols).mean(axis=(2, 4)) > 10
    abnormal = arrays.labels != dataset.classes.index("NORM")
    groups = np.array([record.patient_id for record in arrays.records])
    rng = np.random.default_rng(0)
    folds = []
    for train, test in kfold(arrays.labels, groups, k=5, seed=0):
        cells, targets = [], []
        for i in train:
            if lesion[i].any():
                cells.append(features[i][lesion[i]])
                targets.append(np.ones(int(lesion[i].sum())))
            if not abnormal[i]:
                pick = rng.choice(np.flatnonzero(breast[i].ravel()), NORMAL_CELLS_PER_FILM,
                                  replace=False)
                cells.append(features[i].reshape(-1, depth)[pick])
                targets.append(np.zeros(len(pick)))
        x, y = np.concatenate(cells).astype(np.float32), np.concatenate(targets)
        mean, scale = x.mean(0), x.std(0) + 1e-6
        probe = LogisticRegression(C=0.05, max_iter=2000, class_weight="balanced")
        probe.fit((x - mean) / scale, y)
        scores, hits, located = [], 0, 0
        for i in test:
            cell_scores = probe.predict_proba((features[i].reshape(-1, depth) - mean) / scale)
            grid = np.where(breast[i], cell_scores[:, 1].reshape(rows, cols), 0.0)
            scores.append(float(np.sort(grid.ravel())[-TOP_CELLS:].mean()))
            if lesion[i].any():
                located += 1
                hits += int(lesion[i].ravel()[grid.argmax()])
        folds.append({"auc_abnormal": float(roc_auc_score(abnormal[test], scores)),
                      "pointing_game": hits / max(located, 1)})
        print(folds[-1], flush=True)
    result = {"size": args.size, "folds": folds,
              "auc_abnormal": float(np.mean([f["auc_abnormal"] for f in folds])),
              "pointing_game": float(np.mean([f["pointing_game"] for f in folds]))}
    out = REPO / "bench" / "out" / "results" / "probe.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


def _lesion_cells(lesions: list[np.ndarray], n: int, rows: int, cols: int,
                  size: int) -> np.ndarray:
    """Cells whose centre lies within a lesion's radius (at least one cell per lesion)."""
    cell = size / rows
    grid_r, grid_c = np.mgrid[0:rows, 0:cols]
    centres_r, centres_c = (grid_r + 0.5) * cell, (grid_c + 0.5) * cell
    mask = np.zeros((n, rows, cols), bool)
    for i, found in enumerate(lesions):
        for row, col, radius in found:
            mask[i] |= np.hypot(centres_r - row, centres_c - col) <= max(radius, cell)
    return mask


if __name__ == "__main__":
    main()
