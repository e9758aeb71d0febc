"""The naive anchor on rsna-640: frozen ImageNet MobileNetV2, globally pooled features, and a
logistic regression, cancer vs no cancer, patient-grouped 5-fold cross-validation.

Why: issue 15 asks for a floor that any model we ship must beat by a margin, measured on the
same folds, and for what the inversion fix changes. This runs the anchor twice, on films as
stored (about 16% inverted, a different share per class) and with ``fix_inverted`` on, and
prints one JSON document per variant: image- and patient-level AUC and sensitivity at 90%
specificity per fold, their mean with a 95% t-interval over the folds, and the trivial
baselines (always "no cancer": AUC 0.5, sensitivity 0; chance: AUC 0.5, sensitivity 0.10).

    python bench/rsna_anchor.py --root ../shared/data/rsna-640 --weights ../shared/weights

Features are cached in ``$MAMMO_CACHE`` (``core.models.features``), so a rerun only fits the
regressions. The JSON goes to ``bench/out/rsna/anchor.json`` (``--encoder efficientnet_lite0``:
the same probe on EfficientNet-Lite0's last feature map: ``anchor-efficientnet_lite0.json``).
``--cv-folds`` fits the inversion-fixed anchor on the folds of ``python -m core cv --folds 5``
instead (``anchor-cvfolds.json``), so that cv results and ``bench/rsna_sweep.py`` can be
paired with it fold by fold.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import REPO, SHARED

FOLDS = 5
SEED = 0
IMAGE_SIZE = 512
OUT = REPO / "bench" / "out" / "rsna"
#: The encoders the anchor can use: their ImageNet file in ``--weights``, and the name of the
#: JSON written (MobileNetV2's is the anchor the issue asks for; EfficientNet-Lite0 is the
#: same probe on the stronger encoder, its last feature map through the registry's port).
ENCODERS = {"mobilenet_v2": ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
                             "anchor.json"),
            "efficientnet_lite0": ("efficientnet-lite0-57934424.pth",
                                   "anchor-efficientnet_lite0.json")}


def _interval(values: list[float]) -> dict[str, float]:
    """Mean and 95% t-interval half-width over the folds."""
    from scipy import stats

    array = np.asarray(values, dtype=np.float64)
    half = float(stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)), "half_width": half,
            "low": float(array.mean() - half), "high": float(array.mean() + half)}


def _pooled_features(images: np.ndarray, encoder: str, weights_file: Path) -> np.ndarray:
    """The encoder's last feature map averaged over the film (1280 numbers per film for
    both), through the product's per-image feature cache (keyed by the encoder and each
    film's content)."""
    import keras

    from core.models.backbones import BACKBONES, build_backbone, film_encoder
    from core.models.features import cached_features, encoder_key

    if encoder == "mobilenet_v2":
        model = keras.applications.MobileNetV2(include_top=False, weights=None, pooling="avg",
                                               input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
        model.load_weights(str(weights_file))
        preprocess = BACKBONES["mobilenet_v2"].preprocess

        def encode(batch: np.ndarray) -> np.ndarray:
            films = np.repeat(batch[..., None], 3, axis=-1).astype(np.float32)
            return np.asarray(model.predict_on_batch(preprocess(films)))
        name = "mobilenet_v2-avg"
    else:
        grey = film_encoder(build_backbone(encoder, IMAGE_SIZE, weights_file,
                                           feature_layer="top_activation"))

        def encode(batch: np.ndarray) -> np.ndarray:
            maps = np.asarray(grey.predict_on_batch(batch[..., None].astype(np.float32)))
            return maps.mean(axis=(1, 2))
        name = f"{encoder}-avg"

    key = encoder_key({"anchor": name, "size": IMAGE_SIZE,
                       "weights": weights_file.name, "keras": keras.__version__})
    return cached_features(encode, images, key, batch_size=16, dtype=np.float32)


def run_variant(root: Path, encoder: str, weights_file: Path,
                fix_inverted: bool, cv_folds: bool = False) -> dict[str, Any]:
    """One variant of the anchor, on its own folds (``kfold`` over the films that were read)
    or (``cv_folds``) on the folds of ``python -m core cv --folds 5`` (``split_dataset`` over
    every film, a film that cannot be read dropped from its fold), so that cv results can be
    paired with it fold by fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from core.data import load_dataset
    from core.data.records import positive_class
    from core.metrics.scores import patient_scores, rank_auc, sensitivity_at_specificity
    from core.prep.preprocess import PrepSteps, preprocess_files
    from core.prep.splits import kfold, split_dataset

    started = time.time()
    dataset = load_dataset("rsna", root)
    prep = PrepSteps(fix_inverted=fix_inverted).sized(IMAGE_SIZE)
    failures: list[str] = []
    images, transforms = preprocess_files([r.path for r in dataset.records], prep,
                                          failures=failures)
    keep = np.array([t is not None for t in transforms])
    labels = dataset.labels[keep]
    groups = dataset.groups[keep]
    positive = labels == positive_class(dataset.classes)
    prepared_s = time.time() - started
    features = _pooled_features(images[keep], encoder, weights_file)
    encoded_s = time.time() - started - prepared_s

    if cv_folds:
        row_of = np.cumsum(keep) - 1  # film of the dataset -> row of the films read

        def rows(indices: np.ndarray) -> np.ndarray:
            return row_of[indices[keep[indices]]]
        splits = [split_dataset(dataset, 0.25, 0.2, SEED, folds=FOLDS, fold=fold)
                  for fold in range(FOLDS)]
        parts = [(rows(np.concatenate([s.train, s.val])), rows(s.test)) for s in splits]
    else:
        parts = kfold(labels, groups, k=FOLDS, seed=SEED)
    folds = []
    for fold, (train, test) in enumerate(parts):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000,
                                                                   class_weight="balanced"))
        model.fit(features[train], positive[train])
        score = model.predict_proba(features[test])[:, 1]
        _, woman_positive, woman_score = patient_scores(positive[test], score, groups[test])
        folds.append({
            "fold": fold, "films": len(test), "women": len(woman_score),
            "auc": rank_auc(positive[test], score),
            "sensitivity_at_90_specificity": sensitivity_at_specificity(positive[test], score),
            "patient_auc": rank_auc(woman_positive, woman_score),
            "patient_sensitivity_at_90_specificity":
                sensitivity_at_specificity(woman_positive, woman_score),
            "share_cancer": float(positive[test].mean())})
    figures = ("auc", "sensitivity_at_90_specificity", "patient_auc",
               "patient_sensitivity_at_90_specificity")
    return {
        "variant": "inversion fixed" if fix_inverted else "films as stored",
        "fix_inverted": fix_inverted, "films": int(keep.sum()), "left_out": failures,
        "folds": folds,
        "summary": {name: _interval([f[name] for f in folds]) for name in figures},
        "baselines": {"always_no_cancer": {"auc": 0.5, "sensitivity_at_90_specificity": 0.0},
                      "chance": {"auc": 0.5, "sensitivity_at_90_specificity": 0.10}},
        "seconds": {"prepare": round(prepared_s, 1), "encode": round(encoded_s, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "rsna-640")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="mobilenet_v2")
    parser.add_argument("--cv-folds", action="store_true",
                        help="only the inversion-fixed variant, on the folds of `core cv` "
                             "(written to anchor-cvfolds[-ENCODER].json)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    file_name, out_name = ENCODERS[args.encoder]
    weights_file = args.weights / file_name
    if not weights_file.is_file():
        raise SystemExit(f"{weights_file}: the encoder's ImageNet file is needed")
    flag = "" if args.encoder == "mobilenet_v2" else f" --encoder {args.encoder}"
    title = {"mobilenet_v2": "MobileNetV2", "efficientnet_lite0": "EfficientNet-Lite0"}
    if args.cv_folds:
        out_name = out_name.replace("anchor", "anchor-cvfolds")
        variant = run_variant(args.root, args.encoder, weights_file, True, cv_folds=True)
        document = {"command": "python bench/rsna_anchor.py --root ../shared/data/rsna-640 "
                               f"--weights ../shared/weights{flag} --cv-folds",
                    "model": f"frozen ImageNet {title[args.encoder]} (512 px, global average "
                             "pool) + logistic regression (C=0.01, balanced)",
                    "protocol": f"the folds of python -m core cv --folds {FOLDS} (seed {SEED})",
                    "variants": [variant]}
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / out_name).write_text(json.dumps(document, indent=2) + "\n")
        print(", ".join(f"{name} {s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"
                        for name, s in variant["summary"].items()))
        return
    result = {"command": "python bench/rsna_anchor.py --root ../shared/data/rsna-640 "
                         f"--weights ../shared/weights{flag}",
              "model": f"frozen ImageNet {title[args.encoder]} (512 px, global average pool) "
                       "+ logistic regression (C=0.01, balanced)",
              "protocol": f"{FOLDS}-fold patient-grouped CV, seed {SEED}",
              "variants": [run_variant(args.root, args.encoder, weights_file, fix)
                           for fix in (False, True)]}
    stored, fixed = result["variants"]
    result["inversion_fix_gain"] = {  # paired fold by fold: the same folds, the same films
        name: _interval([f[name] - s[name] for f, s in zip(fixed["folds"], stored["folds"])])
        for name in stored["summary"]}
    reference = OUT / ENCODERS["mobilenet_v2"][1]
    if args.encoder != "mobilenet_v2" and reference.is_file():
        # The same folds (the same films, the same seed): paired fold by fold with the anchor.
        anchor = json.loads(reference.read_text())["variants"]
        result["gain_over_mobilenet_v2"] = {
            variant["variant"]: {name: _interval([f[name] - a[name] for f, a in zip(
                variant["folds"], base["folds"])]) for name in variant["summary"]}
            for variant, base in zip(result["variants"], anchor)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / out_name).write_text(json.dumps(result, indent=2) + "\n")
    for variant in result["variants"]:
        summary = variant["summary"]
        print(f"{variant['variant']}: " + ", ".join(
            f"{name} {s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"
            for name, s in summary.items()))
    print("inversion fix, paired gain: " + ", ".join(
        f"{name} {s['mean']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}]"
        for name, s in result["inversion_fix_gain"].items()))
    for variant, gains in result.get("gain_over_mobilenet_v2", {}).items():
        print(f"{variant}, paired gain over the MobileNetV2 anchor: " + ", ".join(
            f"{name} {s['mean']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}]"
            for name, s in gains.items()))


if __name__ == "__main__":
    main()
