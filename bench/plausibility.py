"""The figures behind ``core.prep.plausibility``'s thresholds: each measure's spread over
real films (all mini-MIAS films, every ``--every``-th film of the RSNA 640-px export) and
its value on pictures that are no mammograms (the colour photos in the shared folder,
uniform noise, a flat grey), and how many of each would be warned about.

    python bench/plausibility.py [--shared ../shared] [--every 9]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core.films import read_film
from core.prep.plausibility import measures, plausibility_warnings
from core.prep.preprocess import upright
from core.settings import SHARED


def _encoded(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--every", type=int, default=9, help="take every n-th RSNA film")
    args = parser.parse_args()
    groups = {
        "mini-MIAS": sorted((args.shared / "data" / "mias").glob("mdb*.png")),
        "RSNA 640": sorted((args.shared / "data" / "rsna-640").glob("*/*.jpg"))[::args.every],
    }
    for name, files in groups.items():
        if not files:
            print(f"{name}: no films found under {args.shared}")
            continue
        films = [upright(read_film(file)) for file in files]
        table = pd.DataFrame([measures(film) for film in films])
        warned = [file.name for file, film in zip(files, films) if plausibility_warnings(film)]
        print(f"{name}: {len(films)} films, {len(warned)} warned {warned[:10]}")
        print(table.describe(percentiles=[0.01, 0.5, 0.99]).round(3).to_string(), "\n")
    rng = np.random.default_rng(0)
    others = {file.name: file.read_bytes()
              for file in sorted((args.shared / "weights" / "photos").glob("*.png"))}
    others["noise 4000 x 3000"] = _encoded(rng.integers(0, 256, (3000, 4000), dtype=np.uint8))
    others["noise 300 x 400"] = _encoded(rng.integers(0, 256, (400, 300), dtype=np.uint8))
    others["flat grey"] = _encoded(np.full((400, 300), 120, np.uint8))
    for name, data in others.items():
        film = upright(read_film(data, name=f"{name}.png"))
        figures = {key: round(value, 3) for key, value in measures(film).items()}
        print(f"{name}: {figures}\n  warnings: {plausibility_warnings(film)}")


if __name__ == "__main__":
    main()
