"""The training settings' declarations: every knob is complete, and the config checks values
with what its knobs declare (the CLI and the Train page read the same declarations)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from core.errors import BadConfigError
from core.runs.config import MODELS, SETTINGS, TrainConfig
from core.runs.knobs import Range, Setting


def _outside(valid: Range) -> float:
    """A value just outside ``valid``."""
    if valid.low is not None:
        return valid.low if valid.low_open else valid.low - 1
    assert valid.high is not None
    return valid.high if valid.high_open else valid.high + 1


def test_every_field_people_set_is_a_knob() -> None:
    """What is not a knob is set by the program (cv's folds), by the loader's own options or
    by nested configs in a file; a new field must say which it is."""
    others = {"dataset_options", "folds", "fold", "prep_steps", "augment"}
    assert {f.name for f in fields(TrainConfig)} - others == set(SETTINGS)


@pytest.mark.parametrize("setting", SETTINGS.values(), ids=list(SETTINGS))
def test_each_knob_says_what_a_person_needs(setting: Setting) -> None:
    knob = setting.knob
    assert knob.label and knob.help
    assert all(model in MODELS for model in knob.models)
    assert setting.flag == "--" + setting.name.replace("_", "-")  # the flags people know
    setting.check(setting.default)  # the default is allowed
    if knob.span is not None:
        low, high = knob.span
        assert low <= high
        assert knob.valid is None or (knob.valid.holds(low) and knob.valid.holds(high))
        assert setting.default is None or low <= setting.default <= high
    if setting.kind in (int, float) and knob.form:
        assert knob.span is not None, "a number box needs its range"


@pytest.mark.parametrize("name", [n for n, s in SETTINGS.items() if s.knob.choices])
def test_a_value_outside_the_declared_choices_is_refused(name: str) -> None:
    with pytest.raises(BadConfigError, match=f"{name} must be one of"):
        TrainConfig(**{name: "banana"})


@pytest.mark.parametrize("name", [n for n, s in SETTINGS.items() if s.knob.valid])
def test_a_value_outside_the_declared_range_is_refused(name: str) -> None:
    valid = SETTINGS[name].knob.valid
    assert valid is not None
    with pytest.raises(BadConfigError, match=f"{name} must "):
        TrainConfig(**{name: SETTINGS[name].kind(_outside(valid))})


@pytest.mark.parametrize("valid, inside, outside, words", [
    (Range(0, low_open=True), [1e-9, 5], [0, -1], "be positive"),
    (Range(0), [0, 3], [-1e-9], "not be negative"),
    (Range(0, 1, high_open=True), [0, 0.99], [1, -0.1], "be in [0, 1)"),
    (Range(0, 1, low_open=True, high_open=True), [0.5], [0, 1], "be in (0, 1)"),
])
def test_ranges_hold_what_they_say(valid: Range, inside: list[Any], outside: list[Any],
                                   words: str) -> None:
    assert all(valid.holds(value) for value in inside)
    assert not any(valid.holds(value) for value in outside)
    assert valid.describe() == words


def test_model_specific_knobs_are_the_models_own() -> None:
    attention_only = {n for n, s in SETTINGS.items() if s.knob.models == ("attention",)}
    transfer_only = {n for n, s in SETTINGS.items() if s.knob.models == ("transfer",)}
    assert {"cell", "steps", "units", "attention_units", "attention_supervision",
            "attention_regularization", "both_breasts"} == attention_only
    assert {"weight_lr_factor", "bias_lr_factor", "l2_factor"} == transfer_only
    assert SETTINGS["epochs"].applies_to("attention") and SETTINGS["epochs"].applies_to(
        "transfer")
    assert not SETTINGS["cell"].applies_to("transfer")


def test_a_setting_that_needs_another_applies_only_with_it() -> None:
    """What the Train form shows follows the other choices: momentum only with SGD, the
    patch settings only with patch epochs, the target only when augmenting."""
    defaults = TrainConfig().to_dict()
    assert not SETTINGS["momentum"].applies(defaults)  # Adam
    assert SETTINGS["momentum"].applies({**defaults, "optimizer": "sgd"})
    assert SETTINGS["patch_layers"].applies(defaults)
    assert not SETTINGS["patch_layers"].applies({**defaults, "patch_epochs": 0})
    assert not SETTINGS["fine_tune_epochs"].applies({**defaults, "fine_tune_layers": 0})
    assert not SETTINGS["augment_target"].applies(defaults)  # class weights
    assert SETTINGS["augment_target"].applies({**defaults, "balance": "augment"})
    # the model kind still comes first
    assert not SETTINGS["steps"].applies({**defaults, "model": "transfer"})
    for setting in SETTINGS.values():  # every need names a setting the form asks for
        needs = setting.knob.needs
        assert needs is None or (needs.setting in SETTINGS and SETTINGS[needs.setting].knob.form)
