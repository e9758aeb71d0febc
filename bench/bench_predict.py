"""End-to-end predict latency, exactly what ``predict_films`` does for one upload: on a
full-field film (4,600 x 2,700, 16-bit, RLE Lossless DICOM: ``fullsize_film.py``) with the
time of each stage, and on real 1,024 x 1,024 mini-MIAS films, beside the bare encoder's
forward time, all in one process with the model loaded; and that process's peak memory.

The model is the default attention model (MobileNetV2 at 512 px, ImageNet weights from the
shared folder copied into a private Keras cache) trained quickly in a temporary folder:
one epoch, class weights instead of augmentation (``--run`` reuses a trained run instead).
The figures are latency, not accuracy, and a quick model does the same arithmetic as a
long-trained one. Each film is one call, as the app makes them, after one warm-up call per
kind of film (loading and compiling the model).

Stages (seconds per call, summed over the calls a stage makes, only the outermost timed
call counting): ``read`` (decode, DICOM gate), ``preprocess`` (polarity, segmentation, the
mammogram check, crop, resize, CLAHE), ``model`` (the compiled forward pass and the
calibration), ``heatmap`` (the map from the model's grid onto the drawn grid), ``overlay``
(the display film, the blend, the caption and colour bar), ``write`` (PNG encoding and the
atomic write). They are timed by wrapping the functions ``core.evaluate.predict`` calls, so
the path timed is the real one; ``total`` is the whole call.

Peak memory is the measuring process's VmHWM (Linux's high-water mark of resident memory,
which, unlike ``ru_maxrss``, is not inherited across ``fork``): TensorFlow, the loaded
model and every prediction. It runs in a child process of its own, so the training of the
quick model does not count. ``import tensorflow`` imports JAX whenever it is installed
(``tensorflow/lite/python/util.py``), and the development environment installs it for the
tests (``requirements-dev.txt``) where a runtime install (``requirements.txt``) does not:
``--no-jax`` keeps it out of the measuring process, as a runtime install has it (about
110 MiB less). ``jax_imported`` in the figures says which was measured. Targets (issue 18): full-size p50 <= 1.0 s and <= 1.2 GB peak on
2 cores; 1,024-px p50 300 ms (issue 4). Prints one JSON document, writes it to ``--out``,
and prints lines for people.

    python bench/bench_predict.py [--root ../shared/data/mias] [--weights ../shared/weights]
        [--films 20] [--repeats 10] [--run RUN] [--no-jax]
        [--out bench/out/predict/fullsize.json]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scratch import quiet_private_environment

from core.settings import SHARED

BENCH = Path(__file__).resolve().parent
#: Where each stage's time is taken: the functions ``predict_films`` reaches, by module
#: (names missing from a version of the code are skipped, so an older tree can be timed).
STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "read": (("core.evaluate.predict", "read_film"),),
    "preprocess": (("core.evaluate.predict", "look_at"), ("core.evaluate.predict", "upright"),
                   ("core.evaluate.predict", "plausibility_warnings"),
                   ("core.evaluate.predict", "preprocess")),
    "model": (("core.evaluate.predict", "scores_and_maps"),
              ("core.evaluate.predict", "calibrated")),
    "heatmap": (("core.evaluate.predict", "to_film"), ("core.evaluate.heatmaps", "to_film")),
    "overlay": (("core.evaluate.predict", "display_grey"), ("core.evaluate.predict", "shrink"),
                ("core.evaluate.heatmaps", "display_grey"), ("core.evaluate.heatmaps", "shrink"),
                ("core.evaluate.predict", "overlay_picture")),
    "write": (("core.evaluate.predict", "save_png"),),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "mias")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("--films", type=int, default=20, help="1,024-px films to time")
    parser.add_argument("--repeats", type=int, default=10, help="full-size calls to time")
    parser.add_argument("--run", type=Path, help="a trained run to use instead of training")
    parser.add_argument("--no-jax", action="store_true",
                        help="measure without JAX imported, as a runtime install runs")
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "predict" / "fullsize.json")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's run
    parser.add_argument("--film", type=Path, help=argparse.SUPPRESS)  # the child's DICOM
    args = parser.parse_args()
    if args.measure is not None:
        if args.no_jax:
            sys.modules["jax"] = None  # type: ignore[assignment]  # import jax now fails
        print(json.dumps(measure(args.measure, args.film, args.root, args.films,
                                 args.repeats)))
        return
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        quiet_private_environment(args.weights, scratch_path)
        run_path, train_s = (args.run, None) if args.run else _train(args.root, scratch_path)
        from fullsize_film import COLS, ROWS, fullsize_dicom

        film = scratch_path / "fullsize.dcm"
        film.write_bytes(fullsize_dicom())
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(run_path), "--film", str(film),
             "--root", str(args.root), "--films", str(args.films),
             "--repeats", str(args.repeats), *(["--no-jax"] if args.no_jax else [])],
            capture_output=True, text=True, check=False, env=os.environ)
        if child.returncode != 0:
            sys.exit(f"the measuring process failed:\n{child.stderr[-4000:]}")
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        figures["film"].update(rows=ROWS, cols=COLS, bytes=film.stat().st_size)
    figures.update(cpus=len(os.sched_getaffinity(0)), train_s=train_s,
                   model="attention mobilenet_v2 512 px, imagenet weights, 1 quick epoch",
                   load_average={"before": [round(x, 2) for x in load_before],
                                 "after": [round(x, 2) for x in os.getloadavg()]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures))
    _say(figures)


def _train(root: Path, scratch: Path) -> tuple[Path, float]:
    from core.runs.config import TrainConfig
    from core.train.fit import train

    config = TrainConfig(dataset="mias", root=str(root)).with_overrides(
        epochs=1, balance="class_weights", patience=0)
    start = time.perf_counter()
    run = train(config, scratch / "runs")
    if run.manifest["status"] != "done":
        sys.exit(f"training failed: {run.manifest.get('error')}")
    return run.path, round(time.perf_counter() - start, 1)


def measure(run_path: Path, film: Path, root: Path, n_films: int,
            repeats: int) -> dict[str, Any]:
    """In the measuring process: the 1,024-px films, the bare encoder, the full-size film
    (per stage), and this process's peak memory."""
    from core.evaluate.heatmaps import encoder_and_head
    from core.evaluate.predict import loaded_run, predict_films

    start = time.perf_counter()
    loaded = loaded_run(run_path)
    load_s = time.perf_counter() - start
    films = sorted(root.glob("mdb*.png"))[:n_films + 1]
    with tempfile.TemporaryDirectory() as out_dir:
        out = Path(out_dir)

        def predict(path: Path) -> dict[str, Any]:
            (entry,) = predict_films(run_path, [path], out)
            if "error" in entry:
                sys.exit(f"predict failed: {entry['error']}")
            Path(entry["heatmap"]).unlink()
            return entry

        predict(films[0])  # warm-up: compile the model's call
        small = [_timed(lambda path=path: predict(path)) for path in films[1:]]
        rss_loaded = _status_kib("VmRSS")

        encoder, _ = encoder_and_head(loaded.model)
        size = loaded.prep.size
        batch = np.random.default_rng(0).uniform(0, 255, (1, size, size, 1)).astype(np.float32)
        encoder.predict_on_batch(batch)  # warm-up
        forward = [_timed(lambda: encoder.predict_on_batch(batch)) for _ in range(20)]

        predict(film)  # warm-up of the full-size path
        timer = _StageTimer()
        full, stages = [], []
        with timer.installed():
            for _ in range(repeats):
                timer.reset()
                full.append(_timed(lambda: predict(film)))
                stages.append(dict(timer.seconds))
        (entry,) = predict_films(run_path, [film], out)
        overlay_shape = _png_shape(Path(entry["heatmap"]))
    return {
        "fullsize": {"calls": repeats, **_percentiles(full),
                     "stages_p50_ms": {name: round(1000 * float(np.median(
                         [one.get(name, 0.0) for one in stages])), 1) for name in STAGES},
                     "overlay_png": list(overlay_shape)},
        "mias_1024": {"films": len(small), **_percentiles(small)},
        "encoder_forward": {"calls": len(forward), "input": [1, size, size, 1],
                            **_percentiles(forward)},
        "memory": {"peak_rss_mib": round(_status_kib("VmHWM") / 1024, 1),
                   "rss_after_model_and_1024_films_mib": round(rss_loaded / 1024, 1)},
        "model_load_s": round(load_s, 1),
        "jax_imported": sys.modules.get("jax") is not None,
        "film": {"path": "synthetic (bench/fullsize_film.py)", "encoding": "RLE Lossless",
                 "bits": 16},
    }


