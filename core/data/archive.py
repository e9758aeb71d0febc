"""Safe extraction of a dataset archive someone uploaded or downloaded.

An archive from the internet or a browser is hostile until proven otherwise: its member names
can climb out of the destination (``../``, ``/etc/...``, ``C:\\...``), its links can point
anywhere, its device and FIFO members can make a reader hang, and a few kilobytes can expand
to terabytes. So every member is checked before anything is written, only regular files and
folders are ever created (this code writes them itself; tarfile and zipfile never choose a
path), and bytes are counted while they are copied, because header sizes are whatever the
archive's author wrote. For tar files, tarfile's ``data`` filter judges each member as well,
as a second opinion.

Everything goes into a temporary folder beside the destination, which is renamed into place
only when the whole archive has passed; on any failure the temporary folder is removed, so a
refused archive leaves nothing behind.

Formats are recognised from the content, not the name: zip, and tar plain or compressed with
gzip (``.tar.gz``, ``.tgz``), bzip2 or xz.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core import settings
from core.errors import BadArchiveError, BadConfigError
from core.settings import (
    DEFAULT_MAX_ARCHIVE_BYTES,
    DEFAULT_MAX_ARCHIVE_MEMBERS,
    DEFAULT_MAX_ARCHIVE_RATIO,
)
from core.settings import MAX_ARCHIVE_BYTES_ENV as MAX_BYTES_ENV
from core.settings import MAX_ARCHIVE_MEMBERS_ENV as MAX_MEMBERS_ENV
from core.settings import MAX_ARCHIVE_RATIO_ENV as MAX_RATIO_ENV

#: Below this many expanded bytes the ratio is not judged: a small archive of text or blank
#: images compresses far beyond 200:1 without being able to hurt anyone.
DEFAULT_RATIO_FLOOR = 16 * 1024**2

CHUNK = 1024 * 1024
ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz",
                                     ".tar", ".zip")
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_DECOMPRESSORS: tuple[tuple[bytes, Callable[[BinaryIO], BinaryIO]], ...] = (
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    (b"BZh", lambda raw: bz2.BZ2File(raw, mode="rb")),
    (b"\xfd7zXZ\x00", lambda raw: lzma.LZMAFile(raw, mode="rb")),  # noqa: SIM115
)
# What a damaged archive raises from inside zipfile, tarfile and the decompressors.
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError,
            OSError, NotImplementedError, RuntimeError, ValueError, struct.error)

Source = str | Path | bytes | BinaryIO


@dataclass(frozen=True)
class Limits:
    """What an archive may expand to. ``from_env`` reads the ``MAMMO_MAX_ARCHIVE_*``
    variables so that an operator can raise them without a code change."""

    max_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES
    max_ratio: float = DEFAULT_MAX_ARCHIVE_RATIO
    max_members: int = DEFAULT_MAX_ARCHIVE_MEMBERS
    ratio_floor: int = DEFAULT_RATIO_FLOOR

    @classmethod
    def from_env(cls) -> Limits:
        return cls(max_bytes=settings.max_archive_bytes(),
                   max_ratio=settings.max_archive_ratio(),
                   max_members=settings.max_archive_members())


@dataclass(frozen=True)
class Extracted:
    """Where an archive went and how much it held."""

    root: Path
    files: int
    bytes: int


def folder_name(archive_name: str) -> str:
    """A folder name made from an uploaded file's name: the archive suffix dropped and
    anything but letters, digits, ``.``, ``_`` and ``-`` replaced, so that a name like
    ``../../x.zip`` can never become a path."""
    base = PurePosixPath(archive_name.replace("\\", "/")).name
    for suffix in ARCHIVE_SUFFIXES:
        if base.lower().endswith(suffix):
            base = base[:-len(suffix)]
            break
    cleaned = _UNSAFE_NAME_CHARACTERS.sub("_", base).strip("._-")[:64]
    return cleaned or "archive"


def member_parts(name: str) -> tuple[str, ...]:
    """The path components of a member name, or ``ValueError`` saying why it is unsafe.

    Backslashes count as separators (Windows zip tools write them); empty and ``.``
    components are dropped, so ``./a//b`` is ``a/b`` and ``./`` is nothing at all.
    """
    if "\x00" in name:
        raise ValueError("its name holds a NUL character")
    slashed = name.replace("\\", "/")
    if slashed.startswith("/"):
        raise ValueError("it has an absolute path")
    if _DRIVE.match(slashed):
        raise ValueError("its path starts with a drive letter")
    parts = tuple(part for part in slashed.split("/") if part not in ("", "."))
    if ".." in parts:
        raise ValueError("its path climbs out of the folder (..)")
    return parts


def extract_archive(source: Source, dest: str | Path, name: str | None = None,
                    limits: Limits | None = None, replace: bool = False) -> Extracted:
    """Extract a zip or tar archive into the folder ``dest`` (which must not exist unless
    ``replace``), or raise ``BadArchiveError`` naming the archive and its fault.

    ``source``: a path, the archive's bytes, or a seekable binary file (an upload).
    ``name`` labels messages (default: the path, or ``<archive>``).
    """
    limits = limits or Limits.from_env()
    dest = Path(dest)
    label = name or (str(source) if isinstance(source, (str, Path)) else "<archive>")
    if dest.exists() and not replace:
        raise BadConfigError(f"{dest}: already exists; choose another folder")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-", dir=dest.parent))
    except OSError as error:
        raise BadConfigError(f"{dest.parent}: cannot create a folder there "
                             f"({error.strerror})") from None
    try:
        with _opened(source, label) as (stream, size):
            job = _Extraction(label, staging, limits, size)
            job.run(stream)
        _move_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Extracted(dest, job.files, job.written)


@contextmanager
def _opened(source: Source, label: str) -> Iterator[tuple[BinaryIO, int]]:
    """The source as a seekable binary stream, and its size in bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        stream: BinaryIO = io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path)):
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed in the finally below
        except OSError as error:
            raise BadArchiveError(label, f"cannot be read ({error.strerror})") from None
    elif hasattr(source, "read") and hasattr(source, "seek"):
        stream = source
    else:
        raise TypeError(f"archive source must be a path, bytes or a seekable file, not "
                        f"{type(source).__name__}")
    try:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        if size == 0:
            raise BadArchiveError(label, "the archive is empty (0 bytes)")
        yield stream, size
    finally:
        if isinstance(source, (str, Path)):
            stream.close()


