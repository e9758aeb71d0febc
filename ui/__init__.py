"""Streamlit pieces shared by the pages: session state, the sidebar, error display.

Nothing here computes results; it only connects widgets to ``core``.
"""