class _StageTimer:
    """Wraps the stage functions; only the outermost timed call counts, so a stage that calls
    another wrapped function is not counted twice."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._depth = 0

    def reset(self) -> None:
        self.seconds = {}

    def _wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + (
                        time.perf_counter() - start)
        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        originals = []
        for stage, places in STAGES.items():
            for module_name, name in places:
                module = importlib.import_module(module_name)
                if hasattr(module, name):
                    originals.append((module, name, getattr(module, name)))
                    setattr(module, name, self._wrap(stage, getattr(module, name)))
        try:
            yield
        finally:
            for module, name, original in reversed(originals):
                setattr(module, name, original)


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p90_ms": round(float(np.percentile(ms, 90)), 1),
            "max_ms": round(float(ms.max()), 1)}


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmHWM: peak resident memory; VmRSS: now)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _png_shape(path: Path) -> tuple[int, int]:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return int(image.shape[0]), int(image.shape[1])


def _say(figures: dict[str, Any]) -> None:
    full, small, forward = figures["fullsize"], figures["mias_1024"], figures["encoder_forward"]
    film = figures["film"]
    stages = ", ".join(f"{name} {ms}" for name, ms in full["stages_p50_ms"].items())
    print(f"predict per {film['rows']} x {film['cols']} 16-bit RLE DICOM, end to end: p50 "
          f"{full['p50_ms']} ms, p90 {full['p90_ms']} ms over {full['calls']} calls "
          f"(target p50 1000 ms); stages p50 (ms): {stages}; overlay PNG "
          f"{full['overlay_png'][0]} x {full['overlay_png'][1]}")
    jax = "with" if figures["jax_imported"] else "without"
    print(f"peak memory of the predicting process: {figures['memory']['peak_rss_mib']} MiB, "
          f"{jax} JAX imported (target 1.2 GB)")
    print(f"predict per 1024 x 1024 film, end to end: p50 {small['p50_ms']} ms, p90 "
          f"{small['p90_ms']} ms over {small['films']} films (target p50 300 ms); bare "
          f"encoder forward {forward['input']}: p50 {forward['p50_ms']} ms")
    print(f"on {figures['cpus']} cores, load average before {figures['load_average']['before']}"
          f", after {figures['load_average']['after']}")


if __name__ == "__main__":
    main()
