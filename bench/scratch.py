"""What every benchmark sets up first: a private Keras cache holding the shared ImageNet
weights and a private feature cache, so a figure never depends on what the machine's own
caches happen to hold (a warm feature cache would make training look fast)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def private_caches(weights: Path, scratch: Path) -> dict[str, str]:
    """Copy the ``*.h5`` weights into ``scratch/keras/models`` and return the environment
    variables (``KERAS_HOME``, ``MAMMO_CACHE``) that point Keras and ``core`` there."""
    models = scratch / "keras" / "models"
    models.mkdir(parents=True)
    for file in weights.glob("*.h5"):
        shutil.copy(file, models / file.name)
    return {"KERAS_HOME": str(scratch / "keras"), "MAMMO_CACHE": str(scratch / "cache")}


def quiet_private_environment(weights: Path, scratch: Path) -> None:
    """Point this process at private caches (``private_caches``) and keep TensorFlow's and
    the product's logging to warnings, as every timing bench wants before importing core."""
    import logging

    os.environ.update(private_caches(weights, scratch))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING)
