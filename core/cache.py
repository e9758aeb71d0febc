"""Where derived data is kept between runs (encoder features, lesion crops): one root,
``$MAMMO_CACHE`` or ``~/.cache/mammo``, read at call time so that tests can redirect it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("MAMMO_CACHE", Path.home() / ".cache" / "mammo"))
