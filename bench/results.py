"""Regenerate docs/RESULTS.md: both papers' protocols reproduced, and our configuration under
patient-grouped cross-validation, each beside the trivial baselines.

    python bench/results.py paper1 --mias ../shared/data/mias --weights ../shared/weights
    python bench/results.py paper2 --mias ../shared/data/mias --weights ../shared/weights
    python bench/results.py best   --mias ../shared/data/mias --weights ../shared/weights
    python bench/results.py render

Each experiment writes its figures to ``bench/out/results/<name>.json`` (and the best
configuration's heatmap gallery to ``docs/results/``); ``render`` turns whatever JSON is there
into docs/RESULTS.md, so a table is never typed by hand. Every experiment uses private Keras
and feature caches (``bench/scratch.py``): a figure never depends on a warm cache.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from core.settings import REPO, SHARED

OUT = REPO / "bench" / "out" / "results"
DOCS = REPO / "docs"
GALLERY = DOCS / "results"
#: The configuration every repeated comparison is paired against: the frozen ImageNet
#: encoder, measured on every seed's folds (``variants/frozen.json``, ``seed<N>/frozen.json``).
REFERENCE = "frozen"
FIGURES = ("macro_f1", "weighted_f1", "accuracy", "auc_abnormal", "auc_malignant",
           "pointing_game")
GALLERY_PER_KIND = 4
GALLERY_SIDE = 320
#: Below this probe AUC the frozen encoder's cells are called too weak to build on.
PROBE_WEAK_AUC = 0.7

#: The first paper's table 1 (83 random test films), from ../shared/PAPERS.md.
PAPER1_TABLE = [
    ("ARCH", 0.14, 0.20, 0.17, 5), ("ASYM", 0.20, 0.67, 0.31, 3), ("CALC", 0.31, 0.62, 0.42, 8),
    ("CIRC", 0.18, 0.33, 0.24, 6), ("MISC", 0.16, 0.75, 0.26, 4), ("NORM", 0.55, 0.12, 0.19, 52),
    ("SPIC", 0.11, 0.14, 0.14, 5), ("micro avg", 0.24, 0.24, 0.24, 83),
    ("macro avg", 0.24, 0.41, 0.25, 83), ("weighted avg", 0.42, 0.24, 0.22, 83)]
#: Encoders for the first paper's protocol: its own (VGG16: no ImageNet file exists offline,
#: so random-init) and the one pretrained encoder we have.
PAPER1_ENCODERS = (("vgg16", "none"), ("mobilenet_v2", "imagenet"))
#: The second paper's ten settings (its AL1..AL10 / GL1..GL10): patience, weight and bias
#: learn-rate factors, L2 factor.
PAPER2_SETTINGS = ((15, 1, 2, 1), (15, 10, 20, 1), (15, 15, 20, 1), (15, 15, 30, 1),
                   (10, 20, 30, 1), (5, 20, 30, 1), (30, 20, 30, 1), (30, 20, 30, 10),
                   (30, 20, 30, 5), (40, 20, 30, 1))
#: Networks for it, with their input sizes: the paper's two (no ImageNet files offline, so
#: random-init) and the pretrained one we have.
PAPER2_NETWORKS = (("AL", "alexnet", "none", 227), ("GL", "googlenet", "none", 224),
                   ("MN", "mobilenet_v2", "imagenet", 224))
#: The paper's best AlexNet row (AL3), for the table's first line.
PAPER2_BEST = {"tn": 500, "fn": 43, "tp": 354, "fp": 4}


def _setup(weights: Path) -> None:
    from bench.scratch import private_caches

    os.environ.update(private_caches(weights, Path(tempfile.mkdtemp(prefix="mammo-results-"))))


def _save(name: str, document: dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(document, indent=2, default=str))
    print(f"wrote {OUT / name}.json")


def paper1(mias: Path, runs: Path) -> None:
    """The first paper's protocol: one random 75/25 split of films, balanced 1300, 224 px,
    plain RNN, squared error, 15 epochs; and the same with patients kept apart."""
    from core.evaluate.evaluate import evaluate_run
    from core.evaluate.saved import report_table
    from core.runs.presets import PRESETS
    from core.train.fit import train

    rows = []
    for backbone, weights in PAPER1_ENCODERS:
        for by_patient in (False, True):
            config = PRESETS["paper1"].config(dataset="mias", root=str(mias)).with_overrides(
                backbone=backbone, weights=weights, split_by_patient=by_patient)
            started = time.time()
            run = train(config, runs)
            evaluation = evaluate_run(run)
            rows.append({"backbone": backbone, "weights": weights, "by_patient": by_patient,
                         "run": run.name, "minutes": round((time.time() - started) / 60, 1),
                         "report": report_table(evaluation),
                         **{name: evaluation.get(name) for name in FIGURES},
                         "baseline": evaluation["baselines"]["majority"]})
    _save("paper1", {"protocol": "paper1 preset", "rows": rows})


def paper2(mias: Path, runs: Path) -> None:
    """The second paper's sweep on benign vs malignant MIAS lesion crops: one patient-grouped
    70/30 split, the ten settings for each network, frozen encoder + new head."""
    from core.evaluate.evaluate import evaluate_run
    from core.metrics.scores import binary_counts
    from core.prep.preprocess import PrepConfig
    from core.runs.presets import PRESETS
    from core.train.fit import train

    rows = []
    for prefix, backbone, weights, size in PAPER2_NETWORKS:
        for number, (patience, w_factor, b_factor, l2) in enumerate(PAPER2_SETTINGS, start=1):
            config = PRESETS["paper2"].config(dataset="mias-lesions", root=str(mias)) \
                .with_overrides(backbone=backbone, weights=weights, image_size=size,
                                patience=patience, weight_lr_factor=float(w_factor),
                                bias_lr_factor=float(b_factor), l2_factor=float(l2),
                                prep=PrepConfig(crop_to_breast=False, orient=False,
                                                size=size).to_dict())
            started = time.time()
            run = train(config, runs)
            evaluation = evaluate_run(run)
            (tn, fp), (fn, tp) = evaluation["confusion_matrix"]
            baseline = evaluation["baselines"]["majority"]
            rows.append({"name": f"{prefix}{number}", "backbone": backbone, "weights": weights,
                         "patience": patience, "w_factor": w_factor, "b_factor": b_factor,
                         "l2_factor": l2, "run": run.name,
                         "val_accuracy": (run.manifest.get("val") or {}).get("accuracy"),
                         "auc": evaluation.get("auc"),
                         "seconds": round(time.time() - started),
                         **binary_counts(tn, fn, tp, fp),
                         "majority_class": baseline["class"],
                         "majority_accuracy": baseline["accuracy"]})
    _save("paper2", {"protocol": "paper2 preset on mias-lesions", "rows": rows})


def best(mias: Path, runs: Path, folds: int, overrides: dict[str, Any]) -> None:
    """Our default configuration (plus ``overrides``) under patient-grouped k-fold CV, and a
    gallery of right and wrong heatmaps from its test folds."""
    from core.evaluate.evaluate import evaluate_run
    from core.experiments.cv import summarise_folds
    from core.runs.config import TrainConfig
    from core.train.fit import train

    base = TrainConfig(dataset="mias", root=str(mias)).with_overrides(**overrides)
    results, gallery = [], []
    started = time.time()
    GALLERY.mkdir(parents=True, exist_ok=True)
    for old in GALLERY.glob("*.png"):
        old.unlink()
    for fold in range(folds):
        run = train(base.with_overrides(folds=folds, fold=fold), runs)
        evaluation = evaluate_run(run, gallery_dir=run.path / "gallery")
        for entry in _pick_gallery(evaluation.get("gallery") or [], fold):
            target = GALLERY / f"fold{fold}-{entry['film']}.png"
            _shrink(Path(entry["overlay"]), target)
            gallery.append({**{k: entry[k] for k in ("film", "actual", "predicted")},
                            "fold": fold, "file": target.name})
        evaluation.pop("gallery", None)
        results.append({"fold": fold, "run": run.name, **evaluation})
    summary = summarise_folds(results)
    _save("best", {"config": base.to_dict(), "overrides": overrides, "folds": folds,
                   "minutes": round((time.time() - started) / 60, 1), "summary": summary,
                   "per_fold": [{"fold": r["fold"], "run": r["run"],
                                 **{name: r.get(name) for name in FIGURES},
                                 "baseline": r["baselines"]["majority"],
                                 "localisation": r["localisation"]["overall"]}
                                for r in results],
                   "gallery": gallery})


def _shrink(source: Path, target: Path, side: int = GALLERY_SIDE) -> None:
    """A small copy for the docs (a full-size overlay is about 1 MB)."""
    from PIL import Image

    with Image.open(source) as image:
        image.thumbnail((side, side))
        image.save(target, optimize=True)


def _pick_gallery(entries: list[dict[str, Any]], fold: int) -> list[dict[str, Any]]:
    """A few right and a few wrong films of one fold (all folds together give the gallery)."""
    per_fold = max(1, GALLERY_PER_KIND // 2)
    right = [e for e in entries if e["actual"] == e["predicted"]][:per_fold]
    wrong = [e for e in entries if e["actual"] != e["predicted"]][:per_fold]
    return right + wrong


# -- rendering ---------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation and the half-width of the 95% t-interval (n >= 2)."""
    from scipy import stats  # a dependency of scikit-learn, so always installed with it

    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, std, float(stats.t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))


