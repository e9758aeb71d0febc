"""Downloading the MIAS archive, against a local server and closed ports only (no network)."""

from __future__ import annotations

import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.data import load_dataset
from core.data.download import (
    ARCHIVE_NAME,
    DownloadError,
    adopt_readme,
    download,
    download_mias,
)
from core.errors import BadArchiveError, BadConfigError

README = b"""MAMMOGRAPHIC IMAGE ANALYSIS SOCIETY (a shortened README for tests)
mdb001 G CIRC B 535 425 197
mdb002 G NORM
"""


def pgm(size: int = 64) -> bytes:
    return f"P5\n{size} {size}\n255\n".encode() + bytes(range(size)) * size


def tiny_mias_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("all-mias/README", README), ("all-mias/mdb001.pgm", pgm()),
                           ("all-mias/mdb002.pgm", pgm())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy in the environment would send even 127.0.0.1 elsewhere."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A local HTTP server; tests put the files it serves into the returned dict."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_download_extracts_and_the_loader_reads_it(server: tuple[str, dict[str, bytes]],
                                                   tmp_path: Path) -> None:
    base, files = server
    files["/pix/mias/all-mias.tar.gz"] = archive = tiny_mias_archive()
    seen: list[tuple[int, int | None]] = []
    dest = download_mias(tmp_path / "mias", url=f"{base}/pix/mias/all-mias.tar.gz",
                         progress=lambda done, total: seen.append((done, total)), timeout=5)
    assert dest == tmp_path / "mias"
    assert seen[0] == (0, len(archive)) and seen[-1] == (len(archive), len(archive))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert (tmp_path / ARCHIVE_NAME).read_bytes() == archive
    assert (dest / "all-mias/Info.txt").read_bytes() == README  # adopted from the README
    dataset = load_dataset("mias", dest)
    assert [r.film_id for r in dataset.records] == ["mdb001", "mdb002"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [ARCHIVE_NAME, "mias"]


def test_http_errors_say_how_to_continue(server: tuple[str, dict[str, bytes]],
                                         tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError) as caught:
        download_mias(tmp_path / "mias", url=f"{base}/missing.tar.gz", timeout=5)
    message = str(caught.value)
    assert "HTTP 404" in message and "MIAS archive" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/all-mias.tar.gz"
    with pytest.raises(DownloadError) as caught:
        download_mias(tmp_path / "mias", url=url, timeout=5)
    message = str(caught.value)
    assert message.startswith(f"could not download {url} (")
    assert "refused" in message.lower()
    assert ARCHIVE_NAME in message and "MIAS archive" in message and "MIAS folder" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no partial file, no folder


def test_a_silent_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/all-mias.tar.gz"
        with pytest.raises(DownloadError, match="timed out"):
            download(url, tmp_path / ARCHIVE_NAME, timeout=0.5)
    assert list(tmp_path.iterdir()) == []


def test_a_page_instead_of_an_archive_is_refused_and_forgotten(
        server: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    base, files = server
    files["/all-mias.tar.gz"] = b"<html>Sorry, the archive has moved.</html>\n"
    with pytest.raises(BadArchiveError, match="not a zip or tar archive"):
        download_mias(tmp_path / "mias", url=f"{base}/all-mias.tar.gz", timeout=5)
    assert list(tmp_path.iterdir()) == []  # the bad download is deleted for a fresh retry


def test_downloads_are_capped(server: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    base, files = server
    files["/big"] = bytes(5000)
    with pytest.raises(DownloadError, match="more than the limit of 1,000"):
        download(f"{base}/big", tmp_path / "big", max_bytes=1000, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_only_http_urls(tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match="only http"):
        download("file:///etc/passwd", tmp_path / "x")


def test_adopt_readme_only_without_an_info_txt(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/README").write_bytes(README)
    (tmp_path / "README.txt").write_text("a project readme, no MIAS rows\n")
    assert adopt_readme(tmp_path) == tmp_path / "a/Info.txt"
    assert adopt_readme(tmp_path) is None  # now there is one
