"""Every setting the product reads from its environment, and every root folder, in one place.

Why one module: a variable read in several places drifts (two defaults, two error messages),
and an operator needs one list of what can be changed without a code change. Values are read
at call time, never cached at import, so a test or a second app instance can redirect them
with ``monkeypatch.setenv``. A malformed value is a ``BadConfigError`` naming the variable.

The variables (``python -m core settings`` is not a thing; this table is the reference):

=========================== ============================================= ==================
variable                    what it sets                                  default
=========================== ============================================= ==================
MAMMO_MODELS                where runs are written and listed             ``models/``
MAMMO_DATA                  the app's uploads, downloads, synthetic films ``data/``
MAMMO_CACHE                 derived data: encoder features, lesion crops  ``~/.cache/mammo``
MAMMO_MAX_PIXELS            largest film decoded, in pixels               100,000,000
MAMMO_MAX_ARCHIVE_BYTES     most bytes an archive may expand to           4 GiB
MAMMO_MAX_ARCHIVE_RATIO     most expansion over the archive's own size    200
MAMMO_MAX_ARCHIVE_MEMBERS   most files and folders in an archive          20,000
MAMMO_MIAS_URL              where the MIAS archive is downloaded from     the MIAS site
MAMMO_DOWNLOAD_WEIGHTS      1: a missing ``keras.applications`` ImageNet  0 (never download)
                            file is downloaded by Keras (online only)
=========================== ============================================= ==================

The test suite reads three more of its own (``MAMMO_SHARED``, ``MAMMO_REQUIRE_SHARED``,
``MAMMO_SCREENSHOTS``, in ``tests/conftest.py``); the product never does.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import BadConfigError

#: The repository's root: ``core/`` lives in it, and so do the default ``models/`` and ``data/``.
REPO = Path(__file__).resolve().parents[1]

MODELS_ENV = "MAMMO_MODELS"
DATA_ENV = "MAMMO_DATA"
CACHE_ENV = "MAMMO_CACHE"
MAX_PIXELS_ENV = "MAMMO_MAX_PIXELS"
MAX_ARCHIVE_BYTES_ENV = "MAMMO_MAX_ARCHIVE_BYTES"
MAX_ARCHIVE_RATIO_ENV = "MAMMO_MAX_ARCHIVE_RATIO"
MAX_ARCHIVE_MEMBERS_ENV = "MAMMO_MAX_ARCHIVE_MEMBERS"
MIAS_URL_ENV = "MAMMO_MIAS_URL"
DOWNLOAD_WEIGHTS_ENV = "MAMMO_DOWNLOAD_WEIGHTS"

DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_ARCHIVE_BYTES = 4 * 1024**3
#: Real film archives stay far below this expansion over their own size.
DEFAULT_MAX_ARCHIVE_RATIO = 200
#: mini-MIAS has about 330 members.
DEFAULT_MAX_ARCHIVE_MEMBERS = 20_000
MIAS_URL = "http://peipa.essex.ac.uk/pix/mias/all-mias.tar.gz"


def models_root() -> Path:
    """Where runs go unless told otherwise: ``models/`` in the repository, or ``$MAMMO_MODELS``."""
    return Path(os.environ.get(MODELS_ENV) or REPO / "models")


def data_root() -> Path:
    """Where the app keeps uploads, downloads and synthetic films: ``data/`` in the repository,
    or ``$MAMMO_DATA``."""
    return Path(os.environ.get(DATA_ENV) or REPO / "data")


def cache_root() -> Path:
    """Where derived data is kept between runs (encoder features, lesion crops):
    ``$MAMMO_CACHE`` or ``~/.cache/mammo``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mammo")


def mias_url() -> str:
    """Where the MIAS archive is fetched from: ``$MAMMO_MIAS_URL`` (a mirror, or a test's local
    server), else the MIAS site."""
    return os.environ.get(MIAS_URL_ENV) or MIAS_URL


def download_weights() -> bool:
    """Whether ``weights="imagenet"`` may let Keras download a file missing from its cache:
    ``$MAMMO_DOWNLOAD_WEIGHTS`` is ``1``. Off by default, so that an offline machine (and
    every test) gets one clear line naming the file to place, never a network attempt."""
    raw = os.environ.get(DOWNLOAD_WEIGHTS_ENV, "").strip()
    if raw not in ("", "0", "1"):
        raise BadConfigError(f"{DOWNLOAD_WEIGHTS_ENV} must be 1 (download) or 0, got {raw!r}")
    return raw == "1"


def max_pixels() -> int:
    """The largest film decoded, in pixels: ``$MAMMO_MAX_PIXELS`` or 100 million."""
    return positive_int(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS)


def max_archive_bytes() -> int:
    return positive_int(MAX_ARCHIVE_BYTES_ENV, DEFAULT_MAX_ARCHIVE_BYTES)


def max_archive_ratio() -> int:
    return positive_int(MAX_ARCHIVE_RATIO_ENV, DEFAULT_MAX_ARCHIVE_RATIO)


def max_archive_members() -> int:
    return positive_int(MAX_ARCHIVE_MEMBERS_ENV, DEFAULT_MAX_ARCHIVE_MEMBERS)


def positive_int(name: str, default: int) -> int:
    """The variable ``name`` as a positive whole number, or ``default`` when it is unset."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise BadConfigError(f"{name} must be positive, got {value}")
    return value


#: Where the team's shared data and weights sit beside a checkout (``../shared``); only the
#: bench scripts' defaults use it, and every one of them takes a flag instead.
SHARED = REPO.parent / "shared"

#: Training streams its films when those of its training and validation parts would take
#: more than this in memory at the input size, as uint8 (``TrainConfig.streaming`` "auto",
#: ``core.train.feed``): 4,096 films at 512 px. Below it, films are held in memory. Here, not
#: in ``core.prep.stream``, because the settings' labels quote it and the CLI must start
#: without importing Keras.
STREAM_ABOVE_BYTES = 1 << 30

#: Evaluation reads and scores its films a part at a time, holding at most this much of them
#: at the input size as uint8 (``core.evaluate.evaluate.score_films``): 1,024 films at 256 px,
#: 64 at 1,024 px. What it keeps of every film is its scores and a heatmap on the encoder's
#: grid, so an archive of any size is scored in the memory of one part.
EVALUATE_HOLDS_BYTES = 64 << 20
