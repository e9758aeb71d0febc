"""Warnings about what a dataset left out, shown once each: the sentence in view, a long list
of names folded under it.

The loaders say "66 film(s) listed in Info.txt are absent: mdb025 mdb026 ..." in one line.
Shown as it is, that line is a wall of ids atop the page; shown beside the Data page's own
list of missing films, it is the same news twice. Here each such warning becomes its
sentence (the count a reader needs) and an expander holding the names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import streamlit as st

#: A name in a warning's list: a film id, a path or "..." (a list the loader cut short).
_NAME = re.compile(r"^[\w./-]+$")
#: Lists shorter than this stay inline: three names read fine in a sentence.
FOLD_FROM = 4


def split_listed(warning: str) -> tuple[str, list[str]]:
    """("66 film(s) listed in Info.txt are absent", ["mdb025", ...]) for a warning that
    counts something and lists it after its last colon; (warning, []) for any other."""
    sentence, colon, tail = warning.rpartition(": ")
    names = tail.split()
    if (not colon or not sentence[:1].isdigit() or len(names) < FOLD_FROM
            or not all(_NAME.match(name) for name in names)):
        return warning, []
    return sentence, names


def show_warnings(warnings: Sequence[str], missing: Sequence[str] = ()) -> None:
    """Each warning once. One that lists names shows its sentence with the names in an
    expander; the one that lists ``missing`` films (a dataset's ``missing``, complete where
    the loader's line may be cut short) shows them all."""
    for warning in warnings:
        sentence, names = split_listed(warning)
        if not names:
            st.warning(warning, icon=":material/warning:")
            continue
        listed = [name for name in names if name != "..."]
        if missing and set(listed) <= set(missing):
            names = list(missing)
        _listed_notice(sentence, [name for name in names if name != "..."],
                       cut_short="..." in names)


def _listed_notice(sentence: str, names: list[str], cut_short: bool) -> None:
    st.warning(f"{sentence}; they are left out.", icon=":material/warning:")
    which = f"the first {len(names)}" if cut_short else f"all {len(names)}"
    with st.expander(f"Which ones ({which})"):
        st.text(" ".join(names))
