"""Loader options, declared once in the registry: ``load_dataset``, the loaders and the CLI
all read the same declarations."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from core.data import LOADERS, dataset_options, load_dataset
from core.data.options import CBIS_OPTIONS, resolve_options
from core.errors import BadConfigError, BadDatasetError


@pytest.mark.parametrize("name", list(LOADERS))
def test_every_registered_loader_has_a_load_taking_its_options(name: str) -> None:
    load = importlib.import_module(LOADERS[name].module).load
    parameters = inspect.signature(load).parameters
    assert next(iter(parameters)) == "root"
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for option in LOADERS[name].options:
        assert option.label and option.help
        assert not option.choices or option.default in option.choices


def test_options_are_completed_from_their_declared_defaults() -> None:
    assert resolve_options("cbis", CBIS_OPTIONS, {"mode": "crop"}) == {
        "abnormality": "calc", "mode": "crop", "csv_dir": None, "with_masks": False}


@pytest.mark.parametrize("name, given, fragment", [
    ("cbis", {"colour": "red"}, "unknown cbis option.s.: colour .it takes abnormality"),
    ("cbis", {"abnormality": "cyst"}, "abnormality must be one of calc, mass, both"),
    ("mias", {"mode": "crop"}, "the mias loader takes no options, got mode"),
    ("mias-lesions", {"abnormality": "mass"}, "unknown mias-lesions option"),
])
def test_a_wrong_option_is_named_before_anything_is_read(name: str, given: dict,
                                                         fragment: str) -> None:
    with pytest.raises(BadConfigError, match=fragment):
        dataset_options(name, given)
    with pytest.raises(BadConfigError, match=fragment):  # the folder is not even looked at
        load_dataset(name, "/no/such/folder", **given)


def test_a_run_records_the_options_that_say_which_films_it_used() -> None:
    assert dataset_options("cbis", {}) == {"abnormality": "calc", "mode": "film"}
    assert dataset_options("cbis", {"with_masks": True}) == {
        "abnormality": "calc", "mode": "film", "with_masks": True}
    assert dataset_options("mias-lesions", {"side_factor": 2.0}) == {"side_factor": 2.0}
    assert dataset_options("mias", {}) == {}
    with pytest.raises(BadDatasetError, match="unknown dataset 'ddsm'"):
        dataset_options("ddsm", {})


def test_mias_lesion_crop_sides_reach_the_loader(mias_root: Path) -> None:
    wide = load_dataset("mias-lesions", mias_root, min_side=200, max_side=200)
    assert {record.extra["side_px"] for record in wide.records} == {200}
