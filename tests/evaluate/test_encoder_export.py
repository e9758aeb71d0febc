"""A run's encoder written to a file loads into a fresh backbone with the same weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.errors import BadConfigError
from core.evaluate.encoder_export import export_encoder, find_encoder
from core.evaluate.evaluate import load_model
from core.models.backbones import BACKBONES, build_backbone, feature_model_name
from core.runs.config import TrainConfig
from core.runs.folder import Run
from core.train.fit import train
from factories import TINY

#: The tiny run's backbone cut at its registry layer (``TINY`` names no feature layer).
ENCODER_NAME = feature_model_name("mobilenet_025", BACKBONES["mobilenet_025"].feature_layer)


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A tiny run whose encoder's top layers were fine-tuned, so they differ from any
    fresh initialisation."""
    config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(
        **{**TINY, "fine_tune_layers": 3, "fine_tune_epochs": 1})
    return train(config, out_root=tmp_path_factory.mktemp("runs"))


def test_the_file_loads_into_a_fresh_backbone_of_another_size_with_the_runs_weights(
        trained: Run, tmp_path: Path) -> None:
    facts = export_encoder(trained, tmp_path / "encoder.weights.h5")
    assert facts["backbone"] == "mobilenet_025" and facts["trained_on"] == "mias"
    assert facts["started_from"] == "none" and facts["synthetic"] is True
    assert facts["use"] == f"--backbone mobilenet_025 --weights {tmp_path / 'encoder.weights.h5'}"
    saved = find_encoder(load_model(trained), ENCODER_NAME).get_weights()
    fresh = build_backbone("mobilenet_025", 96, weights=None)
    assert any(not np.array_equal(a, b) for a, b in zip(fresh.model.get_weights(), saved))
    loaded = build_backbone("mobilenet_025", 96, weights=tmp_path / "encoder.weights.h5")
    assert loaded.weights == str(tmp_path / "encoder.weights.h5")
    assert len(loaded.model.get_weights()) == len(saved)
    for ours, theirs in zip(loaded.model.get_weights(), saved):
        np.testing.assert_array_equal(ours, theirs)


def test_the_file_does_not_load_into_another_backbone(trained: Run, tmp_path: Path) -> None:
    export_encoder(trained, tmp_path / "encoder.weights.h5")
    with pytest.raises(BadConfigError, match="does not fit mobilenet_v2"):
        build_backbone("mobilenet_v2", 96, weights=tmp_path / "encoder.weights.h5")


def test_a_file_name_keras_cannot_load_by_structure_is_refused(trained: Run,
                                                               tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match=r"must end in \.weights\.h5"):
        export_encoder(trained, tmp_path / "encoder.h5")
    assert not list(tmp_path.iterdir())


def test_a_model_without_that_encoder_names_what_it_holds(trained: Run) -> None:
    with pytest.raises(BadConfigError, match="no encoder named 'vgg16_block5_conv3'.*"
                                             + ENCODER_NAME):
        find_encoder(load_model(trained), feature_model_name("vgg16", "block5_conv3"))


def test_the_command_prints_one_document_and_a_missing_run_is_one_line(
        trained: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "from-cli.weights.h5"
    assert main(["encoder", str(trained.path), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(out) and out.is_file()
    assert main(["encoder", str(tmp_path / "nowhere"), "--out", str(out), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run folder" in err
