"""What a training config means when it comes from an older run, a preset or the defaults."""

from __future__ import annotations

import pytest

from core.errors import BadConfigError
from core.runs.config import TrainConfig
from core.runs.presets import PRESETS
from factories import TINY


def test_a_run_saved_before_patch_pretraining_reads_as_without_it() -> None:
    """Default patch pretraining must not be read into a run that never had it: its resume
    would pretrain, and a small-input run would not even load (patches larger than films)."""
    saved = TrainConfig().with_overrides(**TINY).to_dict()
    for name in ("patch_epochs", "patch_size", "patch_layers", "patches_per_lesion",
                 "patch_labels"):
        del saved[name]
    assert TrainConfig.from_manifest(saved).patch_epochs == 0
    saved.update(patch_epochs=10, patch_size=32)  # from before patch labels could be chosen
    assert TrainConfig.from_manifest(saved).patch_labels == "class"


def test_a_saved_run_keeps_its_own_settings() -> None:
    saved = TrainConfig().to_dict()
    assert TrainConfig.from_manifest(saved) == TrainConfig()


@pytest.mark.parametrize("name", ["paper1", "paper2", "demo"])
def test_papers_and_demo_keep_the_encoder_fixed(name: str) -> None:
    config = PRESETS[name].config(dataset="mias", root="films")
    assert (config.patch_epochs, config.fine_tune_layers) == (0, 0)


def test_films_smaller_than_the_default_patches_say_how_to_train() -> None:
    with pytest.raises(BadConfigError, match="larger than the films .64 px.: use a larger "
                                             "input, smaller patches or patch_epochs 0"):
        TrainConfig(image_size=64)
    assert TrainConfig(image_size=64, patch_epochs=0).patch_epochs == 0


def test_the_input_size_has_one_name() -> None:
    """``image_size`` is the size; the preprocessing recipe takes it from there and keeps no
    size of its own, so the two cannot disagree."""
    config = TrainConfig(image_size=256, patch_epochs=0)
    assert config.prep.size == 256
    assert "size" not in config.prep_steps.to_dict()
    assert config.with_overrides(image_size=128).prep.size == 128
    assert config.with_overrides(prep={"clahe": False}).prep.size == 256
    saved = config.to_dict()
    assert saved["prep"]["size"] == 256  # repeated in files, for readers of the whole recipe
    assert TrainConfig.from_dict(saved) == config


def test_a_prep_size_that_contradicts_image_size_is_refused() -> None:
    with pytest.raises(BadConfigError, match="prep size 256 differs from image_size 512"):
        TrainConfig.from_dict({"prep": {"size": 256}})
    with pytest.raises(BadConfigError, match="unknown setting.s. prep_steps"):
        TrainConfig.from_dict({"prep_steps": {}})  # files name the steps prep


def test_an_old_manifest_loads_with_the_size_its_model_takes() -> None:
    saved = TrainConfig(image_size=256, patch_epochs=0).to_dict()
    saved["prep"] = {**saved["prep"], "clahe": False, "size": 999}
    loaded = TrainConfig.from_manifest(saved)
    assert (loaded.image_size, loaded.prep.size, loaded.prep.clahe) == (256, 256, False)
