"""At what size ``predict`` draws its overlays, declared once (``core.runs.knobs``): the
command line makes its options from these fields, and a page that offers them would draw
its controls from the same declarations.

Why a display size: a full-field film is 4,600 x 2,700 pixels or more. Drawing its overlay at
that size means upsampling the heatmap to 12 megapixels, blending 37 MB of colour and
encoding a PNG no screen shows at once, most of a prediction's time and memory; a map from a
16 x 16 model grid holds no detail that a 2,048-pixel picture loses. Whoever needs the map
on the film's own grid (to measure on it) asks for ``full_resolution_map``. The class is
always the full film's: only the drawing is shrunk.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from core.runs.knobs import POSITIVE, knob, settings_of

#: Long side of an overlay, in pixels, unless a person sets another.
OVERLAY_SIDE = 2048


@dataclass(frozen=True)
class OverlaySize:
    """How large ``predict_films`` draws each overlay (a film within ``overlay_side`` is
    drawn at its own size)."""

    overlay_side: int = knob(
        OVERLAY_SIDE, label="Overlay size (px)",
        help="long side of each overlay PNG in pixels; a larger film is shrunk for drawing "
             "(its class is still the full film's)",
        valid=POSITIVE, span=(256, 8192), step=256)
    full_resolution_map: bool = knob(
        False, label="Full-resolution map",
        help="draw the overlay at the film's own size instead (slow and large on "
             "full-field films)")

    def __post_init__(self) -> None:
        settings = settings_of(OverlaySize)
        for field in fields(self):
            settings[field.name].check(getattr(self, field.name))

    @property
    def side(self) -> int | None:
        """The long side overlays are drawn at; ``None``: the film's own size."""
        return None if self.full_resolution_map else self.overlay_side
