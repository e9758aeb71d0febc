"""The RSNA export's films stored inverted: how many, per class, how fast they are counted,
and how far every film's two cues sit from the thresholds (``core.prep.polarity``).

Reads every film of ``--rsna`` (the 640-px export) and ``--mias`` once, as ``data summary``
does (``core.prep.survey``), then once more on one thread for the cues, and prints one JSON
line of figures then one line for people. The counting pass is timed on its own.

    python bench/rsna_summary.py [--rsna ../shared/data/rsna-640] [--mias ../shared/data/mias]

Measured on this project's 2-core machine (shared, load average about 4):
441 of 2,711 films inverted: no_cancer 318 of 1,784, cancer 123 of 927 (the export's README
estimated 318 and 121 from median brightness, which misses two inverted cancer films darker
than mid-grey overall); counting took 16 s on 2 threads (4.3 ms of CPU per film; the
whole ``data summary --dataset rsna`` command about 20 s).
Inverted films: border >= 0.475, background >= 0.220; the others: border <= -0.209,
background <= -0.118. mini-MIAS: 0 of 256 inverted; border <= -0.004, background <= -0.082.
Every flagged film and all 2,270 others were looked at in contact sheets: none misjudged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from core.data import load_dataset
from core.data.records import Dataset
from core.films import read_film
from core.prep.preprocess import film_polarity
from core.prep.survey import survey
from core.settings import SHARED


def _cues(dataset: Dataset) -> dict[str, dict[str, float]]:
    """The least and greatest of each cue, among the films found inverted and the others."""
    groups: dict[str, dict[str, list[float]]] = {}
    for record in dataset.records:
        polarity = film_polarity(read_film(record.path).pixels)
        group = groups.setdefault("inverted" if polarity.inverted else "upright",
                                  {"border": [], "background": []})
        group["border"].append(polarity.border)
        group["background"].append(polarity.background)
    return {name: {f"{cue}_{end}": round(fn(values), 3) for cue, values in cues.items()
                   for end, fn in (("min", min), ("max", max))}
            for name, cues in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rsna", type=Path, default=SHARED / "data" / "rsna-640")
    parser.add_argument("--mias", type=Path, default=SHARED / "data" / "mias")
    args = parser.parse_args()
    if not args.rsna.is_dir():
        sys.exit(f"error: no RSNA export at {args.rsna}")

    rsna = load_dataset("rsna", args.rsna)
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    found = survey(rsna.records, rsna.classes)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    summary = rsna.summary()
    figures = {
        "films": summary["films"], "patients": summary["patients"],
        "classes": summary["classes"], "inverted": len(found.inverted),
        "inverted_by_class": found.by_class, "unreadable": len(found.unreadable),
        "count_seconds": round(wall, 1), "cpu_ms_per_film": round(1000 * cpu / len(rsna), 2),
        "threads": os.cpu_count(), "load_average_1min_before": round(load_before, 2),
        "rsna_cues": _cues(rsna),
    }
    if args.mias.is_dir():
        mias = load_dataset("mias", args.mias)
        figures["mias_films"] = len(mias)
        figures["mias_inverted"] = len(survey(mias.records, mias.classes).inverted)
        figures["mias_cues"] = _cues(mias)
    print(json.dumps(figures))
    shares = ", ".join(f"{name} {found.by_class[name]} of {summary['classes'][name]}"
                       for name in rsna.classes)
    mias_line = (f"; mini-MIAS: {figures['mias_inverted']} of {figures['mias_films']}"
                 if "mias_films" in figures else "")
    print(f"{len(found.inverted)} of {len(rsna)} films stored inverted ({shares}), counted in "
          f"{wall:.1f} s ({figures['cpu_ms_per_film']:.1f} ms CPU per film, load average "
          f"{load_before:.1f} before){mias_line}")


if __name__ == "__main__":
    main()
