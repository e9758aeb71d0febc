"""The second paper's ten head settings on rsna-640, cancer vs no cancer, cross-validated.

Why: issue 15 asks for the second paper's transfer protocol (its AL1..AL10 / GL1..GL10 rows:
validation patience, weight and bias learn-rate factors, weight L2 factor) on real screening
films, with patient-grouped folds and intervals. ``python -m core sweep`` trains one split
per setting and ``python -m core cv`` one setting, and each product run re-encodes its test
films at evaluation: 10 settings x 5 folds that way would take many hours on 2 CPU cores.
With the encoder frozen, though, a run is nothing but the ``paper2`` preset's head trained on
the encoder's features, so this script encodes every film once (through the product's
feature cache and encoder, ``core.train.fit.encoder_for``) and, for each setting and fold,
trains the product's transfer head (``TransferKind.build_head`` / ``compile``: SGD with
momentum, learn rate 1e-4, the setting's factors, L2 and patience, up to 60 epochs, class
weights, early stopping on the validation patients' loss with the best weights restored)
on the very splits ``python -m core cv --folds 5`` uses (``split_dataset``, seed 0), and
scores the fold's test films. The head pools the feature map first, so it is trained here on
the pooled features: the same function of the film.

The anchor's recipe (``bench/rsna_anchor.py``: a logistic regression on pooled features) is
fitted on these folds to the same features the heads see (the product's feature layer, not
the last map the anchor pools): ``anchor_on_these_folds`` in the JSON is that probe, and
``gain_over_anchor`` is paired with it. The anchor itself on these folds is
``rsna_anchor.py --cv-folds`` (``anchor-cvfolds.json``), which docs/RESULTS.md pairs with;
``bench/out/rsna/transfer-frozen.json`` and ``attention-frozen-256.json`` were made by
``core cv`` on these folds, so gains over them are paired too.

    python bench/rsna_sweep.py --root ../shared/data/rsna-640 --weights ../shared/weights
    python bench/rsna_sweep.py --root ../shared/data/rsna-640 --weights ../shared/weights \\
        --encoder efficientnet_lite0

Writes ``bench/out/rsna/sweep-<encoder>.json`` (per setting and fold: image and woman AUC,
sensitivity at 90% specificity, the paper's confusion counts at the argmax, the epochs
trained; the mean and 95% t-interval over folds, the paired gains, and the trivial
baselines). ``--settings 1,3`` and ``--folds-only 0`` run a part (for timing one setting);
setting 0 is a check of this script against the product: the configuration of
``transfer-frozen.json`` (Adam, 1e-3, patience 8) retrained here on the same folds, whose
figures should match that cv run's.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import REPO, SHARED

FOLDS = 5
SEED = 0
OUT = REPO / "bench" / "out" / "rsna"
#: The second paper's ten settings (its tables 1, 2, 5 and 6), as ../shared/PAPERS.md gives
#: them: (patience, weight learn-rate factor, bias learn-rate factor, L2 factor).
PAPER2_SETTINGS = ((15, 1, 2, 1), (15, 10, 20, 1), (15, 15, 20, 1), (15, 15, 30, 1),
                   (10, 20, 30, 1), (5, 20, 30, 1), (30, 20, 30, 1), (30, 20, 30, 10),
                   (30, 20, 30, 5), (40, 20, 30, 1))
#: Pretrained encoders this runs (the paper's AlexNet and GoogLeNet have no ImageNet weights
#: here), with their input size: 512 px, as the product's transfer-frozen cv row.
ENCODERS = {"mobilenet_v2": 512, "efficientnet_lite0": 512}
#: Figures per fold, as bench/rsna_anchor.py and the cv rows name them.
FIGURES = ("auc", "sensitivity_at_90_specificity", "patient_auc",
           "patient_sensitivity_at_90_specificity")
#: cv results on these very folds, paired fold by fold in the output.
PAIRED_CV = ("transfer-frozen", "attention-frozen-256")


def _interval(values: list[float]) -> dict[str, float]:
    """Mean and 95% t-interval over the folds (``core.experiments.cv.mean_interval``)."""
    from core.experiments.cv import mean_interval

    low, high = mean_interval(values) or (float("nan"), float("nan"))
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)),
            "low": float(low), "high": float(high)}


def _keras_home(weights: Path) -> str:
    """A private Keras cache holding links to the shared ImageNet files (.h5 and .pth), so
    ``weights="imagenet"`` finds them for both encoders. The feature cache stays the
    product's: its entries are keyed by content, so a warm one changes times, not figures."""
    home = Path(tempfile.mkdtemp(prefix="rsna-sweep-keras-"))
    (home / "models").mkdir()
    for file in weights.iterdir():
        if file.suffix in {".h5", ".pth"}:
            (home / "models" / file.name).symlink_to(file.resolve())
    return str(home)