def _move_into_place(staging: Path, dest: Path) -> None:
    """Rename the finished folder onto ``dest``; an older ``dest`` is swapped out first and
    deleted only once the new one is in place."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / dest.name)
    try:
        os.rename(staging, dest)
    except OSError as error:
        if old is not None:
            os.replace(old / dest.name, dest)
            shutil.rmtree(old, ignore_errors=True)
        raise BadConfigError(f"{dest}: cannot move the extracted files there "
                             f"({error.strerror})") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _Counted(io.RawIOBase):
    """A decompressed tar stream whose every byte is counted, so that the limits hold for
    what tarfile reads itself (headers, extended headers), not only for file contents."""

    def __init__(self, inner: BinaryIO, check: Callable[[int], None]) -> None:
        self.inner, self.check = inner, check

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        self.check(len(data))
        buffer[:len(data)] = data
        return len(data)


class _Extraction:
    """One extraction: the checks, the counters and the writing of members."""

    def __init__(self, label: str, staging: Path, limits: Limits, size: int) -> None:
        self.label, self.staging, self.limits, self.size = label, staging, limits, size
        self.written = 0  # member bytes written
        self.streamed = 0  # decompressed tar stream bytes read
        self.members = 0
        self.files = 0

    def fail(self, fault: str) -> BadArchiveError:
        return BadArchiveError(self.label, fault)

    def run(self, stream: BinaryIO) -> None:
        head = stream.read(8)
        stream.seek(0)
        try:
            if head.startswith(_ZIP_MAGICS):
                self._zip(stream)
            else:
                self._tar(stream, head)
        except BadArchiveError:
            raise
        except _CORRUPT as error:
            raise self.fail(f"corrupt or truncated archive ({_describe(error)})") from None
        if self.files == 0:
            raise self.fail("the archive holds no files")

    # -- limits ------------------------------------------------------------------------------
    def _count_member(self, count: int = 1) -> None:
        self.members += count
        if self.members > self.limits.max_members:
            raise self.fail(f"more than {self.limits.max_members:,} members (set "
                            f"{MAX_MEMBERS_ENV} to allow more)")

    def _check_expansion(self, total: int, what: str) -> None:
        if total > self.limits.max_bytes:
            raise self.fail(f"{what} more than {self.limits.max_bytes:,} bytes (set "
                            f"{MAX_BYTES_ENV} to allow more)")
        if total > max(self.limits.ratio_floor, self.limits.max_ratio * self.size):
            raise self.fail(f"{what} more than {self.limits.max_ratio:g} times the archive's "
                            f"{self.size:,} bytes: refused as a likely zip bomb (set "
                            f"{MAX_RATIO_ENV} to allow more)")

    def _on_stream(self, count: int) -> None:
        self.streamed += count
        self._check_expansion(self.streamed, "the tar stream expands to")

    # -- writing -----------------------------------------------------------------------------
    def _target(self, name: str) -> Path | None:
        try:
            parts = member_parts(name)
        except ValueError as fault:
            raise self.fail(f"member {name!r} refused: {fault}") from None
        if not parts:
            return None
        target = self.staging.joinpath(*parts)
        if os.path.commonpath([self.staging, target]) != str(self.staging):
            raise self.fail(f"member {name!r} refused: it would land outside the folder")
        return target

    def _make_folder(self, name: str, target: Path) -> None:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise self.fail(f"member {name!r} clashes with a file of the same path") from None
        except OSError as error:
            raise self.fail(f"cannot create folder {name!r} ({error.strerror})") from None

    def _write_file(self, name: str, target: Path, source: BinaryIO,
                    compressed: int | None = None) -> None:
        self._make_folder(str(PurePosixPath(name).parent), target.parent)
        try:
            out = open(target, "xb")  # noqa: SIM115 - closed below; "x": never overwrite
        except FileExistsError:
            raise self.fail(f"member {name!r} appears twice") from None
        except (IsADirectoryError, NotADirectoryError):
            raise self.fail(f"member {name!r} clashes with a folder of the same path") from None
        except OSError as error:
            raise self.fail(f"cannot write member {name!r} ({error.strerror})") from None
        member_bytes = 0
        with out:
            while chunk := source.read(CHUNK):
                member_bytes += len(chunk)
                self.written += len(chunk)
                self._check_expansion(self.written, "its files expand to")
                if (compressed is not None and member_bytes > self.limits.ratio_floor
                        and member_bytes > self.limits.max_ratio * max(compressed, 1)):
                    raise self.fail(f"member {name!r} expands more than "
                                    f"{self.limits.max_ratio:g} times its compressed size: "
                                    "refused as a likely zip bomb")
                try:
                    out.write(chunk)
                except OSError as error:
                    raise self.fail(f"cannot write member {name!r} "
                                    f"({error.strerror})") from None
        self.files += 1

    # -- zip ---------------------------------------------------------------------------------
    def _zip(self, stream: BinaryIO) -> None:
        with zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
            self._count_member(len(infos))  # the central directory lists them all up front
            # zipfile never yields more than a member's stated size, so the stated total
            # bounds what can be written and refuses a bomb before anything is inflated;
            # the bytes are still counted while copying, in case that ever changes.
            self._check_expansion(sum(info.file_size for info in infos),
                                  "its headers say it expands to")
            for info in infos:
                self._check_raw_zip_name(info)
                kind = _zip_kind(info)
                if kind is not None:
                    raise self.fail(f"member {info.filename!r} refused: it is a {kind}")
                if info.flag_bits & 0x1:
                    raise self.fail(f"member {info.filename!r} is encrypted")
                target = self._target(info.filename)
                if target is None:
                    continue
                if info.is_dir():
                    self._make_folder(info.filename, target)
                    continue
                with archive.open(info) as member:
                    self._write_file(info.filename, target, member, info.compress_size)

    def _check_raw_zip_name(self, info: zipfile.ZipInfo) -> None:
        """zipfile cuts a member's name at its first NUL (``NORM/o\\0../x`` reads as
        ``NORM/o``), so the name it hands on would hide what the archive says; the name as
        stored (``orig_filename``) is what is judged."""
        if "\x00" in info.orig_filename:
            raise self.fail(f"member {info.orig_filename!r} refused: its name holds a NUL "
                            "character")

    # -- tar ---------------------------------------------------------------------------------
    def _tar(self, stream: BinaryIO, head: bytes) -> None:
        inner: BinaryIO = stream
        for magic, opener in _DECOMPRESSORS:
            if head.startswith(magic):
                inner = opener(stream)
                break
        counted = io.BufferedReader(_Counted(inner, self._on_stream), CHUNK)
        try:
            with tarfile.open(fileobj=counted, mode="r|") as archive:
                self._tar_members(archive)
        except tarfile.ReadError:
            if self.members == 0:
                raise self.fail("not a zip or tar archive (unrecognised content)") from None
            raise

    def _tar_members(self, archive: tarfile.TarFile) -> None:
        data_filter = getattr(tarfile, "data_filter", None)
        for member in archive:
            self._count_member()
            kind = _tar_kind(member)
            if kind is not None:
                raise self.fail(f"member {member.name!r} refused: it is a {kind}")
            target = self._target(member.name)
            if data_filter is not None:
                try:
                    data_filter(member, str(self.staging))
                except tarfile.FilterError as error:
                    raise self.fail(f"member {member.name!r} refused: {error}") from None
            if target is None:
                continue
            if member.isdir():
                self._make_folder(member.name, target)
                continue
            self._check_expansion(self.written + member.size, "its files expand to")
            reader = archive.extractfile(member)
            if reader is None:
                raise self.fail(f"member {member.name!r} has no readable content")
            with reader:
                self._write_file(member.name, target, reader)


def _zip_kind(info: zipfile.ZipInfo) -> str | None:
    """What a zip member is when it is not a plain file or folder (Unix mode bits)."""
    mode = info.external_attr >> 16
    return _UNSAFE_MODES.get(stat.S_IFMT(mode)) if mode else None


def _tar_kind(member: tarfile.TarInfo) -> str | None:
    if member.isreg() or member.isdir():
        return None
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "FIFO"
    return "special member of an unsupported type"


_UNSAFE_MODES = {stat.S_IFLNK: "symbolic link", stat.S_IFCHR: "device file",
                 stat.S_IFBLK: "device file", stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket"}


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
