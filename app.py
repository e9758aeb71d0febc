"""Streamlit entry point: page config, navigation, the choices kept in the URL, and the
sidebar shared by every page.

Pages live in ``pages/`` and only call ``core`` (through the small helpers in ``ui/``);
nothing here computes anything. The page is the URL's path (``/train``) and the session's
dataset and run are its query parameters (``ui.state.sync_with_url``), so a reload, a second
tab or a shared link opens the same view.
"""

import streamlit as st

from ui.sidebar import sidebar
from ui.state import sync_with_url, url_problem

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
sync_with_url()
sidebar()
if problem := url_problem():
    st.warning(problem, icon=":material/link_off:")
page.run()
