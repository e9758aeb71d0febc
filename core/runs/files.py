"""The one gate through which a run's files are handed to a person: downloads, the report
archive, gallery pictures.

Why one gate: run folders are copied between machines and users, so a folder may hold a
symbolic link to any file the server can read (``report/report.html -> /etc/passwd``), or an
evaluation whose gallery names a path outside the run. Each page once applied its own rule,
and they disagreed (the Evaluate page served ``report.html`` unchecked). Every file the app
serves from a run now comes from here: a regular file, inside the run folder, reached
through no link, and not hidden (half-written files start with a dot).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import BadConfigError
from core.runs.folder import REPORT, Run


def served_file(run: Run, relative: str | Path) -> Path | None:
    """The run's file at ``relative`` (a path inside the run folder), or None when there is
    no such regular file or it may not be served: a link on the way to it, a path leading
    out of the folder, or a hidden name."""
    relative = Path(relative)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return None
    if any(part.startswith(".") for part in relative.parts):
        return None
    file = run.path / relative
    step = file
    while step != run.path:
        if step.is_symlink():
            return None
        step = step.parent
    if run.path.is_symlink() or not file.is_file():
        return None
    try:
        file.resolve().relative_to(run.path.resolve())
    except ValueError:
        return None
    return file


def report_files(run: Run) -> Iterator[tuple[str, Path]]:
    """Every servable file of the run's report folder, with its path inside the folder."""
    folder = run.path / REPORT
    if not folder.is_dir():
        return
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(run.path)
        if served_file(run, relative) is not None:
            yield "/".join(relative.parts[1:]), file


def report_zip(run: Run) -> bytes:
    """The run's report folder as one zip archive (paths relative to the folder), of the
    files ``report_files`` serves and nothing a link points to."""
    folder = run.path / REPORT
    if not folder.is_dir() or folder.is_symlink():
        raise BadConfigError(f"{run.name}: no report yet; evaluate the run first")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, file in report_files(run):
            archive.write(file, name)
    return buffer.getvalue()
