"""Wall time and peak memory of the default training on real films: mini-MIAS, or the
RSNA screening export.

Runs exactly what a user types, ``python -m core train --dataset DATASET --root ROOT
--json``, in a child process with a cold feature cache (a fresh ``MAMMO_CACHE``), and prints
one JSON line of figures and one line for people. Targets on 2 CPU cores with MobileNetV2 and
the shared ImageNet weights (installed into a private Keras cache here): MIAS at most 10
minutes, aimed at 5, and 4 GB of memory (issues 3 and 6); rsna-640 at most 20 minutes and
6 GB (issue 15). The load average is printed beside the figures: on a shared machine the wall
time is an upper bound.

    python bench/bench_train.py [--dataset mias|rsna] [--root PATH] [--weights ../shared/weights]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import private_caches

from core.settings import REPO, SHARED

#: Each dataset's copy beside the checkout.
ROOTS = {"mias": SHARED / "data" / "mias", "rsna": SHARED / "data" / "rsna-640"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(ROOTS), default="mias")
    parser.add_argument("--root", type=Path, help="the dataset's folder (default: ../shared's)")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("extra", nargs="*", help="more `train` options, e.g. --epochs 5")
    args = parser.parse_args()
    root = args.root or ROOTS[args.dataset]
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        env = {**os.environ, **private_caches(args.weights, scratch_path)}
        command = [sys.executable, "-m", "core", "train", "--dataset", args.dataset, "--root",
                   str(root), "--out", str(scratch_path / "runs"), "--json", *args.extra]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                check=False)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"training failed: {result.stderr.strip().splitlines()[-1]}")
        document = json.loads(result.stdout)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    val = document["val"]
    figures = {"dataset": args.dataset, "wall_s": round(seconds, 1),
               "peak_rss_gb": round(peak_gb, 2), "cpus": len(os.sched_getaffinity(0)),
               "load_average_1min": round(os.getloadavg()[0], 1), "extra": args.extra,
               "config": document.get("config"), "val_n": val["n"],
               "val_macro_f1": round(val["macro_f1"], 3),
               "val_auc_abnormal": val.get("auc_abnormal"),
               "val_auc": val.get("auc")}
    print(json.dumps(figures))
    print(f"default {args.dataset} training: {seconds / 60:.1f} min wall, {peak_gb:.2f} GB peak "
          f"memory on {figures['cpus']} cores (load average {figures['load_average_1min']})")


if __name__ == "__main__":
    main()