def _interval(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) < 2:
        return f"{values[0]:.2f}"
    mean, std, half = _t_interval(values)
    return f"{mean:.2f} ± {std:.2f} [{mean - half:.2f}, {mean + half:.2f}]"


def _paper1_section(document: dict[str, Any]) -> list[str]:
    lines = ["## 1. The first paper's protocol, reproduced", "",
             ("Command: `python bench/results.py paper1 --mias ../shared/data/mias "
             "--weights ../shared/weights`, then `python bench/results.py render`."), "",
             ("Protocol (preset `paper1`): one random 75/25 split of **films**, training films "
             "augmented to a balanced 1300, 224 px, a plain RNN decoder with 6 attention steps, "
             "squared-error loss, 15 epochs, no lesion supervision. VGG16 has no ImageNet file "
             "offline, so its rows are a **random-init** VGG16 (frozen): they show what the "
             "decoder learns from untrained features, not what the paper's fine-tuned VGG16 "
             "could. MobileNetV2 rows use genuine ImageNet weights. Each protocol is run on "
             "the paper's film split and again with patients kept apart."), "",
             ("| encoder | split | macro-F1 | weighted F1 | accuracy | AUC abnormal | "
             "always-NORM weighted F1 | always-NORM accuracy | minutes |"),
             "|---|---|---|---|---|---|---|---|---|",
             ("| paper: VGG16 (ImageNet, fine-tuned) | films, 83 test | 0.25 | 0.22 | 0.24 | "
             "not reported | 0.48 | 0.63 | |")]
    for row in document["rows"]:
        split = "patients" if row["by_patient"] else "films"
        lines.append(
            f"| {row['backbone']} ({row['weights']}) | {split} | {_fmt(row['macro_f1'])} | "
            f"{_fmt(row['weighted_f1'])} | {_fmt(row['accuracy'])} | "
            f"{_fmt(row['auc_abnormal'])} | {_fmt(row['baseline']['weighted_f1'])} | "
            f"{_fmt(row['baseline']['accuracy'])} | {row['minutes']} |")
    beaten = [row for row in document["rows"]
              if (row["weighted_f1"] or 0) > row["baseline"]["weighted_f1"]]
    lines += ["", (f"{len(beaten)} of {len(document['rows'])} of our runs of this protocol beat "
                   "always answering NORM on weighted F1, and neither does the paper's own "
                   "figure. Trained this way (frozen encoder, squared error, 15 epochs, classes "
                   "grown to equal size), the decoder mostly collapses onto one class; our "
                   "default recipe (lesion supervision, cross-entropy, patience) is what the "
                   "next sections measure.")]
    lines += ["", "Per-class report beside the paper's table 1 (film split, MobileNetV2 row):", "",
              "| class | paper P | paper R | paper F1 | n | ours P | ours R | ours F1 | n |",
              "|---|---|---|---|---|---|---|---|---|"]
    ours = next((r for r in document["rows"] if r["backbone"] == "mobilenet_v2"
                 and not r["by_patient"]), None)
    mine = {entry["label"]: entry for entry in (ours or {}).get("report", [])}
    for label, p, r, f, n in PAPER1_TABLE:
        m = mine.get(label, {})
        lines.append(f"| {label} | {p} | {r} | {f} | {n} | {_fmt(m.get('precision'))} | "
                     f"{_fmt(m.get('recall'))} | {_fmt(m.get('f1'))} | {m.get('support', '')} |")
    lines += ["", ("What the paper's protocol gets wrong: the two films of a patient (left and "
              "right breast) land on both sides of a random film split, so the test set is "
              "not new patients; one split of 83 films gives no spread at all; and NORM "
              "recall 0.12 means its model called most normal films abnormal, so its weighted "
              "F1 (0.22) is far below answering NORM always (0.48)."), ""]
    return lines


def _paper2_section(document: dict[str, Any]) -> list[str]:
    from core.metrics.scores import binary_counts

    rows = document["rows"]
    first = rows[0]
    n = first["tn"] + first["fn"] + first["tp"] + first["fp"]
    lines = ["## 2. The second paper's sweep, on MIAS lesions", "",
             ("A footnote: the second paper's main reproduction is on real screening films, "
              "section 4, \"The second paper's protocol on rsna-640\"."), "",
             ("Command: `python bench/results.py paper2 --mias ../shared/data/mias "
              "--weights ../shared/weights`, then `python bench/results.py render`."), "",
             ("CBIS-DDSM images are not available here, so the task is the paper's (benign "
              "vs malignant) on what is: a square crop around each located MIAS lesion "
              "(dataset `mias-lesions`: 91 crops, 51 benign and 40 malignant, of 80 "
              f"patients), one patient-grouped 70/30 split ({n} test crops), a frozen "
              "encoder and the paper's new head (preset `paper2`: SGD with momentum, "
              "learn rate 1e-4, the weight and bias learn-rate factors, L2 factor and "
              "validation patience of each row). AlexNet and GoogLeNet have no ImageNet "
              "files offline, so their rows are **random-init** encoders; MN rows are "
              "MobileNetV2 with genuine ImageNet weights. Positive class: malignant."), "",
             ("| net | patience | W LR factor | B LR factor | L2 factor | val acc | TN | FN | "
              "TP | FP | accuracy | sensitivity | specificity | F | test AUC |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    paper = binary_counts(**PAPER2_BEST)
    lines.append("| paper AL3 (CBIS-DDSM, 901 test patterns) | 15 | 15 | 20 | 1 | 0.95 | "
                 f"{paper['tn']} | {paper['fn']} | {paper['tp']} | {paper['fp']} | "
                 f"{_fmt(paper['accuracy'])} | {_fmt(paper['sensitivity'])} | "
                 f"{_fmt(paper['specificity'])} | {_fmt(paper['f_measure'])} | |")
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['patience']} | {row['w_factor']} | {row['b_factor']} | "
            f"{row['l2_factor']} | {_fmt(row['val_accuracy'])} | {row['tn']} | {row['fn']} | "
            f"{row['tp']} | {row['fp']} | {_fmt(row['accuracy'])} | "
            f"{_fmt(row['sensitivity'])} | {_fmt(row['specificity'])} | "
            f"{_fmt(row['f_measure'])} | {_fmt(row['auc'])} |")
    top = max(rows, key=lambda row: row["accuracy"] or 0.0)
    low, high = _wilson(top["tp"] + top["tn"], n)
    lines += ["", (f"Always answering {first['majority_class']} (the training split's "
                   f"majority) scores accuracy {_fmt(first['majority_accuracy'])} on the same "
                   "test crops, sensitivity 0 and no F-measure; chance AUC is 0.50. The best "
                   f"row by accuracy, {top['name']} ({_fmt(top['accuracy'])}), has a 95% "
                   f"Wilson interval of [{low:.2f}, {high:.2f}] on {n} crops: no row can be "
                   "told apart from always-benign or chance here, and the paper's 0.95 on "
                   "CBIS-DDSM patterns (possibly augmented crops of one patient on both "
                   "sides) is not comparable."), ""]
    return lines