def _pooled(config: Any, images: np.ndarray, chunk: int = 128) -> np.ndarray:
    """Every film's feature map through the product's frozen encoder and feature cache,
    averaged over the map (what the transfer head's first layer does), chunk by chunk so
    that memory never holds all the maps."""
    from core.models.features import cached_features
    from core.train.fit import ENCODE_BATCH, encoder_for

    _, encoder, key = encoder_for(config)

    def encode(batch: np.ndarray) -> np.ndarray:
        return np.asarray(encoder.predict_on_batch(batch[..., None].astype(np.float32)))

    parts = []
    for start in range(0, len(images), chunk):
        maps = cached_features(encode, images[start:start + chunk], key,
                               batch_size=ENCODE_BATCH, dtype=np.float16)
        parts.append(maps.astype(np.float32).mean(axis=(1, 2)))
        print(f"  encoded {min(start + chunk, len(images))}/{len(images)}", flush=True)
    return np.concatenate(parts)


def _scores(positive: np.ndarray, score: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    from core.metrics.scores import patient_scores, rank_auc, sensitivity_at_specificity

    _, woman_positive, woman_score = patient_scores(positive, score, groups)
    return {"films": len(positive), "women": len(woman_score),
            "auc": rank_auc(positive, score),
            "sensitivity_at_90_specificity": sensitivity_at_specificity(positive, score),
            "patient_auc": rank_auc(woman_positive, woman_score),
            "patient_sensitivity_at_90_specificity":
                sensitivity_at_specificity(woman_positive, woman_score)}


def _head_fold(config: Any, features: np.ndarray, labels: np.ndarray, n_classes: int,
               fit: np.ndarray, val: np.ndarray) -> tuple[Any, int]:
    """The product's transfer head for ``config``, trained as ``core.train.fit`` trains it
    (seeded, class-weighted, shuffled batches, early stopping with the best weights)."""
    import keras

    from core import backend
    from core.models.kinds import model_kind
    from core.train.batches import class_weights
    from core.train.feed import feed

    backend.seed_everything(config.seed)
    kind = model_kind(config.model)
    head = kind.build_head(config, (features.shape[1],), n_classes)
    kind.compile(head, config, config.learning_rate)
    y_fit = kind.targets(config, labels[fit], [np.zeros((0, 3))] * len(fit), n_classes, ())
    y_val = kind.targets(config, labels[val], [np.zeros((0, 3))] * len(val), n_classes, ())
    weights = class_weights(labels[fit], n_classes) if config.balance == "class_weights" \
        else None
    callbacks = []
    if config.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True))
    history = head.fit(feed(features[fit], y_fit, config.batch_size, weights, config.seed),
                       validation_data=feed(features[val], y_val, config.batch_size),
                       epochs=config.epochs, callbacks=callbacks, verbose=0, shuffle=False)
    return head, len(history.history["loss"])


