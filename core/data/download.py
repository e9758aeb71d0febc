"""Fetch the official mini-MIAS archive and unpack it safely, or say plainly what to do instead.

The app offers a one-click download, but many machines that run it are offline or behind a
firewall, so every network failure (no route, DNS, refused, timeout, HTTP error) becomes one
``DownloadError`` line that tells the user where to put the archive themselves. The file is
written under a temporary name beside its target and renamed only when complete, so an
interrupted download never passes for a finished one; the extraction is ``core.data.archive``'s.

The peipa archive ships its annotations as a ``README`` (the original MIAS README, whose rows
are exactly what ``Info.txt`` holds in other copies); ``adopt_readme`` puts an ``Info.txt``
beside it so that the MIAS loader finds it.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlparse

from core.data.archive import Limits, extract_archive
from core.data.mias import INFO_NAME, parse_info
from core.errors import BadAnnotationError, BadArchiveError, BadConfigError, MammoError
from core.settings import mias_url

ARCHIVE_NAME = "all-mias.tar.gz"
#: Seconds to wait for the connection and for each read.
DEFAULT_TIMEOUT = 30.0
CHUNK = 256 * 1024
#: Where the user can hand over an archive they fetched themselves (named in the error).
MANUAL_ROUTE = (f"download {ARCHIVE_NAME} yourself and give it to the Data page "
                "(source 'MIAS archive (.tar.gz/.zip)'), or extract it and enter its folder "
                "under 'MIAS folder'")
README_NAMES = ("readme", "readme.txt")

Progress = Callable[[int, int | None], None]


class DownloadError(MammoError):
    """The archive could not be fetched; the message says how to continue without it."""


def download_mias(dest: str | Path, url: str | None = None, progress: Progress | None = None,
                  timeout: float = DEFAULT_TIMEOUT, replace: bool = False) -> Path:
    """Download the MIAS archive beside ``dest``, extract it into ``dest`` and return ``dest``.

    ``url`` defaults to ``mias_url()``. An archive already downloaded there is reused; one
    that fails to extract is deleted so that the next attempt fetches it again.
    """
    url = url or mias_url()
    dest = Path(dest)
    archive = dest.parent / _file_name(url)
    if not archive.is_file():
        download(url, archive, progress=progress, timeout=timeout)
    try:
        extract_archive(archive, dest, name=str(archive), replace=replace)
    except BadArchiveError:
        archive.unlink(missing_ok=True)
        raise
    adopt_readme(dest)
    return dest


def download(url: str, target: str | Path, progress: Progress | None = None,
             timeout: float = DEFAULT_TIMEOUT, max_bytes: int | None = None) -> Path:
    """Fetch ``url`` into ``target`` through a temporary file beside it.

    ``progress(done, total)`` is called as bytes arrive (``total`` is ``None`` when the
    server does not say). ``max_bytes`` defaults to the archive size limit.
    """
    scheme = urlparse(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise BadConfigError(f"{url}: only http and https downloads are supported")
    limit = max_bytes or Limits.from_env().max_bytes
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=f".{target.name}.partial-", dir=target.parent)
    except OSError as error:
        raise BadConfigError(f"{target.parent}: cannot write there ({error.strerror})") from None
    try:
        with os.fdopen(handle, "wb") as out:
            _fetch(url, out, progress, timeout, limit)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def _fetch(url: str, out: BinaryIO, progress: Progress | None, timeout: float,
           limit: int) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "mammo"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > limit:
                raise DownloadError(f"{url}: the server offers {total:,} bytes, more than the "
                                    f"limit of {limit:,}")
            done = 0
            if progress:
                progress(done, total)
            while chunk := response.read(CHUNK):
                done += len(chunk)
                if done > limit:
                    raise DownloadError(f"{url}: more than {limit:,} bytes; download stopped")
                _write(out, chunk, url)
                if progress:
                    progress(done, total)
            if total is not None and done < total:
                raise http.client.IncompleteRead(b"", total - done)
    except DownloadError:
        raise
    except urllib.error.HTTPError as error:
        raise _offline(url, f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _offline(url, _reason(error.reason)) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as error:
        raise _offline(url, _reason(error)) from None


def _write(out: BinaryIO, chunk: bytes, url: str) -> None:
    try:
        out.write(chunk)
    except OSError as error:
        # Raised as a DownloadError so that _fetch does not mistake a full disk for the network.
        raise DownloadError(f"{url}: cannot save the download ({error.strerror})") from None


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "the connection timed out"
    if isinstance(reason, http.client.IncompleteRead):
        return f"the connection closed {reason.expected:,} bytes early"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _offline(url: str, reason: str) -> DownloadError:
    return DownloadError(f"could not download {url} ({reason}); {MANUAL_ROUTE}")


def _file_name(url: str) -> str:
    name = PurePosixPath(urlparse(url).path).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return cleaned or ARCHIVE_NAME


def adopt_readme(root: str | Path) -> Path | None:
    """Give a folder without an ``Info.txt`` one copied from a README that holds MIAS rows.

    Returns the new file, or ``None`` when there is already an Info.txt or no such README.
    Only the shallowest README with usable rows is used, as the loader would choose.
    """
    root = Path(root)
    infos, readmes = [], []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if name.lower() == INFO_NAME:
                infos.append(Path(folder, name))
            elif name.lower() in README_NAMES:
                readmes.append(Path(folder, name))
    if infos:
        return None
    for readme in sorted(readmes, key=lambda p: (len(p.relative_to(root).parts), str(p))):
        try:
            parse_info(readme.read_text(encoding="utf-8", errors="replace"), str(readme))
        except (BadAnnotationError, OSError):
            continue
        info = readme.with_name("Info.txt")
        shutil.copyfile(readme, info)
        return info
    return None
