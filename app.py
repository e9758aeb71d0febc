"""Streamlit entry point: page config, navigation and the sidebar shared by every page.

Pages live in ``pages/`` and only call ``core`` (through the small helpers in ``ui/``);
nothing here computes anything.
"""

import streamlit as st

from ui.state import sidebar

st.set_page_config(page_title="Mammo: classification and localisation", page_icon="🩻",
                   layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:"),
]

page = st.navigation(PAGES)
sidebar()
page.run()
