"""Training on more films than memory holds: 5,000 SYNTHETIC films at 256 px, streamed.

Draws the SYNTHETIC films (``core.data.synthetic``, not mammograms) into class folders on disk,
``SYNTHETIC-<n>-films-<size>px/<class>/synthetic-NNNNN.pgm``, each PGM header saying what it
is, with a ``patients.csv`` pairing each synthetic patient's two films. Then trains, in a child
process with a cold feature cache, exactly what a user types: ``python -m core train
--dataset folder --root ... --streaming on --json``, the default attention model at 256 px,
without patch pretraining and fine-tuning (each would add passes, not memory), for a few
epochs; then evaluates the trained run on every film of its dataset (``python -m core
evaluate RUN --dataset folder --root ... --json``, read a part at a time), under the same cap. A watchdog reads the child's resident memory every 0.2 s and kills it past
``--cap-gb``; the figure reported is the kernel's own peak (``wait4``'s ``ru_maxrss``). The same
training on ``--small`` films first shows what does not grow with the dataset.

Prints one JSON document (also written to ``bench/out/scale/bench_stream.json``) and lines for
people: films per second of each pass, peak memory, and what holding the films would take.

    python bench/bench_stream.py [--films 5000] [--size 256] [--epochs 2] [--cap-gb 1.6]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from core.settings import REPO

OUT = REPO / "bench" / "out" / "scale"
#: ``make_specs`` draws at most 999 films (MIAS numbers them mdbNNN); larger sets are drawn
#: in chunks of whole patients, each chunk from its own seed.
CHUNK = 998
LABEL = "SYNTHETIC"


def draw_films(root: Path, films: int, size: int, seed: int = 0) -> Path:
    """``films`` SYNTHETIC films in class folders under ``root``, and ``patients.csv``."""
    from core.data.synthetic import FILM_HEADER_COMMENT, make_specs, pgm_bytes, render_film

    jobs = []
    for chunk, start in enumerate(range(0, films, CHUNK)):
        for spec in make_specs(min(CHUNK, films - start), seed + chunk):
            jobs.append((start + spec.number, chunk, spec))
    for label in {spec.label for _, _, spec in jobs}:
        (root / label).mkdir(parents=True, exist_ok=True)

    def write(job: tuple[int, int, Any]) -> str:
        number, chunk, spec = job
        name = f"{spec.label}/synthetic-{number:05d}.pgm"
        comment = f"{FILM_HEADER_COMMENT}; bench_stream seed {seed + chunk} {spec.film_id}"
        (root / name).write_bytes(pgm_bytes(render_film(spec, size), comment))
        patient = f"synthetic-{chunk}-{(spec.number + 1) // 2:03d}"  # odd/even: one patient
        return f"{name},{patient}"

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        rows = list(pool.map(write, jobs))
    (root / "patients.csv").write_text("file,patient\n" + "\n".join(rows) + "\n")
    return root


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_capped(command: list[str], env: dict[str, str], cap_bytes: int,
                 log: Path) -> dict[str, Any]:
    """Run ``command``; kill it if its resident memory passes ``cap_bytes``. Returns its JSON
    output, wall time and the kernel's peak resident memory of that process alone."""
    started = time.perf_counter()
    with open(log, "w") as errors:
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                 stderr=errors, text=True)
        killed = threading.Event()
        watched = {"most": 0}

        def watch() -> None:
            while child.poll() is None:
                rss = _rss_bytes(child.pid)
                watched["most"] = max(watched["most"], rss)
                if rss > cap_bytes:
                    killed.set()
                    child.kill()
                    return
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert child.stdout is not None
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        watcher.join()
    seconds = time.perf_counter() - started
    if killed.is_set():
        sys.exit(f"{command[3]} passed the cap of {cap_bytes / 1e9:.2f} GB and was stopped")
    if child.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["no message"]
        sys.exit(f"{command[3]} failed ({child.returncode}): {tail[0]}")
    return {"document": json.loads(output), "seconds": seconds,
            "peak_rss_bytes": usage.ru_maxrss * 1024, "watched_rss_bytes": watched["most"]}