def _wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound for small n, unlike +-2 SE)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _encoder_text(config: dict[str, Any]) -> str:
    """How a configuration treats its encoder, in words, from its saved settings."""
    text = f"{config['backbone']} ({config['weights']} weights) at {config['image_size']} px"
    if config.get("patch_epochs"):
        text += (f", its top {config['patch_layers']} layers pretrained for up to "
                 f"{config['patch_epochs']} epochs on {config['patch_size']} px patches, "
                 + ("lesion vs normal tissue" if config.get("patch_labels") == "lesion"
                    else "labelled by the film's class"))
    if config.get("fine_tune_layers"):
        text += (f", then its top {config['fine_tune_layers']} layers fine-tuned on films for "
                 f"{config['fine_tune_epochs']} epochs")
    if not config.get("patch_epochs") and not config.get("fine_tune_layers"):
        text += ", frozen"
    return text


def _best_section(document: dict[str, Any]) -> list[str]:
    folds = document["per_fold"]
    baseline = document["summary"]["baseline_majority_mean"]
    lines = ["## 3. Our configuration, patient-grouped cross-validation", "",
             (f"Command: `python bench/results.py best --mias ../shared/data/mias --weights "
             f"../shared/weights --folds {document['folds']}`, then "
             "`python bench/results.py render`."), "",
             "Configuration: the shipped default (`python -m core train` with no options)"
             + (f", with {document['overrides']}" if document["overrides"] else "")
             + f": {_encoder_text(document['config'])}"
             + f". {document['folds']} folds, each fold's test patients never seen in "
             f"training; {document['minutes']} min for all folds on this 2-core CPU. Figures: "
             "mean ± standard deviation over folds [95% t-interval of the mean].", "",
             "| figure | ours | always majority (training folds' class) | chance | target |",
             "|---|---|---|---|---|"]
    targets = {"macro_f1": "0.40", "auc_abnormal": "0.85", "auc_malignant": "0.80",
               "pointing_game": "0.60"}
    chance = {"accuracy": "0.14", "auc_abnormal": "0.50", "auc_malignant": "0.50",
              "pointing_game": _fmt(_mean([f["localisation"].get("chance") for f in folds]))}
    for name in FIGURES:
        lines.append(f"| {name} | {_interval([f[name] for f in folds])} | "
                     f"{_fmt(baseline.get(name))} | {chance.get(name, '')} | "
                     f"{targets.get(name, '')} |")
    lines += ["", "| fold | run | macro-F1 | AUC abnormal | AUC malignant | pointing |",
              "|---|---|---|---|---|---|"]
    for f in folds:
        lines.append(f"| {f['fold']} | `{f['run']}` | {_fmt(f['macro_f1'])} | "
                     f"{_fmt(f['auc_abnormal'])} | {_fmt(f['auc_malignant'])} | "
                     f"{_fmt(f['pointing_game'])} |")
    lines += ["", ("Heatmaps of test films (Viridis: where the model looked; red circles: the "
              "annotated lesions), right and wrong alike:"), ""]
    for entry in document["gallery"]:
        mark = "right" if entry["actual"] == entry["predicted"] else "WRONG"
        lines.append(f"![{entry['film']}](results/{entry['file']}) "
                     f"fold {entry['fold']}, {entry['film']}: actual {entry['actual']}, "
                     f"predicted {entry['predicted']} ({mark})  ")
    return lines + [""]


def _paired_gain(result: dict[str, Any], default: dict[str, Any] | None,
                 name: str) -> tuple[float, float, float] | None:
    """A variant's per-fold difference from the default on the same folds: mean, standard
    deviation and 95% t half-width. The folds are shared, so the pairing removes most of the
    fold-to-fold spread that makes two means with overlapping deviations hard to compare."""
    if default is None:
        return None
    base = {f["fold"]: f[name] for f in default["per_fold"]}
    gains = [f[name] - base[f["fold"]] for f in result["folds"]
             if f.get(name) is not None and base.get(f["fold"]) is not None]
    return _t_interval(gains) if len(gains) >= 2 else None


def _gain_text(gain: tuple[float, float, float] | None) -> str:
    if gain is None:
        return ""
    mean, std, half = gain
    return f"{mean:+.2f} (sd {std:.2f}) [{mean - half:+.2f}, {mean + half:+.2f}]"


def _variants_section() -> list[str]:
    """Other configurations, each measured with ``python -m core cv ... --json`` saved as
    ``variants/<name>.json`` beside the command that made it (``<name>.cmd``)."""
    folder = OUT / "variants"
    documents = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not documents:
        return []
    best_json = OUT / "best.json"
    default = json.loads(best_json.read_text()) if best_json.is_file() else None
    lines = ["## Other configurations measured (same 5 patient-grouped folds)", "",
             ("Each row is one `python -m core cv` command (printed in the row) whose JSON "
              "output is kept in `bench/out/results/variants/`. Mean ± standard deviation over "
              "the folds. The last column pairs each fold with the same fold of section 3's "
              "default run: the mean difference in abnormal vs normal AUC, its standard "
              "deviation and 95% t-interval. An interval that holds 0 is no measured "
              "difference."), "",
             ("| command | macro-F1 | weighted F1 | accuracy | AUC abnormal | AUC malignant | "
              "pointing | AUC abnormal minus the default's, paired by fold |"),
             "|---|---|---|---|---|---|---|---|"]
    better: list[str] = []
    for path in documents:
        result = json.loads(path.read_text())
        command = path.with_suffix(".cmd").read_text().strip()
        cells = [_spread(result, name) for name in ("macro_f1", "weighted_f1", "accuracy",
                                                    "auc_abnormal", "auc_malignant",
                                                    "pointing_game")]
        gain = _paired_gain(result, default, "auc_abnormal")
        cells.append(_gain_text(gain))
        lines.append(f"| `{command}` | {' | '.join(cells)} |")
        if gain is not None and gain[0] - gain[2] > 0:
            better.append(f"`{path.stem}`")
    verdict = (f"Measured better than the default on these folds (paired AUC interval above "
               f"zero): {', '.join(better)}; the next section asks whether that holds on "
               "other folds." if better else
               "No variant's paired AUC interval lies above zero: none is measured better "
               "than the default on these folds.")
    return [*lines, "", verdict, ""]


def _seed_folders() -> dict[int, Path]:
    """Where each seed's fold assignment was measured: seed 0 (the CLI's default) is the
    variants table, ``seed<N>/`` holds the same commands rerun with ``--seed N``."""
    folders = {0: OUT / "variants"}
    for folder in OUT.glob("seed*"):
        match = re.fullmatch(r"seed(\d+)", folder.name)
        if match and folder.is_dir():
            folders[int(match.group(1))] = folder
    return dict(sorted(folders.items()))


def pooled_gains(pairs: list[tuple[dict[str, Any], dict[str, Any]]],
                 name: str) -> tuple[float, float, float, int] | None:
    """A candidate's gain over the reference, fold by fold, pooled over every seed: mean,
    standard deviation, 95% t half-width and the number of paired folds. Each pair is two
    ``core cv`` documents measured on the same folds (one seed)."""
    gains = []
    for candidate, reference in pairs:
        base = {f["fold"]: f.get(name) for f in reference["folds"]}
        gains += [f[name] - base[f["fold"]] for f in candidate["folds"]
                  if f.get(name) is not None and base.get(f["fold"]) is not None]
    return (*_t_interval(gains), len(gains)) if len(gains) >= 2 else None


