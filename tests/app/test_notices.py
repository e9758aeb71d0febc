"""Warnings that list what a dataset left out: the count in view, the names folded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from factories import TINY, open_page
from ui.notices import split_listed


def test_a_counted_list_is_split_from_its_sentence() -> None:
    assert split_listed("4 film(s) listed in Info.txt are absent: a1 a2 a3 a4") == (
        "4 film(s) listed in Info.txt are absent", ["a1", "a2", "a3", "a4"])
    assert split_listed("12 crops have no image below /data/cbis: c/1 c/2 c/3 c/4 ...")[1][-1] \
        == "..."
    # prose, a short list or no count stay one line
    for plain in ("x.csv: lacks column(s) film, patient; skipped",
                  "3 films are absent: a1 a2 a3", "films are absent: a1 a2 a3 a4 a5"):
        assert split_listed(plain) == (plain, [])


def _page(warnings: list[str], missing: list[str]) -> None:
    from ui.notices import show_warnings

    show_warnings(warnings, missing=missing)


def test_each_list_is_one_notice_with_its_names_folded() -> None:
    missing = [f"mdb{i:03d}" for i in range(1, 21)]
    app = AppTest.from_function(_page, kwargs={
        "warnings": ["20 film(s) named are absent: mdb001 mdb002 mdb003 mdb004 ...",
                     "3 crops unreadable: x1 x2 x3 x4", "Info.txt: line 9 has no class"],
        "missing": missing}).run()
    assert not app.exception
    assert [warning.value for warning in app.warning] == [
        "20 film(s) named are absent; they are left out.",
        "3 crops unreadable; they are left out.", "Info.txt: line 9 has no class"]
    # the missing films in full (the loader's line was cut short), the other list as given
    assert [expander.label for expander in app.expander] == ["Which ones (all 20)",
                                                             "Which ones (all 4)"]
    assert app.expander[0].text[0].value == " ".join(missing)
    assert app.expander[1].text[0].value == "x1 x2 x3 x4"


def test_a_list_cut_short_says_so() -> None:
    app = AppTest.from_function(_page, kwargs={
        "warnings": ["30 images named in train.csv have no file: a/1 a/2 a/3 a/4 ..."],
        "missing": []}).run()
    assert [expander.label for expander in app.expander] == ["Which ones (the first 4)"]


def test_evaluate_shows_the_missing_films_once_with_their_list_folded(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A MIAS folder whose Info.txt names films it lacks (mini-MIAS lacks 66): Evaluate says
    how many, once, and folds the names, instead of a line of ids atop the page."""
    from core.runs.config import TrainConfig
    from core.train.fit import train

    films = Path(shutil.copytree(synthetic_root, tmp_path / "films"))
    gone = sorted(films.glob("mdb*"))[-4:]
    for film in gone:
        film.unlink()
    train(TrainConfig(dataset="mias", root=str(films)).with_overrides(**{**TINY, "epochs": 1}),
          tmp_path / "models")
    app = open_page("pages/evaluate.py", tmp_path / "models", tmp_path / "data", monkeypatch)
    absent = [warning.value for warning in app.warning if "absent" in warning.value]
    assert absent == ["4 film(s) listed in Info.txt are absent; they are left out."]
    (listing,) = [expander for expander in app.expander
                  if any(gone[0].stem in text.value for text in expander.text)]
    assert listing.label == "Which ones (all 4)"
    assert sum(gone[0].stem in text.value for text in app.text) == 1
