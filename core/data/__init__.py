"""Dataset loaders. Each module has ``load(root, **options) -> Dataset``; pick one by name.

Loaders are imported on demand so that reading one kind of dataset never pays for another's
imports (pydicom, pandas); their options are declared in ``core.data.options`` for the same
reason, and ``LOADERS`` pairs each name with its module and options.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.options import (
    CBIS_OPTIONS,
    FOLDER_OPTIONS,
    MIAS_LESION_OPTIONS,
    RSNA_OPTIONS,
    DatasetOption,
    resolve_options,
)
from core.data.records import Dataset
from core.errors import BadDatasetError


@dataclass(frozen=True)
class Loader:
    """A registered dataset kind: the module whose ``load`` reads it, its options, and
    ``title``, what a person calls such films (the app says what a model was trained on).

    ``polarity_unknown``: its files may hold films stored inverted that nothing in them
    marks (exports that dropped DICOM's MONOCHROME1), so ``data summary`` reads every film
    to count them unless told not to. Elsewhere that reading is asked for, since a loader
    never decodes films and a full-size collection takes long to read.
    """

    module: str
    title: str
    options: tuple[DatasetOption, ...] = ()
    polarity_unknown: bool = False


#: Dataset names accepted by the CLI and the app, and how each is loaded.
LOADERS: dict[str, Loader] = {
    "mias": Loader("core.data.mias", "mini-MIAS scanned films (7 classes)"),
    "mias-lesions": Loader("core.data.mias_lesions", "mini-MIAS lesion crops (benign vs "
                           "malignant)", MIAS_LESION_OPTIONS),
    "cbis": Loader("core.data.cbis", "CBIS-DDSM scanned films (benign vs malignant)",
                   CBIS_OPTIONS),
    "folder": Loader("core.data.folder", "films in class folders", FOLDER_OPTIONS),
    "rsna": Loader("core.data.rsna", "RSNA digital screening mammograms (cancer vs no "
                   "cancer)", RSNA_OPTIONS, polarity_unknown=True),
}


def loader(name: str) -> Loader:
    if name not in LOADERS:
        raise BadDatasetError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    return LOADERS[name]


def dataset_options(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options to record for dataset ``name``: those ``given`` and, at their defaults, the
    ones that say which films it is (``DatasetOption.recorded``). Checked like
    ``load_dataset`` checks them, so a mistake fails before anything is read."""
    declared = loader(name).options
    values = resolve_options(name, declared, given)
    return {option.name: values[option.name] for option in declared
            if option.recorded or option.name in given}


def load_dataset(name: str, root: str | Path, **options: Any) -> Dataset:
    """Load a dataset by name (a key of ``LOADERS``) from a root folder; ``options`` are
    checked against the loader's declared ones before its module is imported."""
    chosen = loader(name)
    values = resolve_options(name, chosen.options, options)
    root = Path(root)
    if not root.is_dir():
        raise BadDatasetError(f"{root}: not a folder")
    return importlib.import_module(chosen.module).load(root, **values)
