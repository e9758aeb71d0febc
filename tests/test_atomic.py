"""File names made from films' names: safe on every system, never empty."""

from __future__ import annotations

import pytest

from core.atomic import safe_stem


@pytest.mark.parametrize(("name", "stem"), [
    ("mdb001", "mdb001"), ("10006_462822612", "10006_462822612"),
    ("../../etc/passwd", ".._.._etc_passwd"), ("a b\"c'd", "a_b_c_d"), ("", "film"),
    ("Bröst.v2-L", "Bröst.v2-L")])
def test_a_films_name_keeps_its_letters_and_loses_separators_and_quotes(name: str,
                                                                         stem: str) -> None:
    assert safe_stem(name) == stem
