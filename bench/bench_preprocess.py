"""How fast films become model inputs: read + normalise + segment + crop + orient + resize + CLAHE.

Runs ``core.prep.preprocess.preprocess_files`` with the default ``PrepConfig`` over the real
mini-MIAS PNGs (1024 x 1024, repeated to make a longer run) on 1 and 2 workers, and prints
one JSON line of figures then one line for people. The target is 150 films/s on 2 cores.

    python bench/bench_preprocess.py [--root ../shared/data/mias] [--repeat 2] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from core.films import read_film
from core.prep.preprocess import PrepConfig, preprocess, preprocess_files
from core.settings import SHARED


def _run(paths: list[Path], config: PrepConfig, workers: int) -> tuple[float, float]:
    """Films per second of wall time, and CPU milliseconds per film (all threads).

    The CPU figure does not depend on what else the machine is running; on a busy machine
    it says what the wall figure would be with the cores to ourselves.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    preprocess_files(paths, config, workers=workers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(paths) / wall, 1000 * cpu / len(paths)


def _stage_ms(paths: list[Path], config: PrepConfig) -> dict[str, float]:
    """Per-film milliseconds of reading and of preprocessing alone, on one thread."""
    start = time.perf_counter()
    films = [read_film(path).pixels for path in paths]
    read = time.perf_counter() - start
    start = time.perf_counter()
    for pixels in films:
        preprocess(pixels, config)
    prep = time.perf_counter() - start
    return {"read_ms": 1000 * read / len(paths), "preprocess_ms": 1000 * prep / len(paths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "mias")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the films per run")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    films = sorted(args.root.glob("mdb*.png"))
    if not films:
        sys.exit(f"error: no mdbNNN.png films in {args.root}")
    config = PrepConfig(size=args.size)
    paths = films * args.repeat
    preprocess_files(films[:16], config, workers=2)  # warm the page cache and imports

    load_before = os.getloadavg()[0]
    runs = {workers: _run(paths, config, workers) for workers in (1, 2)}
    rates = {workers: rate for workers, (rate, _) in runs.items()}
    figures = {
        "films": len(paths),
        "distinct_films": len(films),
        "film_shape": list(read_film(films[0]).pixels.shape),
        "size": args.size,
        "config": config.to_dict(),
        "films_per_s_1_worker": round(rates[1], 1),
        "films_per_s_2_workers": round(rates[2], 1),
        "cpu_ms_per_film_1_worker": round(runs[1][1], 2),
        "cpu_ms_per_film_2_workers": round(runs[2][1], 2),
        **{k: round(v, 2) for k, v in _stage_ms(films[:64], config).items()},
        "cpus": os.cpu_count(),
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures))
    print(f"{rates[2]:.0f} films/s on 2 workers, {rates[1]:.0f} on 1 "
          f"({len(paths)} films of {figures['film_shape'][0]}x{figures['film_shape'][1]} "
          f"-> {args.size}; read {figures['read_ms']:.1f} ms + preprocess "
          f"{figures['preprocess_ms']:.1f} ms per film on one thread; "
          f"{runs[2][1]:.1f} ms CPU per film on 2 workers; load average "
          f"{load_before:.1f} before the runs)")


if __name__ == "__main__":
    main()
