"""Mammogram classification and malignancy localisation: the library behind the app and CLI.

The package is split by concern: ``films`` reads pixels, ``data`` turns annotations into
records, ``prep`` owns every geometric and intensity step (and the ``Transform`` that tracks
coordinates through them). Nothing here imports Streamlit; the app only calls into it.
"""

__version__ = "0.1.0"
