"""An ensemble of one rsna configuration's fold models, from its cross-validations on three
seeds (``core.experiments.ensembles.fold_model_ensembles``): every film was scored by one
fold model per seed that never saw its woman, and the three scores are averaged.

Why: issue 15 asks for an ensemble of the fold models; on MIAS it is measured by
``bench/mias_ensemble.py --across-seeds``. Here the same for cancer vs no cancer on
rsna-640, with the per-woman figures. Reads ``bench/out/rsna/STEM-seed<N>.json`` (the
``core cv`` documents of seeds 0, 1, 2, their commands beside them) and writes
``bench/out/rsna/fold-ensemble-STEM-seed<N>.json``, each pairable fold by fold with the
configuration's own document of that seed.

    python bench/rsna_ensemble.py --stem attention-frozen-256
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.settings import REPO

RSNA = REPO / "bench" / "out" / "rsna"
SEEDS = (0, 1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stem", required=True,
                        help="the cv documents' name before -seed<N>.json in bench/out/rsna")
    parser.add_argument("--folder", type=Path, default=RSNA)
    args = parser.parse_args()
    from core.errors import MammoError
    from core.experiments.ensembles import fold_model_ensembles

    files = {seed: args.folder / f"{args.stem}-seed{seed}.json" for seed in SEEDS}
    missing = [str(file) for file in files.values() if not file.is_file()]
    if missing:
        raise SystemExit(f"every seed must be measured first; missing: {', '.join(missing)}")
    documents = {seed: json.loads(file.read_text()) for seed, file in files.items()}
    try:
        ensembles = fold_model_ensembles(documents, lambda _, fold: fold["films"])
    except (MammoError, KeyError) as error:  # KeyError: a document without films' scores
        raise SystemExit(f"{args.stem}: {error}") from None
    for seed, document in ensembles.items():
        stem = args.folder / f"fold-ensemble-{args.stem}-seed{seed}"
        stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
        stem.with_suffix(".cmd").write_text(
            f"python bench/rsna_ensemble.py --stem {args.stem}\n")
        mean = document["mean"]
        print(f"seed {seed}: {stem}.json, image AUC {mean['auc']:.3f}, woman AUC "
              f"{mean['patient_auc']:.3f}")


if __name__ == "__main__":
    main()
