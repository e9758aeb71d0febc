"""One film and its heatmap as a reader inspects it, the same on Predict and in the
Evaluate gallery: opacity, window and level (contrast) controls, the interactive figure
(zoom and pan), and a PNG download of exactly the view on screen.

The drawing is ``core.render.film_view``'s; this module only lays out the controls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.render.film_view import DEFAULT_OPACITY, FilmView, film_figure, overlay_picture
from core.render.overlay import GREY_LEVELS, Window, png_bytes

HOW_TO_ZOOM = ("Drag a box on the film to zoom in, double-click to zoom out; the toolbar "
               "above the figure has a pan tool.")


@dataclass(frozen=True)
class ViewSettings:
    """What the controls chose for one film."""

    opacity: float
    window: Window
    side_by_side: bool

    def describe(self) -> str:
        contrast = ("" if self.window.neutral else
                    f", window {self.window.width:.0f} grey levels at level "
                    f"{self.window.level:.0f}")
        return f"Heatmap at opacity {self.opacity:.2f}{contrast}."


def view_controls(key: str) -> ViewSettings:
    """The opacity, window and level sliders and the side-by-side switch; ``key`` keeps
    one film's widgets apart from another's."""
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, DEFAULT_OPACITY, 0.05,
                        key=f"opacity-{key}",
                        help="How strongly the heat is drawn where the model looked; where "
                             "it did not, the film always shows through.")
    width = st.slider("Window (contrast)", 1, GREY_LEVELS, GREY_LEVELS, 1,
                      key=f"window-{key}",
                      help="How many grey levels are spread from black to white: narrower "
                           "shows more contrast in the tissue at the level below.")
    level = st.slider("Level (brightness)", 0, GREY_LEVELS - 1, GREY_LEVELS // 2, 1,
                      key=f"level-{key}",
                      help="The grey level at the middle of the window: higher shows "
                           "detail in brighter (denser) tissue.")
    side_by_side = st.toggle("Side by side with the plain film", key=f"side-{key}")
    return ViewSettings(float(opacity), Window(float(width), float(level)), side_by_side)


def show_view(view: FilmView, text: str, settings: ViewSettings, key: str,
              file_name: str) -> None:
    """The figure for ``settings`` and a download of the same picture as a PNG, with the
    caption above the film and the colour bar below it."""
    st.plotly_chart(film_figure(view, text, settings.opacity, settings.window,
                                plain_beside=settings.side_by_side),
                    key=f"film-{key}", config={"displaylogo": False})
    st.caption(f"{settings.describe()} {HOW_TO_ZOOM}")
    picture = overlay_picture(view, text, settings.opacity, settings.window)
    st.download_button("Download this view (PNG)", png_bytes(picture, file_name),
                       file_name=f"{Path(file_name).stem or 'film'}-heatmap.png",
                       mime="image/png", key=f"download-{key}", on_click="ignore",
                       icon=":material/download:")
