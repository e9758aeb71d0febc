"""Training films per second on 1 and 2 devices, TensorFlow and JAX, on this machine.

Each case is what a user types, ``python -m core train ... --devices N --json``, in a child
process with a cold feature cache: real mini-MIAS films, the attention model on ImageNet's
MobileNet (alpha 0.25, the shared file) at ``--size`` px, a head phase and a short
fine-tuning of the encoder's top (on the frozen bottom's activations), no patch pretraining.
Films per second come from the run's own epoch events: each phase's epochs after its first
(the first compiles), training samples of an epoch over its seconds, validation included.

Two devices here are this CPU split in two (JAX: ``XLA_FLAGS``; TensorFlow: two logical
CPUs): the same cores do the same work, so no speed-up is expected; the figures show what
splitting costs. Each child has a timeout, so a hang is reported, not waited on.

Prints one JSON document (also written to ``bench/out/scale/distribute.json``) and one line
per case for people.

    nice python bench/bench_distribute.py [--size 256] [--epochs 3] [--timeout 600]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from statistics import median

from scratch import private_caches

from core.settings import REPO, SHARED

OUT = Path(__file__).resolve().parent / "out" / "scale" / "distribute.json"
BACKENDS = ("tensorflow", "jax")
DEVICES = (1, 2)


def options(parser: argparse.ArgumentParser) -> None:
    """This bench's options (``bench_scale.py`` offers them too)."""
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "mias")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("--size", type=int, default=256,
                        help="input side in pixels (not 128, 160 or 192: Keras would want the "
                             "MobileNet file of that size, and only 224's is shared)")
    parser.add_argument("--epochs", type=int, default=3, help="head epochs (2 fine-tune)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per case")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options(parser)
    figures = measure(parser.parse_args())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))
    for line in summary(figures):
        print(line)


def summary(figures: dict) -> list[str]:
    """One line per case, for people."""
    lines = []
    for case in figures["cases"]:
        if "error" in case:
            lines.append(f"{case['backend']} {case['devices']} device(s): {case['error']}")
            continue
        lines.append(f"{case['backend']} {case['devices']} device(s): head "
                     f"{case['head_films_per_second']} films/s, fine-tune "
                     f"{case['fine_tune_films_per_second']} films/s "
                     f"(whole run {case['wall_s']} s)")
    lines.append(f"on {figures['cpus']} cores, load average {figures['load_average_1min']} "
                 f"before, {figures['load_average_1min_after']} after")
    return lines


def measure(args: argparse.Namespace) -> dict:
    """Every case (backend x devices), each in its own child, with the machine's load."""
    load_before = round(os.getloadavg()[0], 1)
    cases = []
    with tempfile.TemporaryDirectory() as scratch:
        for backend in BACKENDS:
            for devices in DEVICES:
                folder = Path(scratch) / f"{backend}-{devices}"
                cases.append(_case(args, backend, devices, folder))
    return {"cpus": len(os.sched_getaffinity(0)), "load_average_1min": load_before,
            "load_average_1min_after": round(os.getloadavg()[0], 1),
            "model": f"attention mobilenet_025 {args.size} px, imagenet weights, "
                     f"{args.epochs} head epochs, 2 fine-tune epochs (5 layers)",
            "films": "mini-MIAS (real), split as training splits it", "cases": cases}


def _case(args: argparse.Namespace, backend: str, devices: int, folder: Path) -> dict:
    folder.mkdir(parents=True)
    env = {**os.environ, **private_caches(args.weights, folder), "KERAS_BACKEND": backend,
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    if backend == "jax":  # JAX splits the CPU only when it starts, from this variable
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={max(DEVICES)}"
    command = [sys.executable, "-m", "core", "train", "--dataset", "mias", "--root",
               str(args.root), "--out", str(folder / "runs"), "--json",
               "--model", "attention", "--backbone", "mobilenet_025",
               "--image-size", str(args.size), "--epochs", str(args.epochs),
               "--batch-size", "16", "--patience", "0", "--patch-epochs", "0",
               "--fine-tune-layers", "5", "--fine-tune-epochs", "2",
               "--devices", str(devices)]
    found: dict = {"backend": backend, "devices": devices}
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=args.timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**found, "error": f"no result within {args.timeout} s (hung or too slow)"}
    found["wall_s"] = round(time.perf_counter() - start, 1)
    if result.returncode != 0:
        return {**found, "error": f"exit {result.returncode}: {_fault(result.stderr)}"}
    run = Path(json.loads(result.stdout)["run"])
    events = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    manifest = json.loads((run / "manifest.json").read_text())
    samples = next(e for e in events if e["event"] == "data")["fit_samples"]
    samples -= samples % devices  # what an epoch feeds (core.train.batches.evenly_divided)
    found["devices_used"] = manifest["hardware"]["devices"]
    found["fit_samples_per_epoch"] = samples
    for phase, key in (("head", "head_films_per_second"),
                       ("fine-tune", "fine_tune_films_per_second")):
        found[key] = _films_per_second(events, phase, samples)
    return found


def _fault(stderr: str) -> str:
    """The line that says what went wrong: a native abort ends with stack frames, so the
    first line naming a failure, else the last line."""
    lines = stderr.strip().splitlines() or ["(no message)"]
    marks = ("Check failed", "Fatal", "Error", "error:", "Aborted")
    return next((line.strip() for line in lines if any(m in line for m in marks)), lines[-1])


def _films_per_second(events: list[dict], phase: str, samples: int) -> float | None:
    """Samples of one epoch over its seconds, the median over the phase's epochs after its
    first (which compiles); None when the phase had only one epoch."""
    times = [e["time"] for e in events if e.get("phase") == phase and e["event"] == "epoch"]
    seconds = [later - earlier for earlier, later in pairwise(times)]
    return round(samples / median(seconds), 1) if seconds else None


if __name__ == "__main__":
    main()
