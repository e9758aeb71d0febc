"""Streamlit entry point: page config, navigation and the sidebar shared by every page.

Pages live in ``pages/`` and only call ``core``; nothing here computes anything.
"""

import streamlit as st

st.set_page_config(page_title="Mammo: classification and localisation", page_icon="🩻",
                   layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.caption("Research software. Not a medical device; not for diagnosis.")
page.run()
