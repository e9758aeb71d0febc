"""How every table on the pages reads: a cell with no value shows an em dash, never "None"
(Streamlit's ``st.dataframe(placeholder=EMPTY)`` and the cells pages fill themselves)."""

from __future__ import annotations

#: What a table cell with no value shows.
EMPTY = "—"
