"""Dataset loaders. Each module has ``load(root, **options) -> Dataset``; pick one by name.

Loaders are imported on demand so that reading one kind of dataset never pays for another's
imports (pydicom, pandas).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from core.data.records import Dataset
from core.errors import BadDatasetError

#: Dataset names accepted by the CLI and the app, and the module that loads each.
LOADERS: dict[str, str] = {
    "mias": "core.data.mias",
    "mias-lesions": "core.data.mias_lesions",
    "cbis": "core.data.cbis",
    "folder": "core.data.folder",
}


def load_dataset(name: str, root: str | Path, **options: Any) -> Dataset:
    """Load a dataset by name (``mias``, ``mias-lesions``, ``cbis`` or ``folder``) from a
    root folder."""
    if name not in LOADERS:
        raise BadDatasetError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    root = Path(root)
    if not root.is_dir():
        raise BadDatasetError(f"{root}: not a folder")
    return importlib.import_module(LOADERS[name]).load(root, **options)
