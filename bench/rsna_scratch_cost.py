"""What training the second paper's AlexNet and GoogLeNet from scratch on rsna-640 costs here.

Why: the paper fine-tunes ImageNet AlexNet (227 px) and GoogLeNet (224 px); no ImageNet
weights for them exist offline, so on rsna-640 they would have to learn from random
initialisation, every layer training. This measures that cost instead of guessing it: the
product's encoder (``build_backbone(..., weights="none")`` behind ``film_encoder``) with the
product's transfer head (``TransferKind``, the paper's AL3 setting: SGD with momentum, learn
rate 1e-4, factors 15 / 20, L2 factor 1), every layer trainable, fitted for one pass over
``--films`` real rsna films preprocessed as the product does, after one warm-up batch. It
prints seconds per film and what one epoch of a fold's training films (4/5 of the films less
the validation patients) and the whole protocol would take at that pace.

    python bench/rsna_scratch_cost.py --root ../shared/data/rsna-640

Writes ``bench/out/rsna/scratch-cost.json``. A timing only: the loss after one pass says
nothing about what the network would learn.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from core.settings import REPO, SHARED

OUT = REPO / "bench" / "out" / "rsna"
NETWORKS = {"alexnet": 227, "googlenet": 224}  # the paper's input sizes
#: The protocol the estimate is for: the paper2 preset's epoch cap, 5 folds, 10 settings.
EPOCHS, FOLDS, SETTINGS = 60, 5, 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "rsna-640")
    parser.add_argument("--films", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras

    from core import backend
    from core.data import load_dataset
    from core.models.attention import attach_encoder
    from core.models.backbones import build_backbone, film_encoder
    from core.models.kinds import model_kind
    from core.prep.arrays import load_arrays
    from core.prep.splits import split_dataset
    from core.runs.presets import PRESETS
    from core.train.batches import class_weights

    dataset = load_dataset("rsna", args.root)
    base = PRESETS["paper2"].config(dataset="rsna", root=str(args.root))
    fold0 = split_dataset(dataset, base.test_size, base.val_fraction, 0, folds=FOLDS, fold=0)
    fit_films = len(fold0.train)
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(fold0.train, size=args.films, replace=False))
    records = [dataset.records[i] for i in chosen]
    rows = []
    for network, size in NETWORKS.items():
        backend.seed_everything(0)
        config = base.with_overrides(backbone=network, weights="none", image_size=size)
        started = time.time()
        arrays = load_arrays(records, config.prep)
        prepare_s = time.time() - started
        kind = model_kind("transfer")
        encoder = film_encoder(build_backbone(network, size, "none"))
        encoder.trainable = True
        head = kind.build_head(config, tuple(int(d) for d in encoder.output.shape[1:]), 2)
        model = attach_encoder(encoder, head, name=f"transfer_{network}")
        kind.compile(model, config, config.learning_rate)
        x = arrays.images[..., None].astype(np.float32)
        y = keras.utils.to_categorical(arrays.labels, 2)
        w = class_weights(arrays.labels, 2)
        batch = config.batch_size
        model.train_on_batch(x[:batch], y[:batch], sample_weight=w[:batch])  # warm-up: builds
        started = time.time()
        history = model.fit(x, y, sample_weight=w, batch_size=batch, epochs=1, verbose=0)
        pass_s = time.time() - started
        per_film = pass_s / len(x)
        epoch_s = per_film * fit_films
        rows.append({"network": network, "image_size": size,
                     "trainable_weights": int(sum(np.prod(v.shape)
                                                  for v in model.trainable_weights)),
                     "films_timed": len(x), "prepare_s": round(prepare_s, 1),
                     "train_pass_s": round(pass_s, 1), "seconds_per_film": round(per_film, 4),
                     "fold_training_films": fit_films,
                     "epoch_estimate_min": round(epoch_s / 60, 1),
                     "protocol_estimate_h": round(epoch_s * EPOCHS * FOLDS * SETTINGS / 3600, 1),
                     "one_setting_one_fold_estimate_h": round(epoch_s * EPOCHS / 3600, 2),
                     "loss_after_pass": float(history.history["loss"][-1])})
        print(json.dumps(rows[-1]), flush=True)
        keras.backend.clear_session()
    document = {"command": "python bench/rsna_scratch_cost.py --root ../shared/data/rsna-640",
                "what": ("one training pass of the product's random-init encoder + transfer "
                         "head, every layer trainable, paper2 preset (AL3) optimiser, "
                         "over real rsna films; estimates scale it to a fold's training "
                         f"films, {EPOCHS} epochs (the preset's cap), {FOLDS} folds and "
                         f"{SETTINGS} settings"),
                "cores": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                "networks": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scratch-cost.json").write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {OUT / 'scratch-cost.json'}")


if __name__ == "__main__":
    main()
