"""What ``--input`` stands for: every film below a folder, or the films a list names, each
once, as absolute paths (the keys a resumed scoring run skips by)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import BadConfigError
from core.evaluate.film_list import all_films, input_films


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_a_folder_stands_for_every_film_below_it(tmp_path: Path) -> None:
    films = [_touch(tmp_path / "a.png"), _touch(tmp_path / "deep" / "er" / "b.DCM"),
             _touch(tmp_path / "c.pgm")]
    for not_a_film in ("notes.txt", ".hidden.png", ".cache/d.png", "labels.csv"):
        _touch(tmp_path / not_a_film)
    assert sorted(input_films(tmp_path)) == sorted(films)


def test_a_list_names_films_relative_to_itself(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "archive"
    listing = archive / "films.txt"
    _touch(archive / "x" / "a.png")
    elsewhere = _touch(tmp_path / "b.png")
    listing.write_text(f"# films to score\n\nx/a.png\n  {elsewhere}  \nx/../x/a.png\n"
                       "missing.png\n")
    monkeypatch.chdir(tmp_path)  # relative to the list, not to where the command runs
    assert input_films(Path("archive/films.txt")) == [
        archive / "x" / "a.png", elsewhere, archive / "missing.png"]


def test_films_and_inputs_together_are_each_scored_once(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    film = _touch(tmp_path / "films" / "a.png")
    monkeypatch.chdir(tmp_path)
    assert all_films([Path("films/a.png"), film], [tmp_path / "films"]) == [film]
    assert input_films(film) == [film]  # a film given as the input is itself


@pytest.mark.parametrize(("make", "fault"), [
    (lambda root: root / "nowhere", "not found"),
    (lambda root: root, "no films in this folder"),
    (lambda root: _write(root / "empty.txt", b"# nothing\n\n"), "names no film"),
    (lambda root: _write(root / "binary.lst", b"\xff\xfe\x00\x81"), "not UTF-8 text"),
])
def test_an_input_without_films_is_one_error_naming_it(
        tmp_path: Path, make: Callable[[Path], Path], fault: str) -> None:
    source = make(tmp_path)
    with pytest.raises(BadConfigError, match=fault) as error:
        input_films(source)
    assert str(source) in str(error.value)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path
