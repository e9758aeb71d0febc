"""Wall time and peak memory of the default training on real mini-MIAS films.

Runs exactly what a user types, ``python -m core train --dataset mias --root ROOT --model
attention --json``, in a child process with a cold feature cache (a fresh ``MAMMO_CACHE``),
and prints one JSON line of figures and one line for people. Targets: at most 10 minutes,
aimed at 5, and 4 GB of memory (issue 3), and at most 15 minutes for the best configuration
(issue 6), on 2 CPU cores with MobileNetV2 and the shared ImageNet weights (installed into a
private Keras cache here).

    python bench/bench_train.py [--root ../shared/data/mias] [--weights ../shared/weights]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "mias")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("extra", nargs="*", help="more `train` options, e.g. --epochs 5")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        env = {**os.environ, **private_caches(args.weights, scratch_path)}
        command = [sys.executable, "-m", "core", "train", "--dataset", "mias", "--root",
                   str(args.root), "--model", "attention", "--out", str(scratch_path / "runs"),
                   "--json", *args.extra]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                check=False)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"training failed: {result.stderr.strip().splitlines()[-1]}")
        document = json.loads(result.stdout)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    val = document["val"]
    figures = {"wall_s": round(seconds, 1), "peak_rss_gb": round(peak_gb, 2),
               "cpus": len(os.sched_getaffinity(0)), "extra": args.extra,
               "val_n": val["n"], "val_macro_f1": round(val["macro_f1"], 3),
               "val_auc_abnormal": val["auc_abnormal"]}
    print(json.dumps(figures))
    print(f"default MIAS training: {seconds / 60:.1f} min wall, {peak_gb:.2f} GB peak memory "
          f"on {figures['cpus']} cores")


if __name__ == "__main__":
    main()
