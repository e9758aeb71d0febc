"""The class probabilities ``predict_films`` gives some films, as one JSON document, so two
trees can be compared on real films (a change to the predict path must not move them):

    PYTHONPATH=OLD_TREE python bench/predict_probabilities.py RUN FILM... > before.json
    PYTHONPATH=NEW_TREE python bench/predict_probabilities.py RUN FILM... > after.json
    cmp before.json after.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("films", type=Path, nargs="+")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING)
    from core.evaluate.predict import predict_films

    with tempfile.TemporaryDirectory() as out:
        entries = predict_films(args.run, args.films, out)
    print(json.dumps({Path(entry["file"]).name: entry.get("probabilities", entry.get("error"))
                      for entry in entries}, indent=1))


if __name__ == "__main__":
    main()
