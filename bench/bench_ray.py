"""Archive scoring on Ray against plain ``predict``, on this machine, in one run: films per
second for each, on the same real mini-MIAS films with the same model.

The model is the default attention model (MobileNetV2 at 512 px, ImageNet weights from the
shared folder) trained for one quick epoch in a temporary folder, as ``bench_predict.py``
does: the figures are throughput, not accuracy. ``--quick`` trains the tests' tiny model
instead (64 px), for a smoke run in seconds; its figures say little, since Ray's fixed
costs then dwarf the scoring.

* local: ``predict_films`` over the films in one process, after one warm-up film (model
  loaded and compiled), as ``predict`` without ``--engine`` scores them.
* ray: ``score_archive`` (``predict --engine ray``) with a local Ray of ``--actors`` CPUs,
  timed from the call: actors start, each loads the model, films are scored and the table
  is written. Starting Ray itself is timed apart (``ray_start_s``). A second call on the
  same output is timed too: it finds every film scored and only reads the table.

Prints one JSON document (also written to ``bench/out/scale/ray_scoring.json``) and one line
for people. The machine's load average is recorded: on a shared machine it moves the
figures more than anything measured here.

    nice python bench/bench_ray.py [--films 128] [--actors 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from scratch import quiet_private_environment

from core.settings import SHARED

OUT = Path(__file__).resolve().parent / "out" / "scale" / "ray_scoring.json"


def options(parser: argparse.ArgumentParser, shared: bool = True) -> None:
    """This bench's options (``bench_scale.py`` offers them too; ``shared``: with the
    folders, which it declares itself)."""
    if shared:
        parser.add_argument("--root", type=Path, default=SHARED / "data" / "mias")
        parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("--films", type=int, default=128, help="films to score")
    parser.add_argument("--actors", type=int, default=2, help="Ray actors (and Ray's CPUs)")
    parser.add_argument("--quick", action="store_true", help="the tests' tiny model (smoke)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        quiet_private_environment(args.weights, scratch_path)
        figures = measure(args, scratch_path)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))
    print(summary(figures))


def summary(figures: dict[str, object]) -> str:
    """The line for people."""
    return (f"{figures['films']} films: local predict {figures['local_films_per_second']} films/s, "
            f"Ray with {figures['actors']} actors {figures['ray_films_per_second']} films/s "
            f"(+ {figures['ray_start_s']} s to start Ray) on {figures['cpus']} cores, "
            f"load average {figures['load_average_1min']}")


def measure(args: argparse.Namespace, scratch: Path) -> dict[str, object]:
    """Train the model, then score the films locally and on Ray (``scratch``: the private
    caches ``quiet_private_environment`` points this process at)."""
    from core.evaluate.predict import predict_films
    from core.evaluate.ray_scoring import ray_session, score_archive
    from core.runs.config import TrainConfig
    from core.train.fit import train

    overrides: dict[str, object] = {"epochs": 1, "balance": "class_weights", "patience": 0}
    if args.quick:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from factories import TINY

        overrides = {**TINY, "epochs": 1}
    config = TrainConfig(dataset="mias", root=str(args.root)).with_overrides(**overrides)
    run = train(config, scratch / "runs")
    if run.manifest["status"] != "done":
        sys.exit(f"training failed: {run.manifest.get('error')}")
    films = sorted(args.root.glob("mdb*.png"))[:args.films + 1]
    warm_up, films = films[0], films[1:]

    start = time.perf_counter()
    predict_films(run, [warm_up], scratch / "warm-up")  # load the model, compile its call
    local_load_s = time.perf_counter() - start
    start = time.perf_counter()
    entries = predict_films(run, films, scratch / "local")
    local_s = time.perf_counter() - start
    if any("error" in entry for entry in entries):
        sys.exit(f"local predict failed: {[e['error'] for e in entries if 'error' in e][:3]}")

    start = time.perf_counter()
    with ray_session(num_cpus=args.actors):
        ray_start_s = time.perf_counter() - start
        summary = score_archive(run, films, scratch / "ray", actors=args.actors)
        start = time.perf_counter()
        again = score_archive(run, films, scratch / "ray", actors=args.actors)
        resume_s = time.perf_counter() - start
    if summary["failed"] or summary["scored"] != len(films) or again["scored"]:
        sys.exit(f"Ray scoring went wrong: {summary}, then {again}")
    return {
        "films": len(films), "cpus": len(os.sched_getaffinity(0)),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "model": ("tiny test model, 64 px, 1 epoch" if args.quick
                  else "attention mobilenet_v2 512 px, imagenet weights, 1 quick epoch"),
        "local_films_per_second": round(len(films) / local_s, 2),
        "local_model_load_s": round(local_load_s, 1),
        "actors": summary["actors"], "ray_start_s": round(ray_start_s, 1),
        "ray_seconds": summary["seconds"],
        "ray_films_per_second": summary["films_per_second"],
        "ray_resume_nothing_left_s": round(resume_s, 2),
    }


if __name__ == "__main__":
    main()
