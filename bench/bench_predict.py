"""End-to-end predict latency per real 1024 x 1024 mini-MIAS film: read, preprocess, model,
heatmap, overlay PNG, exactly what ``predict_films`` does for one upload.

The model is the default attention model (MobileNetV2 at 512 px, ImageNet weights from the
shared folder copied into a private Keras cache) trained quickly in a temporary folder:
one epoch, class weights instead of augmentation. The figures are latency, not accuracy,
and a quick model does the same arithmetic as a long-trained one. Each film is one call,
as the app makes them, after one warm-up call (loading and compiling the model).
Target (issue 4): p50 300 ms on 2 CPU cores. Prints one JSON line and one line for people.

    python bench/bench_predict.py [--root ../shared/data/mias] [--weights ../shared/weights]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scratch import quiet_private_environment

from core.settings import SHARED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "mias")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("--films", type=int, default=60, help="films to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        quiet_private_environment(args.weights, scratch_path)
        from core.evaluate.predict import predict_films
        from core.runs.config import TrainConfig
        from core.train.fit import train

        config = TrainConfig(dataset="mias", root=str(args.root)).with_overrides(
            epochs=1, balance="class_weights", patience=0)
        start = time.perf_counter()
        run = train(config, scratch_path / "runs")
        train_s = time.perf_counter() - start
        if run.manifest["status"] != "done":
            sys.exit(f"training failed: {run.manifest.get('error')}")
        films = sorted(args.root.glob("mdb*.png"))[:args.films + 1]
        out = scratch_path / "heatmaps"
        predict_films(run, [films[0]], out)  # warm-up: load the model, compile its call
        seconds = []
        for film in films[1:]:
            start = time.perf_counter()
            (entry,) = predict_films(run, [film], out)
            seconds.append(time.perf_counter() - start)
            if "error" in entry:
                sys.exit(f"predict failed: {entry['error']}")
    ms = np.array(seconds) * 1000.0
    figures = {"films": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
               "p90_ms": round(float(np.percentile(ms, 90)), 1),
               "max_ms": round(float(ms.max()), 1), "cpus": len(os.sched_getaffinity(0)),
               "model": "attention mobilenet_v2 512 px, imagenet weights, 1 quick epoch",
               "train_s": round(train_s, 1)}
    print(json.dumps(figures))
    print(f"predict per 1024 x 1024 film, end to end: p50 {figures['p50_ms']} ms, "
          f"p90 {figures['p90_ms']} ms over {len(ms)} films on {figures['cpus']} cores "
          "(target p50 300 ms)")


if __name__ == "__main__":
    main()
