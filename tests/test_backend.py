"""The backend module on a CPU-only machine: what must simply do nothing does nothing."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import keras
import numpy as np

from core import backend
from core.runs.config import TrainConfig
from core.runs.folder import WEIGHTS
from core.train.fit import train
from factories import TINY


def test_cpu_machine_gets_float32_and_no_distribution() -> None:
    assert backend.accelerators() == []
    assert backend.set_mixed_precision("off") == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert isinstance(backend.distribution_scope(), nullcontext)
    assert isinstance(backend.distribution_scope(1), nullcontext)


def test_same_seed_same_model(synthetic_root: Path, tmp_path: Path) -> None:
    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(
        **TINY, seed=7)
    first, second = train(config, tmp_path), train(config, tmp_path)
    assert first.path != second.path
    assert first.manifest["val"] == second.manifest["val"]
    assert first.manifest["split"] == second.manifest["split"]
    models = [keras.models.load_model(run.path / "model.keras", safe_mode=True)
              for run in (first, second)]
    for a, b in zip(models[0].weights, models[1].weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (first.path / WEIGHTS).stat().st_size > 0
