"""Writes that never leave half a file behind.

Run manifests, checkpoints, cached features, overlays and reports are all read by someone
else (the dashboard, a resumed run, another process filling the same cache) possibly while
they are being written, and a crash or a full disk may stop any write midway. Every such
file is therefore written under a temporary name beside its target and renamed onto it,
which the file system does in one step.

A write that fails (disk full, no permission, read-only file system) raises ``WriteError``
naming the target: the machine's state, not a bug, so the CLI and the pages show it as one
line. The temporary file goes with it, and the target keeps its previous content.

The same files are read back by ``read_json_object``: the one guarded read of a JSON
document that may have been damaged or come from someone else (a copied run's manifest, a
user's ``--config``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from core.errors import BadConfigError


class WriteError(BadConfigError):
    """A file that could not be written; ``errno`` says why (``errno.ENOSPC``, ...)."""

    def __init__(self, path: str | Path, error: OSError) -> None:
        self.path = str(path)
        self.errno = error.errno
        super().__init__(f"{self.path}: cannot write ({error.strerror or error})")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    The temporary file keeps ``target``'s suffixes, because writers choose the format from
    them (Keras: ``.keras``, ``.weights.h5``; NumPy: ``.npy``). Its name starts with a dot,
    so listings that skip hidden files never show a half-written file, even one a killed
    process left behind.
    """
    target = Path(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix="".join(target.suffixes),
                                   dir=target.parent)
    except OSError as error:
        raise WriteError(target, error) from error
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except OSError as error:  # from the writer or the rename: the same fault for the caller
        raise WriteError(target, error) from error
    finally:
        with suppress(OSError):  # a cleanup failure must not hide the error that matters
            os.unlink(tmp)


def write_json_atomic(target: Path, document: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=str))


def make_folder(folder: Path, what: str) -> Path:
    """``folder`` and its parents, created if missing; a folder that cannot exist (no
    permission, a file in the way, a full disk) is one ``BadConfigError`` naming it and
    ``what`` it was for, so every caller fails alike and up front."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadConfigError(f"{folder}: cannot create the {what} ({error.strerror})") from None
    return folder


def safe_stem(name: str) -> str:
    """``name`` made safe as the start of a file name on every system: letters, digits and
    ``._-`` kept, anything else (separators, spaces, quotes) an underscore; never empty.
    Output files are named after the films they draw, and a film's name is the user's."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "film"


def claim_name(folder: Path, stem: str, suffix: str) -> Path:
    """A fresh path ``folder/stem[-N]suffix``, claimed by creating it exclusively, so two
    writers into one folder (concurrent predicts, two uploads called ``film.png``) never
    pick the same name; the caller then replaces the empty file atomically."""
    for attempt in range(10_000):
        path = folder / f"{stem}{'' if attempt == 0 else f'-{attempt}'}{suffix}"
        try:
            with open(path, "x"):
                return path
        except FileExistsError:
            continue
        except OSError as error:
            raise WriteError(path, error) from None
    raise BadConfigError(f"{folder}: no free name for {stem}{suffix}")


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; any fault is one ``BadConfigError`` naming the file and
    ``what`` it should have been ("manifest", "JSON config").

    The file may be anything: missing, unreadable, bytes that are not UTF-8, JSON nested past
    Python's recursion limit, an integer too long to parse, or a list where an object
    belongs. Each of these would otherwise surface as a different exception, or a
    traceback, wherever the file is read.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadConfigError(f"{path}: no such file (expected a {what})") from None
    except OSError as error:
        raise BadConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    except RecursionError:
        raise BadConfigError(f"{path}: unreadable {what} (nested too deeply)") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise BadConfigError(f"{path}: unreadable {what} ({error})") from None
    if not isinstance(document, dict):
        raise BadConfigError(f"{path}: unreadable {what} (not a JSON object)")
    return document
