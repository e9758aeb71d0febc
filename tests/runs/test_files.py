"""The gate for files a run serves: regular files inside the run, reached through no link."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.runs.files import report_files, served_file
from core.runs.folder import REPORT, create_run


@pytest.fixture()
def run(tmp_path: Path):
    run = create_run("files", {"status": "done"}, tmp_path / "models")
    (run.path / REPORT / "gallery").mkdir(parents=True)
    (run.path / REPORT / "report.html").write_text("<html>report</html>")
    (run.path / REPORT / "gallery" / "film.png").write_bytes(b"png")
    return run


def test_a_regular_file_of_the_run_is_served(run) -> None:
    assert served_file(run, "report/report.html") == run.path / REPORT / "report.html"
    assert served_file(run, Path(REPORT, "gallery", "film.png")).read_bytes() == b"png"
    assert [name for name, _ in report_files(run)] == ["gallery/film.png", "report.html"]


def test_links_paths_out_and_hidden_files_are_refused(run, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not the run's")
    (run.path / REPORT / "linked.html").symlink_to(secret)
    (run.path / REPORT / "linked-folder").symlink_to(tmp_path, target_is_directory=True)
    (run.path / REPORT / ".half-written.html").write_text("partial")
    for refused in ("report/linked.html", "report/linked-folder/secret.txt",
                    "report/.half-written.html", "../secret.txt", str(secret), "",
                    "report/missing.html", "report"):
        assert served_file(run, refused) is None, refused
    assert [name for name, _ in report_files(run)] == ["gallery/film.png", "report.html"]
