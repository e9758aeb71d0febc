"""The films a scoring command is given with ``--input``: a folder, or a list file.

An archive is scored by naming where its films are, not by typing each path: a folder
stands for every film below it (at any depth, recognised by suffix, as the class-folder
loader does: ``core.films.SUPPORTED_SUFFIXES``; hidden files and folders are skipped), and
a text file for the films it lists, one path a line (blank lines and ``#`` comments
skipped; a relative path is relative to the list's own folder, so a list travels with its
archive). A file with a film's suffix is that one film.

Paths come back absolute and each film once, in a stable order: they are the keys a resumed
scoring run uses to tell what is already scored, so ``films/a.png`` given today and
``/archive/films/a.png`` given tomorrow must be the same film. A listed film that does not
exist is kept: scoring it gives its row the error "not found", as ``predict`` does, rather
than dropping it unseen.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.errors import BadConfigError
from core.films import SUPPORTED_SUFFIXES


def input_films(source: str | Path) -> list[Path]:
    """The films ``source`` (a folder, a list file or one film) stands for; a folder with no
    film, or a list that names none, is one ``BadConfigError`` naming it."""
    source = Path(source)
    if source.is_dir():
        films = _folder_films(source)
        if not films:
            raise BadConfigError(f"{source}: no films in this folder (suffixes "
                                 f"{' '.join(SUPPORTED_SUFFIXES)})")
        return films
    if not source.is_file():
        raise BadConfigError(f"{source}: not found (give a folder of films or a list file)")
    if source.suffix.lower() in SUPPORTED_SUFFIXES:
        return [absolute(source)]
    films = _listed_films(source)
    if not films:
        raise BadConfigError(f"{source}: the list names no film (one path a line)")
    return films


def all_films(files: Sequence[str | Path], inputs: Sequence[str | Path]) -> list[Path]:
    """Films given one by one and through ``--input`` sources, absolute and each once."""
    return unique([absolute(file) for file in files]
                  + [film for source in inputs for film in input_films(source)])


def unique(films: Iterable[Path]) -> list[Path]:
    """``films`` in their order, each once (one film listed twice is scored once)."""
    return list(dict.fromkeys(films))


def absolute(path: str | Path) -> Path:
    """``path`` absolute and normalised (``a/../b`` is ``b``), symbolic links kept: the one
    spelling of a film the scores table is keyed by."""
    return Path(os.path.normpath(Path(path).absolute()))


def _folder_films(root: Path) -> list[Path]:
    films = []
    for folder, subfolders, names in os.walk(absolute(root)):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        films.extend(Path(folder) / name for name in sorted(names)
                     if not name.startswith(".")
                     and os.path.splitext(name)[1].lower() in SUPPORTED_SUFFIXES)
    return films


def _listed_films(listing: Path) -> list[Path]:
    try:
        text = listing.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadConfigError(f"{listing}: not a list of films (not UTF-8 text)") from None
    except OSError as error:
        raise BadConfigError(f"{listing}: cannot be read ({error.strerror})") from None
    base = absolute(listing).parent
    lines = (line.strip() for line in text.splitlines())
    return unique(absolute(base / line) for line in lines if line and not line.startswith("#"))