def pass_speeds(run: Path) -> dict[str, Any]:
    """Films per second of each pass, from the run's own progress log."""
    events = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    manifest = json.loads((run / "manifest.json").read_text())
    started = datetime.fromisoformat(manifest["started"]).timestamp()  # whole seconds
    data = next(e for e in events if e["event"] == "data")
    read_s = data["time"] - started
    encoded = [e for e in events if e["event"] == "features" and "films" in e]
    epochs = [e for e in events if e["event"] == "epoch"]
    begin = next(e for e in events if e["event"] == "phase_begin")
    epoch_s = [later["time"] - earlier["time"]
               for earlier, later in zip([begin, *epochs], epochs)]
    films_per_epoch = data["fit_samples"] + data["val"]
    return {
        "streamed": data["streamed"],
        "fit_films": data["fit_samples"], "val_films": data["val"],
        "read_films_per_s": round((data["train"] + data["val"]) / read_s, 1),
        "encode_films_per_s": round(sum(e["films"] for e in encoded)
                                    / max(sum(e["elapsed_s"] for e in encoded), 1e-9), 1),
        "epoch_s": [round(s, 1) for s in epoch_s],
        # the last epoch: the first also traces and compiles the training step
        "train_films_per_s": round(films_per_epoch / epoch_s[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--films", type=int, default=5000)
    parser.add_argument("--small", type=int, default=500, help="films of the comparison run")
    parser.add_argument("--size", type=int, default=256, help="film and input side (px)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cap-gb", type=float, default=1.6,
                        help="resident memory the training may not pass (GB)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="folder for films and caches (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        figures = run_bench(args, Path(scratch))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_stream.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))
    for run in figures["runs"]:
        print(f"{LABEL} films, {run['films']:,} at {args.size} px, streamed: peak memory "
              f"{run['peak_rss_bytes'] / 1e9:.2f} GB (cap {args.cap_gb:g} GB); read "
              f"{run['read_films_per_s']:.0f} films/s, encoded {run['encode_films_per_s']:.0f} "
              f"films/s, trained {run['train_films_per_s']:.0f} films/s; {run['seconds']:.0f} s "
              "in all")
        scored = run["evaluate"]
        print(f"  then evaluated on all {scored['films']:,} films: peak memory "
              f"{scored['peak_rss_bytes'] / 1e9:.2f} GB, {scored['films_per_s']:.0f} films/s, "
              f"{scored['seconds']:.0f} s")
    memory = figures["in_memory"]
    small, large = figures["runs"][0], figures["runs"][-1]
    print(f"Holding the {args.films:,} films would take {memory['films_float32_bytes'] / 1e9:.2f}"
          f" GB as the model's float32 inputs ({memory['films_uint8_bytes'] / 1e9:.2f} GB as "
          f"uint8); training in memory holds its {memory['training_films']:,} training and "
          f"validation films ({memory['training_films_uint8_bytes'] / 1e9:.2f} GB as uint8) "
          f"and their features ({memory['training_features_float16_bytes'] / 1e9:.2f} GB as "
          f"float16). Streamed, {large['films'] // small['films']}x the films took "
          f"{(large['peak_rss_bytes'] - small['peak_rss_bytes']) / 1e6:+.0f} MB of peak memory")


def run_bench(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    runs = []
    for films in (args.small, args.films):
        root = scratch / f"{LABEL}-{films}-films-{args.size}px"
        started = time.perf_counter()
        draw_films(root, films, args.size)
        drawn_s = time.perf_counter() - started
        env = {**os.environ, "MAMMO_CACHE": str(scratch / f"cache-{films}"),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [sys.executable, "-m", "core", "train", "--dataset", "folder", "--root",
                   str(root), "--streaming", "on", "--image-size", str(args.size),
                   "--epochs", str(args.epochs), "--patch-epochs", "0",
                   "--fine-tune-layers", "0", "--patience", "0", "--weights", "none",
                   "--out", str(scratch / f"runs-{films}"), "--json"]
        trained = run_capped(command, env, int(args.cap_gb * 1e9),
                             scratch / f"train-{films}.log")
        run = Path(trained["document"]["run"])
        feature_shape = json.loads((run / "manifest.json").read_text())["feature_shape"]
        # Then the trained run scores every film of its dataset (an external evaluation),
        # read a part at a time (``core.evaluate.evaluate.score_films``), under the same cap.
        evaluated = run_capped([sys.executable, "-m", "core", "evaluate", str(run), "--dataset",
                                "folder", "--root", str(root), "--json"], env,
                               int(args.cap_gb * 1e9), scratch / f"evaluate-{films}.log")
        runs.append({"films": films, "drawn_s": round(drawn_s, 1),
                     "seconds": round(trained["seconds"], 1),
                     "peak_rss_bytes": trained["peak_rss_bytes"],
                     "watched_rss_bytes": trained["watched_rss_bytes"],
                     "feature_shape": feature_shape, **pass_speeds(run),
                     "evaluate": {"films": evaluated["document"]["n"],
                                  "seconds": round(evaluated["seconds"], 1),
                                  "films_per_s": round(evaluated["document"]["n"]
                                                       / evaluated["seconds"], 1),
                                  "peak_rss_bytes": evaluated["peak_rss_bytes"]}})
    pixels = args.films * args.size ** 2
    features = 1
    for side in runs[-1]["feature_shape"]:
        features *= side
    held = runs[-1]["fit_films"] + runs[-1]["val_films"]  # what training in memory holds
    return {
        "synthetic": True,
        "what": f"{LABEL} films (core.data.synthetic), not mammograms",
        "command": " ".join(["python", "bench/bench_stream.py", *sys.argv[1:]]),
        "model": "attention, mobilenet_v2 (random init), no patch pretraining or fine-tuning",
        "epochs": args.epochs, "size": args.size, "cap_bytes": int(args.cap_gb * 1e9),
        "cpus": os.cpu_count(), "load_average": os.getloadavg(),
        "in_memory": {"films_uint8_bytes": pixels, "films_float32_bytes": 4 * pixels,
                      "training_films": held,
                      "training_films_uint8_bytes": held * args.size ** 2,
                      "training_features_float16_bytes": 2 * features * held},
        "runs": runs,
        "parent_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


if __name__ == "__main__":
    main()
