"""Safe extraction: every refused archive leaves nothing behind and writes nothing outside."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from core.data.archive import (
    MAX_BYTES_ENV,
    MAX_MEMBERS_ENV,
    Limits,
    extract_archive,
    folder_name,
    member_parts,
)
from core.errors import BadArchiveError, BadConfigError


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


def zip_bytes(members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def only_dest_left(parent: Path, expected: set[str]) -> None:
    """Nothing but ``expected`` in the destination's parent: no staging folder survives."""
    assert {p.name for p in parent.iterdir()} == expected


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A parent folder for destinations, inside a folder we watch for stray writes."""
    parent = tmp_path / "inside" / "uploads"
    parent.mkdir(parents=True)
    return parent


def refuse(source: bytes, parent: Path, fault: str, limits: Limits | None = None) -> str:
    with pytest.raises(BadArchiveError) as caught:
        extract_archive(source, parent / "dest", name="upload.tar.gz", limits=limits)
    message = str(caught.value)
    assert message.startswith("upload.tar.gz: ") and "\n" not in message
    assert fault in message
    only_dest_left(parent, set())
    return message


def no_stray_files(tmp_path: Path) -> None:
    stray = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert stray == []


# -- valid archives ---------------------------------------------------------------------------
def test_tar_gz_is_extracted_with_its_folders(sandbox: Path) -> None:
    folder = tarfile.TarInfo("all-mias")
    folder.type = tarfile.DIRTYPE
    data = tar_bytes([(folder, None), tar_file("all-mias/Info.txt", b"mdb001 G CIRC B 1 2 3\n"),
                      tar_file("./all-mias/mdb001.pgm", b"P5 1 1 255\n\x00")])
    result = extract_archive(data, sandbox / "mias", name="all-mias.tar.gz")
    assert result.root == sandbox / "mias" and result.files == 2
    assert result.bytes == len(b"mdb001 G CIRC B 1 2 3\n") + len(b"P5 1 1 255\n\x00")
    assert (sandbox / "mias/all-mias/Info.txt").read_bytes().startswith(b"mdb001")
    assert (sandbox / "mias/all-mias/mdb001.pgm").is_file()
    only_dest_left(sandbox, {"mias"})


@pytest.mark.parametrize("mode", ["w", "w:bz2", "w:xz"])
def test_plain_and_other_compressed_tars(sandbox: Path, mode: str) -> None:
    data = tar_bytes([tar_file("a.txt", b"a")], mode=mode)
    assert extract_archive(data, sandbox / "d").files == 1
    assert (sandbox / "d/a.txt").read_bytes() == b"a"


def test_zip_from_a_path_and_from_a_file_object(sandbox: Path, tmp_path: Path) -> None:
    data = zip_bytes([("films/", b""), ("films/Info.txt", b"x"), ("films\\mdb002.pgm", b"y")])
    path = tmp_path / "films.zip"
    path.write_bytes(data)
    assert extract_archive(path, sandbox / "one").files == 2
    assert (sandbox / "one/films/mdb002.pgm").read_bytes() == b"y"  # backslash = separator
    assert extract_archive(io.BytesIO(data), sandbox / "two").files == 2
    only_dest_left(sandbox, {"one", "two"})


def test_an_existing_destination_is_kept_unless_replacing(sandbox: Path) -> None:
    (sandbox / "d").mkdir()
    (sandbox / "d/old.txt").write_text("old")
    data = tar_bytes([tar_file("new.txt", b"new")])
    with pytest.raises(BadConfigError, match="already exists"):
        extract_archive(data, sandbox / "d")
    assert (sandbox / "d/old.txt").exists()
    extract_archive(data, sandbox / "d", replace=True)
    assert sorted(p.name for p in (sandbox / "d").iterdir()) == ["new.txt"]
    only_dest_left(sandbox, {"d"})


def test_a_refused_replacement_keeps_the_old_folder(sandbox: Path) -> None:
    (sandbox / "dest").mkdir()
    (sandbox / "dest/old.txt").write_text("old")
    with pytest.raises(BadArchiveError):
        extract_archive(tar_bytes([tar_file("../x", b"x")]), sandbox / "dest", replace=True)
    assert (sandbox / "dest/old.txt").read_text() == "old"
    only_dest_left(sandbox, {"dest"})


# -- unsafe names -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../evil.txt", "films/../../evil.txt", "..\\evil.txt"])
def test_traversal_is_refused(sandbox: Path, tmp_path: Path, name: str) -> None:
    refuse(tar_bytes([tar_file("ok.txt", b"fine"), tar_file(name, b"evil")]), sandbox, "(..)")
    refuse(zip_bytes([("ok.txt", b"fine"), (name, b"evil")]), sandbox, "(..)")
    no_stray_files(tmp_path)


@pytest.mark.parametrize("name, fault", [("/tmp/abs.txt", "absolute path"),
                                         ("C:/windows/x.txt", "drive letter"),
                                         ("C:\\windows\\x.txt", "drive letter"),
                                         ("\\\\server\\share\\x.txt", "absolute path")])
def test_absolute_paths_and_drive_letters_are_refused(sandbox: Path, tmp_path: Path, name: str,
                                                      fault: str) -> None:
    refuse(tar_bytes([tar_file(name, b"x")]), sandbox, fault)
    info = zipfile.ZipInfo("placeholder")
    info.filename = name  # ZipInfo would strip a leading slash; a hostile tool does not
    refuse(zip_bytes([(info, b"x")]), sandbox, fault)
    no_stray_files(tmp_path)


def test_a_zip_member_name_with_a_nul_is_refused(sandbox: Path, tmp_path: Path) -> None:
    """Python's zipfile cuts a name at its first NUL, so ``NORM/o\\0../x`` was extracted as
    ``NORM/o``: the archive said one thing and the disk got another. Refused, naming both."""
    info = zipfile.ZipInfo("placeholder")
    info.filename = "NORM/o\x00../../evil.pgm"  # as a hostile tool writes it
    message = refuse(zip_bytes([("NORM/ok.pgm", b"fine"), (info, b"evil")]), sandbox, "NUL")
    assert "NORM/o\\x00../../evil.pgm" in message
    no_stray_files(tmp_path)


def test_member_parts_drops_empty_and_dot_components() -> None:
    assert member_parts("./a//b/./c.txt") == ("a", "b", "c.txt")
    assert member_parts("./") == ()
    with pytest.raises(ValueError, match="NUL"):
        member_parts("a\x00b")


# -- unsafe member types ----------------------------------------------------------------------
@pytest.mark.parametrize("kind, link, fault", [
    (tarfile.SYMTYPE, "/etc/passwd", "symbolic link"),
    (tarfile.SYMTYPE, "inside.txt", "symbolic link"),
    (tarfile.LNKTYPE, "ok.txt", "hard link"),
    (tarfile.CHRTYPE, "", "device file"),
    (tarfile.BLKTYPE, "", "device file"),
    (tarfile.FIFOTYPE, "", "FIFO"),
])
def test_links_devices_and_fifos_in_a_tar_are_refused(sandbox: Path, tmp_path: Path,
                                                      kind: bytes, link: str,
                                                      fault: str) -> None:
    data = tar_bytes([tar_file("ok.txt", b"fine"), tar_special("special", kind, link)])
    refuse(data, sandbox, fault)
    no_stray_files(tmp_path)


@pytest.mark.parametrize("mode, fault", [(stat.S_IFLNK | 0o777, "symbolic link"),
                                         (stat.S_IFIFO | 0o644, "FIFO"),
                                         (stat.S_IFCHR | 0o644, "device file")])
def test_links_and_specials_in_a_zip_are_refused(sandbox: Path, mode: int, fault: str) -> None:
    info = zipfile.ZipInfo("link")
    info.create_system = 3  # Unix: the high 16 bits of external_attr are the file mode
    info.external_attr = mode << 16
    refuse(zip_bytes([("ok.txt", b"fine"), (info, b"/etc/passwd")]), sandbox, fault)


# -- sizes, ratios and counts -----------------------------------------------------------------
def test_a_zip_bomb_is_refused_by_its_ratio(sandbox: Path) -> None:
    data = zip_bytes([("zeros.bin", bytes(32 * 1024 * 1024))])  # ~1000:1, over the 16 MiB floor
    assert len(data) < 100_000
    refuse(data, sandbox, "likely zip bomb")


def test_a_tar_gz_bomb_is_refused_by_its_ratio(sandbox: Path) -> None:
    data = tar_bytes([tar_file("zeros.bin", bytes(4 * 1024 * 1024))])
    refuse(data, sandbox, "likely zip bomb", Limits(ratio_floor=1024 * 1024))


def test_small_archives_may_compress_well(sandbox: Path) -> None:
    """Below the floor a high ratio is harmless: 1 MiB of zeros is not a bomb."""
    assert extract_archive(zip_bytes([("zeros.bin", bytes(1024 * 1024))]), sandbox / "d").files


def test_total_size_limit_counts_the_bytes_not_the_headers(sandbox: Path) -> None:
    # Five 500-byte files are 2500 bytes of content, but the tar stream is over 6000 bytes
    # (headers, padding): the limit holds for what is actually decompressed.
    data = tar_bytes([tar_file(f"f{i}.txt", os.urandom(500)) for i in range(5)])
    refuse(data, sandbox, "more than 3,000 bytes", Limits(max_bytes=3000))


def test_size_limit_from_the_environment(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_BYTES_ENV, "1000")
    message = refuse(zip_bytes([("big.bin", os.urandom(5000))]), sandbox, "1,000 bytes")
    assert MAX_BYTES_ENV in message


def test_too_many_members(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = [tar_file(f"f{i}.txt", b"x") for i in range(6)]
    refuse(tar_bytes(members), sandbox, "more than 5 members", Limits(max_members=5))
    monkeypatch.setenv(MAX_MEMBERS_ENV, "5")
    refuse(zip_bytes([(f"f{i}.txt", b"x") for i in range(6)]), sandbox, "more than 5 members")


def test_a_bad_limit_setting_is_a_config_error(sandbox: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_MEMBERS_ENV, "lots")
    with pytest.raises(BadConfigError, match=MAX_MEMBERS_ENV):
        extract_archive(zip_bytes([("a", b"a")]), sandbox / "d")


# -- damaged and foreign content --------------------------------------------------------------
def test_corrupt_and_foreign_bytes(sandbox: Path) -> None:
    refuse(b"", sandbox, "empty")
    refuse(os.urandom(4096), sandbox, "not a zip or tar archive")
    refuse(b"just some text, not an archive\n" * 40, sandbox, "not a zip or tar archive")
    good = tar_bytes([tar_file("a.bin", os.urandom(20_000))])
    refuse(good[: len(good) // 2], sandbox, "corrupt or truncated")
    zipped = bytearray(zip_bytes([("a.txt", b"hello " * 1000)]))
    zipped[40:60] = b"\x00" * 20  # inside the compressed data of the only member
    refuse(bytes(zipped), sandbox, "corrupt or truncated")
    refuse(zip_bytes([("folder/", b"")]), sandbox, "holds no files")


def test_duplicate_members_are_refused(sandbox: Path) -> None:
    refuse(tar_bytes([tar_file("a.txt", b"1"), tar_file("a.txt", b"2")]), sandbox,
           "appears twice")
    refuse(tar_bytes([tar_file("a", b"1"), tar_file("a/b.txt", b"2")]), sandbox, "clashes")


def test_folder_names_for_uploads_are_plain() -> None:
    assert folder_name("all-mias.tar.gz") == "all-mias"
    assert folder_name("../../evil.ZIP") == "evil"
    assert folder_name("C:\\Users\\me\\my films (2).tgz") == "my_films_2"
    assert folder_name("...") == "archive"