def _shipped_note(folder: Path, stems: list[str]) -> str:
    """Says which candidate section 3 measured as the shipped default, if one of them is."""
    best_json = OUT / "best.json"
    if not best_json.is_file():
        return ""
    shipped = _encoder_text(json.loads(best_json.read_text())["config"])
    for stem in stems:
        config = json.loads((folder / f"{stem}.json").read_text())["config"]
        if _encoder_text(config) == shipped:
            return ", which is now the shipped default (section 3)"
    return ""


def _pooled_text(gain: tuple[float, float, float, int] | None) -> str:
    if gain is None:
        return ""
    mean, _, half, _ = gain
    return f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}]"


def _repeats_section() -> list[str]:
    """Candidates rerun on other fold assignments, each paired with the frozen reference on
    the same folds: one seed's five folds are too few to tell a gain of a few points from
    the spread between folds."""
    folders = _seed_folders()
    if len(folders) < 2 or not all((f / f"{REFERENCE}.json").is_file()
                                   for f in folders.values()):
        return []
    stems = set.intersection(*({p.stem for p in f.glob("*.json")} for f in folders.values()))
    stems.discard(REFERENCE)
    seeds = ", ".join(str(seed) for seed in folders)
    lines = ["## Repeated on other folds: which gains hold", "",
             (f"The candidates below and the frozen reference (`{REFERENCE}`) were rerun with "
              f"`--seed N` added to their command, which deals the patients into other folds "
              f"(seeds {seeds}; seed 0 is the table above, the others are kept in "
              "`bench/out/results/seed<N>/`). Each fold pairs a candidate with the reference "
              "on the same test patients; the gains are pooled over all those folds. Mean "
              "gain [95% t-interval]. A candidate was picked as the best of the table above, "
              "on seed 0's folds, which flatters it there; the last gain column leaves those "
              "folds out."), "",
             ("| configuration | paired folds | AUC abnormal gain | AUC malignant gain | "
              "macro-F1 gain | pointing gain | mean AUC abnormal per seed | AUC abnormal "
              "gain, seeds other than 0 |"),
             "|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for stem in sorted(stems):
        pairs = [(json.loads((f / f"{stem}.json").read_text()),
                  json.loads((f / f"{REFERENCE}.json").read_text())) for f in folders.values()]
        cells, n = [], 0
        for name in ("auc_abnormal", "auc_malignant", "macro_f1", "pointing_game"):
            gain = pooled_gains(pairs, name)
            cells.append(_pooled_text(gain))
            n = max(n, gain[3] if gain else 0)
        cells.append(" / ".join(_fmt(c["mean"].get("auc_abnormal")) for c, _ in pairs))
        cells.append(_pooled_text(pooled_gains(pairs[1:], "auc_abnormal")))
        lines.append(f"| `{stem}` | {n} | {' | '.join(cells)} |")
        auc = pooled_gains(pairs, "auc_abnormal")
        if auc is not None and auc[0] - auc[2] > 0:
            verdicts.append(stem)
    rule = ("The rule for the shipped default: a configuration replaces the frozen reference "
            "only if its pooled paired gain in abnormal vs normal AUC has a 95% interval above "
            "zero. ")
    verdict = (f"Measured better than the frozen reference by that rule: "
               f"{', '.join(f'`{stem}`' for stem in verdicts)}"
               f"{_shipped_note(folders[0], verdicts)}." if verdicts else
               "No candidate meets it, so the frozen reference stays the default.")
    return [*lines, "", rule + verdict, ""]


CANDIDATES = OUT / "candidates"
#: The shipped MIAS default's cv documents, one per seed (the repeats table's winner).
DEFAULT_STEM = "patchlesion-finetune10"
#: Issue 15's MIAS candidates, in the table's order: (document name, what it is).
MIAS_CANDIDATES = (
    ("rsna-encoder", ("(a) MobileNetV2 fine-tuned on rsna-640 cancer vs no cancer first "
                     "(`python -m core encoder`), then the default's training on MIAS")),
    ("effnet-lite0", ("(b) EfficientNet-Lite0 (ImageNet) instead of MobileNetV2, the default's "
                     "settings otherwise")),
    ("both-breasts", ("(c) both films of a woman read together (`--both-breasts`: one encoder "
                     "over the film and its other breast, the decoder reading [F, F - F'] on "
                     "the film's grid), the default's settings otherwise")),
    ("ensemble", "(d) an ensemble: the mean of (a)'s and (b)'s probabilities, fold by fold"),
    # Chosen before (c) was measured: every single-model candidate together.
    ("ensemble-abc", "(d) the mean of (a)'s, (b)'s and (c)'s probabilities, fold by fold"),
    # The issue's own (d): one configuration's fold models together (FOLD_ENSEMBLE_NOTE).
    ("fold-ensemble-default", ("(d) an ensemble of the default's fold models: each film "
                               "scored by the mean of the three seeds' fold models that never "
                               "saw its woman (the default measured again)")),
    ("fold-ensemble-rsna-encoder", "(d) the same of (a)'s fold models"),
    ("fold-ensemble-effnet-lite0", "(d) the same of (b)'s fold models"),
    ("fold-ensemble-both-breasts", "(d) the same of (c)'s fold models"))
#: What the fold-model ensembles' rows are, and how their intervals must be read.
FOLD_ENSEMBLE_NOTE = (
    "The fold-model ensembles (`python bench/mias_ensemble.py --members NAME --across-seeds "
    "--name fold-ensemble-NAME`) train nothing: each seed splits the same women differently, "
    "so every film was scored by one fold model per seed, none of which saw its woman, and "
    "the three scores are averaged, as a new woman would be scored by the fold models of a "
    "`core cv`. A film then has the same score in every seed's folds, so these 15 paired "
    "folds depend on each other more than a single model's repeats do: their intervals are "
    "narrower than the evidence. Their pointing column is empty (maps are not kept).")
#: The shipped default's command measured again on the current code, on the same folds
#: (``candidates/seed<N>/default-again.json``): the reference without the batch-order change
#: between the default's documents and the candidates'.
DEFAULT_AGAIN = "default-again"
#: Candidates that start from candidate (a)'s encoder, trained on rsna-640 (research-only).
FROM_RSNA = frozenset({"rsna-encoder", "ensemble", "ensemble-abc",
                       "fold-ensemble-rsna-encoder"})
#: The paired folds the rule for changing the MIAS default asks for (seeds 0, 1, 2).
RULE_FOLDS = 15
#: The figures of the candidates table: (key, heading, the issue's target).
CANDIDATE_FIGURES = (("auc_abnormal", "AUC abnormal", 0.85), ("auc_malignant", "AUC malignant",
                                                                0.80),
                     ("macro_f1", "macro-F1", 0.40), ("pointing_game", "pointing", 0.60))


def _candidate_pairs(stem: str, reference: str | None = None
                     ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(candidate, reference) cv documents of each seed where both were measured; the
    reference is the default's documents, or another candidate document (``DEFAULT_AGAIN``)."""
    pairs = []
    for seed, folder in _seed_folders().items():
        candidate = CANDIDATES / f"seed{seed}" / f"{stem}.json"
        default = (folder / f"{DEFAULT_STEM}.json" if reference is None
                   else CANDIDATES / f"seed{seed}" / f"{reference}.json")
        if candidate.is_file() and default.is_file():
            pairs.append((json.loads(candidate.read_text()), json.loads(default.read_text())))
    return pairs


def _pooled_mean(documents: list[dict[str, Any]], name: str) -> str:
    values = [f[name] for document in documents for f in document["folds"]
              if f.get(name) is not None]
    return _interval(values) if len(values) >= 2 else ""


def _candidates_section() -> list[str]:
    """Issue 15's MIAS candidates, each paired fold by fold with the shipped default on the
    same folds of every seed measured, and judged by the rule of the repeats section."""
    rows = [(stem, text, _candidate_pairs(stem)) for stem, text in MIAS_CANDIDATES]
    if not any(pairs for _, _, pairs in rows):
        return []
    lines = ["## MIAS again: what the screening films and other encoders allow", "",
             ("Issue 15's candidates against the shipped default (section 3), each on the "
              "folds of seeds 0, 1 and 2 as far as measured (`bench/out/results/candidates/"
              "seed<N>/`, its command beside each JSON), paired fold by fold with the default's "
              "documents of the same seed. Gains: mean over the paired folds [95% "
              "t-interval]; figures: pooled mean over the folds [95% t-interval]. The default's "
              "documents were measured before issue 19 changed each epoch's batch order "
              "(docs/SCALE.md), so a pair differs in that too."), "",
             ("| candidate | paired folds | AUC abnormal gain | AUC malignant gain | macro-F1 "
              "gain | pointing gain | AUC abnormal | AUC malignant | macro-F1 | pointing |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    files = [folder / f"{DEFAULT_STEM}.json" for folder in _seed_folders().values()]
    defaults = [json.loads(file.read_text()) for file in files if file.is_file()]
    lines.append(f"| the shipped default (`{DEFAULT_STEM}`), all {_fold_count(defaults)} folds "
                 "| | | | | | "
                 + " | ".join(_pooled_mean(defaults, key) for key, _, _ in CANDIDATE_FIGURES)
                 + " |")
    verdicts = []
    for stem, text, pairs in rows:
        if not pairs:
            lines.append(f"| {text} | 0 | not measured | | | | | | | |")
            continue
        gains = [pooled_gains(pairs, key) for key, _, _ in CANDIDATE_FIGURES]
        n = max((gain[3] for gain in gains if gain), default=0)
        figures = [_pooled_mean([c for c, _ in pairs], key) for key, _, _ in CANDIDATE_FIGURES]
        lines.append(f"| {text} (`{stem}`) | {n} | "
                     + " | ".join(_pooled_text(gain) for gain in gains) + " | "
                     + " | ".join(figures) + " |")
        if gains[0] is not None and gains[0][0] - gains[0][2] > 0:
            verdicts.append(stem)
    lines.append("| target (issue 15) | | | | | | "
                 + " | ".join(f"{target:.2f}" for _, _, target in CANDIDATE_FIGURES) + " |")
    lines.append("| always the training folds' majority class (NORM), the default's folds | | | | | "
                 f"| 0.50 | 0.50 | {_majority_macro_f1(defaults)} | |")
    lines.append("| chance (a random point in the breast for pointing) | | | | | | 0.50 | 0.50 "
                 f"| | {_pointing_chance(defaults)} |")
    verdict = (f"By the rule above, measured better than the default's documents: "
               f"{_named(verdicts)}. " + NOT_YET if verdicts else "By the rule above (a "
               "pooled paired gain in AUC abnormal whose interval lies above zero) no "
               "candidate is measured better than the default's documents.")
    return [*lines, "", verdict, "", FOLD_ENSEMBLE_NOTE, "", *_current_code_lines(),
            *_rsna_encoder_lines()]


#: Why a candidate that meets the rule against the default's documents does not replace it
#: on that alone.
NOT_YET = ("Those documents come from the code before issue 19's change of each epoch's batch "
           "order, so the table below pairs every candidate with the default measured again "
           "on the current code, and only that pairing can change the default; candidates "
           "built on (a) also start from an encoder trained on rsna-640, which the project "
           "cannot ship (its terms are research-only), so a user makes it first with the "
           "commands below.")


def _named(stems: list[str]) -> str:
    """Candidates' names for a verdict, a fold-model ensemble's with its caveat."""
    return ", ".join(f"`{stem}`" + (" (its interval narrower than the evidence: see the note "
                                    "on fold-model ensembles)"
                                    if stem.startswith("fold-ensemble-") else "")
                     for stem in stems)


def _current_code_lines() -> list[str]:
    """Every candidate paired with the default measured again on the current code, on the
    same folds (``DEFAULT_AGAIN``), and the default measured again paired with its own
    earlier documents: what the code change alone did."""
    files = sorted(CANDIDATES.glob(f"seed*/{DEFAULT_AGAIN}.json"))
    if not files:
        return [("The default has not been measured again on the current code, so the gains "
                 "above also hold the change of each epoch's batch order (issue 19)."), ""]
    seeds = ", ".join(file.parent.name.removeprefix("seed") for file in files)
    seeds = f"seed{'s' if len(files) > 1 else ''} {seeds}"
    commands = sorted({file.with_suffix(".cmd").read_text().strip() for file in files
                       if file.with_suffix(".cmd").is_file()})
    lines = [(f"On the current code: the default's own command run again (`{DEFAULT_AGAIN}`, "
              f"{seeds}; " + "; ".join(f"`{command}`" for command in commands)
              + "), and each candidate paired fold by fold with it. This pairing is the one "
              "the rule applies to."), "",
             ("| against the default measured again | paired folds | AUC abnormal gain | "
              "AUC malignant gain | macro-F1 gain | pointing gain |"),
             "|---|---|---|---|---|---|"]
    rows = [(None, ("the default measured again, against its earlier documents "
                    f"(`{DEFAULT_STEM}`): what the code change did"), _candidate_pairs(DEFAULT_AGAIN))]
    rows += [(stem, f"{text} (`{stem}`)", _candidate_pairs(stem, DEFAULT_AGAIN))
             for stem, text in MIAS_CANDIDATES]
    judged, short = [], []
    for stem, text, pairs in rows:
        gains = [pooled_gains(pairs, key) for key, _, _ in CANDIDATE_FIGURES]
        n = max((gain[3] for gain in gains if gain), default=0)
        cells = " | ".join(_pooled_text(g) for g in gains) if n else "not measured | | |"
        lines.append(f"| {text} | {n} | {cells} |")
        if stem is not None and gains[0] is not None and gains[0][0] - gains[0][2] > 0:
            (judged if n >= RULE_FOLDS else short).append(stem)
    verdict = (f"Meets the rule on all {RULE_FOLDS} folds: {_named(judged)}. " if judged
               else f"No candidate meets the rule on all {RULE_FOLDS} folds. ")
    if short:
        verdict += (f"Above zero on fewer paired folds than the rule asks ({RULE_FOLDS}): "
                    f"{_named(short)}; not judged until the default is measured again on the "
                    "missing seeds (the table above pairs all 15 folds with the default's "
                    "earlier documents). ")
    shippable = [stem for stem in judged if stem not in FROM_RSNA]
    verdict += (f"By the rule {_named(shippable)} replaces the MIAS default." if shippable else
                "The MIAS default stays.")
    verdict += (" Candidates built on (a) start from an encoder trained on rsna-640, whose "
                "terms are research-only: however they measure, they are a recipe a user "
                "follows with the commands below, never the shipped default.")
    return [*lines, "", verdict, ""]


def _rsna_encoder_lines() -> list[str]:
    """How candidate (a)'s encoder was made, and how good it is on rsna-640's own test
    split (from the evaluation kept beside its commands)."""
    commands = CANDIDATES / "rsna-encoder-train.cmd"
    evaluation = CANDIDATES / "rsna-encoder-train-evaluation.json"
    if not (commands.is_file() and evaluation.is_file()):
        return []
    document = json.loads(evaluation.read_text())
    interval = document["confidence_intervals"]["auc_malignant"]
    steps = "; ".join(f"`{line}`" for line in commands.read_text().splitlines() if line)
    return [(f"Candidate (a)'s encoder: {steps}. That run (the rsna attention model with "
             f"MobileNetV2's top 30 layers fine-tuned at 256 px) scores cancer vs no cancer "
             f"AUC {document['auc_malignant']:.3f} [{interval['low']:.3f}, "
             f"{interval['high']:.3f}] on its own {document['n']} test films (95% patient "
             "bootstrap interval)."), ""]


def _fold_count(documents: list[dict[str, Any]]) -> int:
    return sum(len(document["folds"]) for document in documents)


def _majority_macro_f1(documents: list[dict[str, Any]]) -> str:
    values = [f["baselines"]["majority"]["macro_f1"] for document in documents
              for f in document["folds"]]
    return _fmt(sum(values) / len(values)) if values else ""


def _pointing_chance(documents: list[dict[str, Any]]) -> str:
    """Chance of the pointing game (a random point in the breast hits a lesion), mean of the
    folds."""
    return _fmt(_mean([f["localisation"]["overall"].get("chance") for document in documents
                       for f in document["folds"]]))


def _probe_section() -> list[str]:
    probe = OUT / "probe.json"
    if not probe.is_file():
        return []
    result = json.loads(probe.read_text())
    return ["## What the frozen encoder sees: a linear probe of its cells", "",
            "Command: `python bench/probe_patches.py`.", "",
            (f"On each fold, a logistic regression on the frozen encoder's {result['size']} px "
             "feature cells (MobileNetV2, ImageNet, stride 16) learns lesion cells against "
             "normal breast tissue; a test film scores the mean of its three most lesion-like "
             f"cells. Abnormal vs normal AUC {result['auc_abnormal']:.2f}, pointing game "
             f"{result['pointing_game']:.2f} (fold means). "
             + ("Frozen ImageNet cells barely tell a lesion from normal tissue, which bounds "
                "every head trained on them, so the encoder itself has to learn: the table "
                "above shows what fine-tuning its top on whole films and pretraining it on "
                "lesion patches did."
                if result["auc_abnormal"] < PROBE_WEAK_AUC else
                "The frozen cells do carry lesion information.")), ""]


def _spread(result: dict[str, Any], name: str) -> str:
    mean, std = result["mean"].get(name), result["std"].get(name)
    return "" if mean is None else f"{mean:.2f} ± {std or 0:.2f}"


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


RSNA = REPO / "bench" / "out" / "rsna"
#: The screening figures of the RSNA table, in its column order: (key in a cv fold or an
#: anchor fold, column heading).
RSNA_FIGURES = (("auc", "image AUC"),
                ("sensitivity_at_90_specificity", "image sensitivity at 90% specificity"),
                ("patient_auc", "woman AUC (her highest film)"),
                ("patient_sensitivity_at_90_specificity", "woman sensitivity at 90% specificity"))
#: Rows of the RSNA table measured by `python -m core cv`: the JSON (its command beside it in
#: a ``.cmd`` file) and what the row is.
RSNA_CV_ROWS = (
    ("transfer-frozen", ("the second paper's transfer head (frozen ImageNet MobileNetV2, "
                         "512 px, new softmax head)")),
    ("attention-frozen-256", ("the first paper's attention model (frozen ImageNet "
                              "MobileNetV2, 256 px, LSTM decoder over the feature map, "
                              "binary): the rsna default")),
    ("attention-finetune-256", ("the same, then MobileNetV2's top 10 layers fine-tuned for 8 "
                                "epochs (as the MIAS default fine-tunes)")),
    ("attention-frozen-512", ("the rsna default at 512 px instead of 256 (frozen encoder, a "
                              "4x finer feature grid)")),
    ("attention-frozen-256-seed0", ("the rsna default measured again on the current code (its "
                                    "own command and folds; each film's probabilities kept)")),
    ("fold-ensemble-attention-frozen-256-seed0", (
        "an ensemble of the rsna default's fold models: each film scored by the mean of its "
        "out-of-fold scores from the default's cv on seeds 0, 1 and 2 (`--seed N`, "
        "`bench/out/rsna/attention-frozen-256-seed<N>.cmd`), on seed 0's folds")))
#: Paired comparisons of cv rows drawn on the same folds (the same dataset, k and seed):
#: (better candidate, reference).
RSNA_PAIRED = (("attention-frozen-256", "transfer-frozen"),
               ("attention-finetune-256", "attention-frozen-256"),
               ("attention-frozen-512", "attention-frozen-256"),
               ("attention-frozen-256-seed0", "attention-frozen-256"),
               ("fold-ensemble-attention-frozen-256-seed0", "attention-frozen-256-seed0"))
#: Issue 15's goal for image-level cancer AUC on rsna-640.
RSNA_GOAL_AUC = 0.80


def _rsna_cell(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return "n/a"
    mean, _, half = _t_interval(values)
    return f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}]"


def _rsna_row(label: str, folds: list[dict[str, Any]]) -> str:
    cells = [_rsna_cell([fold.get(key) for fold in folds]) for key, _ in RSNA_FIGURES]
    return "| " + " | ".join([label, *cells]) + " |"


def _rsna_section() -> list[str]:
    """Cancer vs no cancer on rsna-640: the naive anchors and whichever cv runs of the
    product's two model kinds have been saved, each with its command."""
    lines = ["## 4. Screening films: cancer vs no cancer on rsna-640", "",
             ("2,711 real digital screening mammograms of 771 women (`../shared/data/rsna-640`, "
              "research use only: see its README), 5-fold patient-grouped cross-validation, mean "
              "over the folds with the 95% t-interval. Positive class: cancer. Inverted films "
              "are corrected (`fix_inverted`, the default) unless a row says otherwise."), "",
             "| model | " + " | ".join(title for _, title in RSNA_FIGURES) + " |",
             "|---" * (len(RSNA_FIGURES) + 1) + "|"]
    commands: list[str] = []
    best: tuple[float, str] | None = None

    def add(label: str, folds: list[dict[str, Any]]) -> None:
        nonlocal best
        lines.append(_rsna_row(label, folds))
        aucs = [fold["auc"] for fold in folds if fold.get("auc") is not None]
        if aucs and (best is None or sum(aucs) / len(aucs) > best[0]):
            best = (sum(aucs) / len(aucs), label)

    anchors = (("anchor.json", "MobileNetV2"), ("anchor-efficientnet_lite0.json",
                                                "EfficientNet-Lite0"))
    for name, encoder in anchors:
        path = RSNA / name
        if not path.is_file():
            continue
        document = json.loads(path.read_text())
        commands.append(f"`{document['command']}`")
        for variant in document["variants"]:
            stored = "" if variant["fix_inverted"] else ", films as stored"
            add(f"anchor: frozen ImageNet {encoder}, pooled, logistic regression{stored}",
                variant["folds"])
    missing = []
    for stem, label in RSNA_CV_ROWS:
        path = RSNA / f"{stem}.json"
        if not path.is_file():
            missing.append(label)
            continue
        add(label, json.loads(path.read_text())["folds"])
        commands.append(f"`{(RSNA / f'{stem}.cmd').read_text().strip()}`")
    for stem, reference in RSNA_PAIRED:
        paths = [RSNA / f"{name}.json" for name in (stem, reference)]
        if all(path.is_file() for path in paths):
            ours, theirs = (json.loads(path.read_text())["folds"] for path in paths)
            lines.append(_rsna_row(f"paired gain: {stem} over {reference} (the same folds)",
                                   [{key: None if a.get(key) is None or b.get(key) is None
                                     else a[key] - b[key] for key, _ in RSNA_FIGURES}
                                    for a, b in zip(ours, theirs, strict=True)]))
    anchor_cv = RSNA / "anchor-cvfolds.json"
    default_cv = RSNA / f"{RSNA_DEFAULT}.json"
    if anchor_cv.is_file():
        document = json.loads(anchor_cv.read_text())
        anchor_folds = document["variants"][0]["folds"]
        commands.append(f"`{document['command']}`")
        add("anchor: frozen ImageNet MobileNetV2, pooled, logistic regression, refitted on the "
            "cv rows' folds", anchor_folds)
        if default_cv.is_file():
            ours = json.loads(default_cv.read_text())["folds"]
            lines.append(_rsna_row(
                f"paired gain: {RSNA_DEFAULT} over the anchor on the cv rows' folds",
                [{key: None if a.get(key) is None or b.get(key) is None else a[key] - b[key]
                  for key, _ in RSNA_FIGURES} for a, b in zip(ours, anchor_folds, strict=True)]))
    lines += ["| always \"no cancer\" / chance | 0.5 / 0.5 | 0 / 0.10 | 0.5 / 0.5 | 0 / 0.10 |",
              "", "Commands: " + "; ".join(commands) + ". Raw figures: `bench/out/rsna/`.", ""]
    if best is not None:
        reached = "reaches" if best[0] >= RSNA_GOAL_AUC else "does not reach"
        lines += [(f"Best mean image AUC: {best[0]:.3f} ({best[1]}), which {reached} the "
                  f"issue's goal of {RSNA_GOAL_AUC:.2f}."), ""]
    if missing:
        lines += ["Not run yet: " + "; ".join(missing) + ".", ""]
    lines += [("Not run on these films: the second paper's AlexNet and GoogLeNet (below)."),
              ""]
    return lines + _rsna_paper2_section()


#: The second paper's protocol on rsna-640 (``bench/rsna_sweep.py``): the JSON per pretrained
#: encoder, the prefix of its rows, and its name in the table.
RSNA_SWEEPS = (("sweep-mobilenet_v2", "MN", "MobileNetV2"),
               ("sweep-efficientnet_lite0", "EL", "EfficientNet-Lite0"))
#: The cv row every setting is held against by the rule for changing the rsna default.
RSNA_DEFAULT = "attention-frozen-256"


def _gain_cell(gain: dict[str, float] | None) -> str:
    if not gain:
        return "n/a"
    return f"{gain['mean']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}]"


def _summary_cell(summary: dict[str, float] | None) -> str:
    if not summary:
        return "n/a"
    return f"{summary['mean']:.3f} [{summary['low']:.3f}, {summary['high']:.3f}]"


def _rsna_paper2_section() -> list[str]:
    """The second paper's ten settings on rsna-640: its head on each pretrained encoder,
    cross-validated on the cv folds, beside the anchor refitted on them, the rsna default
    and the trivial baselines; and what its own networks, from scratch, would cost here."""
    present = "; ".join(f"{title}: {prefix} rows" for stem, prefix, title in RSNA_SWEEPS
                        if (RSNA / f"{stem}.json").is_file()) or "none run yet"
    lines = ["### The second paper's protocol on rsna-640", "",
             ("This is the project's main reproduction of the second paper (section 2, on 91 "
              "MIAS lesion crops, is its footnote). The paper's ten settings (its AL1-AL10 / "
              "GL1-GL10: validation patience, weight and bias learn-rate factors, weight L2 "
              "factor) with its new head (preset `paper2`: SGD with momentum 0.9, learn rate "
              "1e-4, at most 60 epochs, early stopping on the validation patients' loss, "
              "dropout 0.3, class weights), cancer vs no cancer, on the 5 patient-grouped folds "
              "of `python -m core cv --folds 5` (the folds of the rows above), inverted films "
              "corrected. The encoders are **ImageNet-pretrained and frozen** at 512 px "
              f"({present}): the paper's AlexNet and "
              "GoogLeNet have no ImageNet weights here, and trained from scratch (measured "
              "below) they do not fit on this machine, so the paper's networks themselves are "
              "**not** run. Each film is encoded once (the product's encoder and feature "
              "cache) and each setting's head trained on the pooled features, which is what "
              "the product's transfer head computes first. Mean over the folds [95% "
              "t-interval]; the gains are paired fold by fold. Accuracy is at the argmax; "
              "always \"no cancer\" (the training folds' majority) scores the accuracy given, "
              "AUC 0.5 and sensitivity 0; chance: AUC 0.5, sensitivity at 90% specificity "
              "0.10."), ""]
    default_path = RSNA / f"{RSNA_DEFAULT}.json"
    default_auc = None
    if default_path.is_file():
        default_auc = [f["auc"] for f in json.loads(default_path.read_text())["folds"]]
    anchor_path = RSNA / "anchor-cvfolds.json"
    anchor_auc = None
    if anchor_path.is_file():
        anchor_document = json.loads(anchor_path.read_text())
        anchor_auc = [f["auc"] for f in anchor_document["variants"][0]["folds"]]
    heading = ("| row | encoder | patience | W LR factor | B LR factor | L2 factor | epochs "
               "trained (mean, patience included) | image AUC | image sensitivity at 90% specificity | woman AUC | "
               "accuracy | always \"no cancer\" accuracy | image AUC gain over the anchor | "
               "image AUC gain over the rsna default |")
    commands, rows, better, majority = [], [], [], None
    worse_default, worse_anchor, below_majority, counted = 0, 0, 0, 0
    l2_same: list[str] = []
    for stem, prefix, title in RSNA_SWEEPS:
        path = RSNA / f"{stem}.json"
        if not path.is_file():
            continue
        document = json.loads(path.read_text())
        commands.append(f"`{document['command']}`")
        anchor = document["anchor_on_these_folds"]
        rows.append(f"| probe: the anchor's logistic regression on these pooled features | "
                    f"{title} (ImageNet, frozen) | | | | | | "
                    f"{_summary_cell(anchor['summary'].get('auc'))} | "
                    f"{_summary_cell(anchor['summary'].get('sensitivity_at_90_specificity'))} "
                    f"| {_summary_cell(anchor['summary'].get('patient_auc'))} | | | | |")
        for entry in document["settings"]:
            folds, summary = entry["folds"], entry.get("summary", {})
            majority = _mean([f["majority_accuracy"] for f in folds])
            if entry["setting"] == 0:
                name = "check: the transfer-frozen row's settings (Adam 1e-3), retrained here"
            else:
                name = f"{prefix}{entry['setting']}"
            gain = entry.get(f"gain_over_{RSNA_DEFAULT}", {}).get("auc")
            if entry["setting"] and gain and gain["low"] > 0:
                better.append(name)
            if entry["setting"]:
                counted += 1
                worse_default += bool(gain and gain["high"] < 0)
                anchor_gain = _fold_gain(folds, anchor_auc)
                worse_anchor += bool(anchor_gain and anchor_gain["high"] < 0)
                below_majority += summary["accuracy"]["mean"] <= majority
            epochs = _mean([f["epochs"] for f in folds])
            rows.append(
                f"| {name} | {title} (ImageNet, frozen) | {entry['patience']} | "
                f"{entry['w_factor']} | {entry['b_factor']} | {entry['l2_factor']} | "
                f"{epochs:.0f} | {_summary_cell(summary.get('auc'))} | "
                f"{_summary_cell(summary.get('sensitivity_at_90_specificity'))} | "
                f"{_summary_cell(summary.get('patient_auc'))} | "
                f"{_summary_cell(summary.get('accuracy'))} | {majority:.3f} | "
                f"{_gain_cell(_fold_gain(folds, anchor_auc))} | "
                f"{_gain_cell(gain)} |")
        l2_same += _l2_alike(document["settings"], prefix)
    if not rows:
        return lines + ["Not run yet.", ""]
    if anchor_auc:
        mean, _, half = _t_interval(anchor_auc)
        rows.insert(0, f"| the anchor (`bench/rsna_anchor.py`: MobileNetV2's last map pooled, "
                       f"logistic regression), refitted on these folds | MobileNetV2 "
                       f"(ImageNet, frozen) | | | | | | {mean:.3f} [{mean - half:.3f}, "
                       f"{mean + half:.3f}] | "
                       + " | ".join(_rsna_cell([f[key] for f in anchor_document["variants"][0]
                                                ["folds"]]) for key in
                                    ("sensitivity_at_90_specificity", "patient_auc"))
                       + " | | | | |")
        commands.insert(0, f"`{anchor_document['command']}`")
    lines += [heading, "|---" * 14 + "|", *rows,
              ("| always \"no cancer\" / chance | | | | | | | 0.5 / 0.5 | 0 / 0.10 | "
               "0.5 / 0.5 | | | | |"), "",
              "Commands: " + "; ".join(commands) + (". Raw figures: `bench/out/rsna/sweep-*.json`, "
                                                     "`anchor-cvfolds.json`."),
              ""]
    lines += [("The probe rows fit the anchor's logistic regression on the features the heads "
               "were trained on (the product's feature layer pooled: MobileNetV2's stride-16 "
               "`block_13_expand_relu`, EfficientNet-Lite0's `block6a_expand_activation`), not "
               "on the last map the anchor pools, so they show what these features hold for a "
               "linear model fitted to convergence. The gains over the anchor pair each setting "
               "with the anchor itself on the same folds."), ""]
    lines += _check_lines()
    if default_auc:
        mean, _, half = _t_interval(default_auc)
        verdict = (f"Measured better than the rsna default by that rule: {', '.join(better)}."
                   if better else
                   "No setting's paired gain over it has an interval above zero, so the rsna "
                   "default stays.")
        verdict += (f" {worse_default} of the {counted} settings are measured worse than the "
                    f"default (interval below zero), {worse_anchor} of {counted} worse than the "
                    f"anchor refitted on the same folds, and {below_majority} of {counted} are "
                    "no more accurate than always answering \"no cancer\".")
        lines += [(f"The rule for changing the rsna default (the attention model on the frozen "
                   f"encoder at 256 px, image AUC {mean:.3f} [{mean - half:.3f}, "
                   f"{mean + half:.3f}]): a paired gain in image AUC whose 95% interval lies "
                   f"above zero. {verdict}"), ""]
    if l2_same:
        lines += [(f"Rows that differ only in the L2 factor score the same ({', '.join(l2_same)}): "
                   "at 1e-4 times the factor the penalty is too small to move this head."), ""]
    lines += _scratch_cost_lines()
    return lines


def _fold_gain(folds: list[dict[str, Any]], reference: list[float] | None
               ) -> dict[str, float] | None:
    """Mean and 95% t-interval of a setting's image AUC minus ``reference``'s, fold by fold."""
    if not reference:
        return None
    mean, _, half = _t_interval([f["auc"] - r for f, r in zip(folds, reference, strict=True)])
    return {"mean": mean, "low": mean - half, "high": mean + half}


def _l2_alike(settings: list[dict[str, Any]], prefix: str) -> list[str]:
    """Groups of settings equal but for the L2 factor whose mean image AUC agrees to three
    decimals, as "MN7 = MN8 = MN9"."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for entry in settings:
        if entry["setting"] and entry.get("summary"):
            key = (entry["patience"], entry["w_factor"], entry["b_factor"])
            groups.setdefault(key, []).append(entry)
    return [" = ".join(f"{prefix}{e['setting']}" for e in group) for group in groups.values()
            if len(group) > 1 and len({round(e["summary"]["auc"]["mean"], 3)
                                       for e in group}) == 1]


def _check_lines() -> list[str]:
    """The check row held against the cv run it retrains: how far this script's folds
    agree with the product's, which is the noise one paired comparison carries."""
    sweep, product = RSNA / "sweep-mobilenet_v2.json", RSNA / "transfer-frozen.json"
    if not (sweep.is_file() and product.is_file()):
        return []
    check = next((e for e in json.loads(sweep.read_text())["settings"] if e["setting"] == 0),
                 None)
    if check is None:
        return []
    ours = [f["auc"] for f in check["folds"]]
    theirs = [f["auc"] for f in json.loads(product.read_text())["folds"]]
    gap = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    return [(f"The check row retrains the transfer-frozen row's configuration here: image AUC "
             f"{_t_interval(ours)[0]:.3f} against {_t_interval(theirs)[0]:.3f} from `python -m "
             f"core cv` on the same folds; fold by fold they differ by up to {gap:.3f} (another "
             "random initialisation and batch order of the head), the size of the noise in any "
             "one fold's comparison."), ""]


def _scratch_cost_lines() -> list[str]:
    path = RSNA / "scratch-cost.json"
    if not path.is_file():
        return []
    document = json.loads(path.read_text())
    load = document["load_average_at_end"][0]
    hours = [row["one_setting_one_fold_estimate_h"] for row in document["networks"]]
    lines = [("The paper's own networks from scratch (random initialisation, every layer "
              "training; the product's AlexNet encoder, its five conv layers (the paper's "
              "network has three fully connected layers more), and GoogLeNet, with the paper's "
              "head and its AL3 optimiser), timed over one pass of real rsna films on this "
              f"{document['cores']}-core machine (load average {load:.1f} at the end: other "
              f"jobs shared it), `{document['command']}`:"), "",
             ("| network | input | trainable weights | seconds per film | one epoch of a fold "
              "(minutes) | one setting, one fold, 60 epochs (hours) | ten settings x 5 folds "
              "(hours) |"), "|---" * 7 + "|"]
    for row in document["networks"]:
        lines.append(f"| {row['network']} (random init) | {row['image_size']} px | "
                     f"{row['trainable_weights']:,} | {row['seconds_per_film']:.2f} | "
                     f"{row['epoch_estimate_min']:.0f} | "
                     f"{row['one_setting_one_fold_estimate_h']:.0f} | "
                     f"{row['protocol_estimate_h']:,.0f} |")
    lines += ["", (f"So they were not trained: one setting on one fold would take "
                   f"{min(hours):.0f} to {max(hours):.0f} hours here at this pace, and a few "
                   "epochs from random weights would measure an unfinished network, not the "
                   "paper's method."), ""]
    return lines


def rendered() -> str:
    """docs/RESULTS.md as the saved JSON makes it (a test holds the committed file to this)."""
    sections = ["# Results on real mammograms", "",
                ("Generated by `python bench/results.py render` from the experiments' JSON; "
                "every figure below comes from the command printed with its table. Sections 1-3: "
                "real mini-MIAS films (`../shared/data/mias`, 256 films of 128 patients); "
                "section 4: real RSNA screening films (`../shared/data/rsna-640`)."), ""]
    paper1_json = OUT / "paper1.json"
    if paper1_json.is_file():
        sections += _paper1_section(json.loads(paper1_json.read_text()))
    else:
        sections += ["## 1. The first paper's protocol", "", "Not run yet.", ""]
    paper2_json = OUT / "paper2.json"
    if paper2_json.is_file():
        sections += _paper2_section(json.loads(paper2_json.read_text()))
    else:
        sections += ["## 2. The second paper's sweep", "", "Not run yet.", ""]
    best_json = OUT / "best.json"
    if best_json.is_file():
        sections += _best_section(json.loads(best_json.read_text()))
    else:
        sections += ["## 3. Our configuration", "", "Not run yet.", ""]
    sections += _variants_section()
    sections += _repeats_section()
    sections += _candidates_section()
    sections += _probe_section()
    sections += _rsna_section()
    return "\n".join(sections)


def render() -> None:
    DOCS.mkdir(exist_ok=True)
    (DOCS / "RESULTS.md").write_text(rendered())
    print(f"wrote {DOCS / 'RESULTS.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=["paper1", "paper2", "best", "render"])
    parser.add_argument("--mias", type=Path, default=SHARED / "data" / "mias")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a default setting for 'best' (JSON value)")
    args = parser.parse_args()
    if args.experiment == "render":
        render()
        return
    _setup(args.weights)
    runs = Path(tempfile.mkdtemp(prefix="mammo-results-runs-"))
    if args.experiment == "paper1":
        paper1(args.mias, runs)
    elif args.experiment == "paper2":
        paper2(args.mias, runs)
    else:
        overrides = {}
        for item in args.set:
            name, _, value = item.partition("=")
            overrides[name] = json.loads(value)
        best(args.mias, runs, args.folds, overrides)
    render()


if __name__ == "__main__":
    main()