def _fold_result(positive: np.ndarray, groups: np.ndarray, test: np.ndarray,
                 probability: np.ndarray, majority_is_cancer: bool) -> dict[str, Any]:
    from core.metrics.scores import binary_counts

    predicted = probability >= 0.5  # the argmax of two softmax outputs
    truth = positive[test]
    tp = int((predicted & truth).sum())
    tn = int((~predicted & ~truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    return {**_scores(truth, probability, groups[test]), **binary_counts(tn, fn, tp, fp),
            "majority_accuracy": float((truth == majority_is_cancer).mean())}


def _paired(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, Any]:
    return {name: _interval([a[name] - b[name] for a, b in zip(ours, theirs, strict=True)])
            for name in FIGURES if all(a.get(name) is not None and b.get(name) is not None
                                       for a, b in zip(ours, theirs, strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "rsna-640")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="mobilenet_v2")
    parser.add_argument("--settings", default="",
                        help="e.g. 1,3 (default: all ten, and for MobileNetV2 0 first: the "
                             "check, the product's transfer-frozen cv configuration "
                             "retrained here)")
    parser.add_argument("--folds-only", default="", help="e.g. 0 (default: all five)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON file to write")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_HOME"] = _keras_home(args.weights)

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from core.data import load_dataset
    from core.data.records import positive_class
    from core.prep.arrays import load_arrays
    from core.prep.splits import split_dataset
    from core.runs.config import TrainConfig
    from core.runs.presets import PRESETS

    numbers = [int(n) for n in args.settings.split(",")] if args.settings else \
        [0] * (args.encoder == "mobilenet_v2") + list(range(1, len(PAPER2_SETTINGS) + 1))
    folds = [int(n) for n in args.folds_only.split(",")] if args.folds_only else \
        list(range(FOLDS))
    size = ENCODERS[args.encoder]
    base = PRESETS["paper2"].config(dataset="rsna", root=str(args.root)).with_overrides(
        backbone=args.encoder, weights="imagenet", image_size=size, seed=SEED)

    started = time.time()
    dataset = load_dataset("rsna", args.root)
    warnings: list[str] = []
    arrays = load_arrays(list(dataset.records), base.prep, warnings)
    kept = {id(record) for record in arrays.records}
    index_of = np.full(len(dataset.records), -1)  # dataset film -> row of arrays, -1 left out
    row = 0
    for i, record in enumerate(dataset.records):
        if id(record) in kept:
            index_of[i] = row
            row += 1
    prepared_s = time.time() - started
    print(f"prepared {len(arrays)} films in {prepared_s:.0f} s", flush=True)
    features = _pooled(base, arrays.images)
    encoded_s = time.time() - started - prepared_s
    labels = arrays.labels
    groups = dataset.groups[index_of >= 0]
    cancer = positive_class(dataset.classes)
    positive = labels == cancer
    n_classes = len(dataset.classes)

    def rows(indices: np.ndarray) -> np.ndarray:  # dataset indices -> rows, left-out dropped
        mapped = index_of[indices]
        return mapped[mapped >= 0]

    splits = {fold: split_dataset(dataset, base.test_size, base.val_fraction, SEED,
                                  folds=FOLDS, fold=fold) for fold in folds}
    anchor = []
    for fold in folds:  # bench/rsna_anchor.py's regression on these features, the cv folds
        train = rows(np.concatenate([splits[fold].train, splits[fold].val]))
        test = rows(splits[fold].test)
        probe = make_pipeline(StandardScaler(), LogisticRegression(
            C=0.01, max_iter=2000, class_weight="balanced"))
        probe.fit(features[train], positive[train])
        anchor.append({"fold": fold, **_scores(positive[test],
                                               probe.predict_proba(features[test])[:, 1],
                                               groups[test])})

    results = []
    for number in numbers:
        if number == 0:  # the check: the product's own transfer-frozen cv row, retrained here
            saved = json.loads((OUT / "transfer-frozen.json").read_text())["config"]
            config = TrainConfig.from_dict({**saved, "root": str(args.root)})
            patience, w_factor, b_factor, l2 = (config.patience, config.weight_lr_factor,
                                                config.bias_lr_factor, config.l2_factor)
            if config.backbone != args.encoder or config.image_size != size:
                raise SystemExit("setting 0 reruns transfer-frozen: MobileNetV2 at 512 px only")
        else:
            patience, w_factor, b_factor, l2 = PAPER2_SETTINGS[number - 1]
            config = base.with_overrides(patience=patience, weight_lr_factor=float(w_factor),
                                         bias_lr_factor=float(b_factor), l2_factor=float(l2))
        setting_started = time.time()
        fold_results = []
        for fold in folds:
            fit, val, test = (rows(part) for part in
                              (splits[fold].train, splits[fold].val, splits[fold].test))
            fold_started = time.time()
            head, epochs = _head_fold(config, features, labels, n_classes, fit, val)
            probability = np.asarray(head.predict(features[test], verbose=0))[:, cancer]
            majority = bool(np.bincount(labels[np.concatenate([fit, val])],
                                        minlength=n_classes).argmax() == cancer)
            fold_results.append({"fold": fold, "epochs": epochs,
                                 "seconds": round(time.time() - fold_started, 1),
                                 **_fold_result(positive, groups, test, probability,
                                                majority)})
            print(f"  setting {number} fold {fold}: auc {fold_results[-1]['auc']:.3f}, "
                  f"{epochs} epochs, {fold_results[-1]['seconds']} s", flush=True)
        entry: dict[str, Any] = {
            "setting": number, "optimizer": config.optimizer,
            "learning_rate": config.learning_rate, "epochs_max": config.epochs,
            "dropout": config.dropout, "patience": patience, "w_factor": w_factor,
            "b_factor": b_factor, "l2_factor": l2, "folds": fold_results,
            "seconds": round(time.time() - setting_started, 1)}
        if len(folds) > 1:
            entry["summary"] = {name: _interval([f[name] for f in fold_results])
                                for name in (*FIGURES, "accuracy", "sensitivity",
                                             "specificity")}
            entry["gain_over_anchor"] = _paired(fold_results, anchor)
            for stem in PAIRED_CV:
                path = OUT / f"{stem}.json"
                if path.is_file() and len(folds) == FOLDS:
                    entry[f"gain_over_{stem}"] = _paired(
                        fold_results, json.loads(path.read_text())["folds"])
        results.append(entry)
        print(f"setting {number}: {json.dumps(entry.get('summary', {}).get('auc'))} "
              f"in {entry['seconds']} s", flush=True)

    flags = "" if args.encoder == "mobilenet_v2" else f" --encoder {args.encoder}"
    document = {
        "command": "python bench/rsna_sweep.py --root ../shared/data/rsna-640 "
                   f"--weights ../shared/weights{flags}",
        "encoder": args.encoder, "weights": "imagenet (frozen)", "image_size": size,
        "protocol": (f"{FOLDS}-fold patient-grouped CV (the folds of python -m core cv, seed "
                     f"{SEED}); paper2 preset head on the frozen encoder's pooled features"),
        "config": base.to_dict(), "films": len(arrays), "warnings": warnings,
        "anchor_on_these_folds": {"folds": anchor, "summary": {
            name: _interval([f[name] for f in anchor]) for name in FIGURES}
            if len(folds) > 1 else {}},
        "settings": results,
        "baselines": {"always_no_cancer": {"auc": 0.5, "sensitivity_at_90_specificity": 0.0},
                      "chance": {"auc": 0.5, "sensitivity_at_90_specificity": 0.10}},
        "seconds": {"prepare": round(prepared_s, 1), "encode": round(encoded_s, 1),
                    "total": round(time.time() - started, 1)}}
    out = args.out or OUT / f"sweep-{args.encoder}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
