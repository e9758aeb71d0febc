"""Temperature scaling in a run: fitted after training on a deliberately over-confident
model's validation films, kept in the manifest, and used by predict and evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import BadConfigError
from core.evaluate.evaluate import evaluate_run, run_settings
from core.evaluate.predict import predict_films
from core.metrics.temperature import apply_temperature
from core.models.kinds import AttentionKind
from core.runs.config import TrainConfig
from core.runs.folder import MANIFEST, Run, open_run
from core.train.fit import train
from factories import TINY

#: What the deliberately over-confident model says of the class it picks, whatever it sees.
CLAIMED = 0.97


def _sure(probabilities: np.ndarray) -> np.ndarray:
    """``CLAIMED`` for each film's most probable class, the rest shared by the others: a
    model that barely learnt (a learning rate of 1e-7) but says it is 97% sure."""
    n_classes = probabilities.shape[1]
    sure = np.full(probabilities.shape, (1.0 - CLAIMED) / (n_classes - 1))
    sure[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = CLAIMED
    return sure


@pytest.fixture(scope="module")
def over_confident_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A tiny run of that model, over-confident wherever its probabilities are read
    (training's validation films here; predict and evaluate with ``sure_model``)."""
    plain = AttentionKind.probabilities
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AttentionKind, "probabilities", lambda self, out: _sure(plain(self, out)))
        config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(
            **TINY, learning_rate=1e-7, temperature_scaling=True)
        return train(config, tmp_path_factory.mktemp("runs"))


@pytest.fixture()
def sure_model(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = AttentionKind.probabilities
    monkeypatch.setattr(AttentionKind, "probabilities", lambda self, out: _sure(plain(self, out)))


def test_the_fitted_temperature_softens_and_lowers_validation_nll_and_ece(
        over_confident_run: Run) -> None:
    manifest = over_confident_run.manifest
    assert manifest["status"] == "done" and manifest["config"]["temperature_scaling"] is True
    kept = manifest["temperature"]
    assert kept["temperature"] > 1.5  # softened, as an over-confident model needs
    assert kept["nll_after"] < kept["nll_before"]
    assert kept["ece_after"] < kept["ece_before"]
    assert kept["n_films"] == len(manifest["split"]["val"])
    assert run_settings(over_confident_run).temperature == kept["temperature"]


def test_predict_and_evaluate_divide_by_the_runs_temperature(
        over_confident_run: Run, synthetic_root: Path, tmp_path: Path,
        sure_model: None) -> None:
    temperature = over_confident_run.manifest["temperature"]["temperature"]
    films = sorted(synthetic_root.glob("*.pgm"))[:3]
    plain_run = open_run(shutil.copytree(over_confident_run.path,
                                         tmp_path / "plain" / over_confident_run.name))
    plain_run.update_manifest(temperature=None)  # as a run trained without scaling
    assert run_settings(plain_run).temperature is None
    scaled = predict_films(over_confident_run, films, tmp_path / "scaled")
    plain = predict_films(plain_run, films, tmp_path / "plain-out")
    for with_t, without in zip(scaled, plain):
        p = np.array(list(with_t["probabilities"].values()))
        q = np.array(list(without["probabilities"].values()))
        assert p == pytest.approx(apply_temperature(q[None], temperature)[0], abs=1e-6)
        assert with_t["label"] == without["label"]  # scaling never changes a prediction
        assert p.max() < q.max()  # softer
    assert evaluate_run(over_confident_run)["temperature"] == temperature


@pytest.mark.parametrize("kept", [{"temperature": -1.0}, {"temperature": "hot"}, 3.0,
                                  {"temperature": float("inf")}])
def test_a_manifests_bad_temperature_is_one_error_naming_it(over_confident_run: Run,
                                                            tmp_path: Path, kept: Any) -> None:
    copy = Path(shutil.copytree(over_confident_run.path, tmp_path / over_confident_run.name))
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["temperature"] = kept
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BadConfigError, match=r"manifest\.json: temperature"):
        run_settings(open_run(copy))
