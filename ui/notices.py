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


Listed = tuple[str, list[str]]


def sort_warnings(warnings: Sequence[str]) -> tuple[list[Listed], list[str]]:
    """The warnings that list names, as (sentence, names), and the others as they are."""
    listed, others = [], []
    for warning in warnings:
        sentence, names = split_listed(warning)
        if names:
            listed.append((sentence, names))
        else:
            others.append(warning)
    return listed, others


def show_listed(listed: Sequence[Listed], missing: Sequence[str] = ()) -> None:
    """One notice per list: its sentence in view, its names in an expander. The list of
    ``missing`` films (a dataset's ``missing``, complete where the loader's line may have
    been cut short) shows them all."""
    for sentence, names in listed:
        shown = [name for name in names if name != "..."]
        cut_short = "..." in names
        if missing and set(shown) <= set(missing):
            shown, cut_short = list(missing), False
        st.warning(f"{sentence}; they are left out.", icon=":material/warning:")
        which = f"the first {len(shown)}" if cut_short else f"all {len(shown)}"
        with st.expander(f"Which ones ({which})"):
            st.text(" ".join(shown))


def show_warnings(warnings: Sequence[str], missing: Sequence[str] = ()) -> None:
    """Each warning once: a list as ``show_listed`` shows it, any other as it is."""
    listed, others = sort_warnings(warnings)
    show_listed(listed, missing)
    for warning in others:
        st.warning(warning, icon=":material/warning:")
