"""Writes that never leave half a file behind.

Run manifests, checkpoints, cached features, overlays and reports are all read by someone
else (the dashboard, a resumed run, another process filling the same cache) possibly while
they are being written, and a crash or a full disk may stop any write midway. Every such
file is therefore written under a temporary name beside its target and renamed onto it,
which the file system does in one step.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    The temporary file keeps ``target``'s suffixes, because writers choose the format from
    them (Keras: ``.keras``, ``.weights.h5``; NumPy: ``.npy``).
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix="".join(target.suffixes),
                               dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(target: Path, document: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=str))
