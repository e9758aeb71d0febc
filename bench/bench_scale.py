"""Scaling figures on this machine, in one run: training films per second on 1 and 2 devices
(TensorFlow and JAX, ``bench_distribute.py``) and archive scoring on Ray against plain
``predict`` (``bench_ray.py``). Each part is its own bench's code, called, not copied; this
only runs them one after the other and keeps their figures together with the load.

Prints one JSON document (also written to ``bench/out/scale/scale.json``) and the people's
lines of both benches.

    nice python bench/bench_scale.py [--size 256] [--epochs 3] [--films 64] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import bench_distribute
import bench_ray
from scratch import quiet_private_environment

OUT = Path(__file__).resolve().parent / "out" / "scale" / "scale.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    bench_distribute.options(parser)
    bench_ray.options(parser, shared=False)
    parser.set_defaults(films=64)
    args = parser.parse_args()
    training = bench_distribute.measure(args)  # children: this process stays without Keras
    with tempfile.TemporaryDirectory() as scratch:
        quiet_private_environment(args.weights, Path(scratch))
        scoring = bench_ray.measure(args, Path(scratch))
    figures = {"training": training, "scoring": scoring,
               "load_average_1min_end": round(os.getloadavg()[0], 1)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))
    for line in [*bench_distribute.summary(training), bench_ray.summary(scoring)]:
        print(line)


if __name__ == "__main__":
    main()
