"""Drawing a heatmap over its film: a Viridis overlay at the film's own size, with the known
lesion circles on top, and saving it as a PNG.

Viridis rather than jet: it is perceptually uniform and reads in greyscale and to the
colour-blind, so a brighter colour always means more weight. The circles go on after the
blend so they stay crisp at full strength, in red, a colour Viridis never uses.

The heat is laid on only where the model looked: each pixel's opacity is the chosen opacity
times its heat (above ``HEAT_FLOOR``), so the film shows through wherever the heat is low,
even at opacity 1.0, and a reader sees the tissue under and around the hot region. Labels
and the colour bar go around the film, never on it (``core.render.film_view``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_path
from core.errors import BadConfigError
from core.geometry import Lesion
from core.prep.preprocess import NORMALISE_PERCENTILES

LESION_RGB = (255, 0, 0)
#: Line thickness per this many pixels of the film's long side (1 px on 256 px, 4 on 1024).
PIXELS_PER_LINE = 256
#: Heat at or below this share of the film's maximum is not drawn at all: a map is rarely
#: exactly zero, and a faint purple veil over the whole breast would hide its texture.
HEAT_FLOOR = 0.1
#: Grey levels of an 8-bit display film; a window this wide at its middle changes nothing.
GREY_LEVELS = 256


@dataclass(frozen=True)
class Window:
    """Window/level on the 8-bit display film, as a radiologist's viewer sets contrast:
    grey levels from ``level - width / 2`` to ``level + width / 2`` are spread from black to
    white, darker ones are black and brighter ones white. The default shows the film as it
    is; a narrow window raises the contrast of the tissue it is centred on."""

    width: float = GREY_LEVELS
    level: float = GREY_LEVELS / 2

    def __post_init__(self) -> None:
        if not (np.isfinite(self.width) and 1.0 <= self.width <= GREY_LEVELS):
            raise BadConfigError(f"a window's width must be 1 to {GREY_LEVELS} grey levels, "
                                 f"got {self.width!r}")
        if not (np.isfinite(self.level) and 0.0 <= self.level <= GREY_LEVELS - 1):
            raise BadConfigError(f"a window's level must be 0 to {GREY_LEVELS - 1}, "
                                 f"got {self.level!r}")

    @property
    def neutral(self) -> bool:
        return self == Window()


def window_level(grey: np.ndarray, window: Window) -> np.ndarray:
    """The 8-bit film through ``window`` (a lookup table: one pass however large)."""
    if window.neutral:
        return grey
    low = window.level - window.width / 2.0
    levels = np.arange(GREY_LEVELS, dtype=np.float32)
    table = np.clip(np.round((levels - low) * (GREY_LEVELS / window.width)), 0, 255)
    return cv2.LUT(grey, table.astype(np.uint8))


def heat_weight(heat: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """How much of the heat colour each pixel gets: ``opacity`` times the heat, rescaled so
    that ``HEAT_FLOOR`` and below give none and the maximum gives ``opacity``."""
    ramp = (np.asarray(heat, np.float32) - HEAT_FLOOR) / (1.0 - HEAT_FLOOR)
    return np.clip(ramp, 0.0, 1.0) * np.float32(opacity)


def viridis_colours(heat: np.ndarray) -> np.ndarray:
    """Viridis RGB (uint8, one more axis of 3) of heat values in [0, 1], any shape."""
    values = np.asarray(heat, np.float32)
    levels = np.round(values * 255.0).astype(np.uint8).reshape(-1, 1)
    rgb = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)
    return rgb.reshape(*values.shape, 3)


def viridis_overlay(film_pixels: np.ndarray, heatmap: np.ndarray, opacity: float = 0.45,
                    lesions: Sequence[Lesion] = (), stretch: bool = True,
                    window: Window | None = None) -> np.ndarray:
    """The film in grey through ``window``, the heatmap blended over it in Viridis where
    the model looked (``heat_weight``: nothing where the heat is low, ``opacity`` at its
    maximum), and the located ``lesions`` as circles. No text: a label on the film would
    hide the film (``film_view.framed`` puts the caption and colour bar around it).

    ``film_pixels``: the original film (2-D uint8 or uint16), stretched to 8 bits between
    preprocessing's percentiles, or, with ``stretch=False``, an 8-bit film already stretched
    by ``display_grey`` (the app redraws a kept, shrunken film at each opacity, and
    stretching it again would shift its contrast). ``heatmap``: the same shape, values in
    [0, 1] (``to_film`` gives that). ``window``: contrast applied to the 8-bit grey film
    before the blend (None: as it is). Returns RGB uint8 of the film's shape.
    """
    film = np.asarray(film_pixels)
    if film.ndim != 2 or film.dtype not in (np.uint8, np.uint16) or min(film.shape) < 1:
        raise BadConfigError(f"an overlay needs a 2-D uint8 or uint16 film, got {film.dtype} "
                             f"{film.shape}")
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != film.shape:
        raise BadConfigError(f"heatmap of shape {heat.shape} does not match the film's "
                             f"{film.shape}: map it onto the film first (to_film)")
    if not (np.all(np.isfinite(heat)) and heat.min() >= 0.0 and heat.max() <= 1.0):
        raise BadConfigError("heatmap values must be finite and in [0, 1]")
    if not 0.0 <= float(opacity) <= 1.0:
        raise BadConfigError(f"opacity must be in [0, 1], got {opacity!r}")
    if not stretch and film.dtype != np.uint8:
        raise BadConfigError("an unstretched overlay needs the 8-bit film display_grey gives")

    grey = window_level(display_grey(film) if stretch else film, window or Window())
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    weight = heat_weight(heat, float(opacity))
    if weight.any():
        # rgb + (colour - rgb) * weight, in place: one float copy, not five (a 2,048-px
        # overlay's float copy is 30 MB), and the same sums in the same order.
        blend = viridis_colours(heat).astype(np.float32)
        blend -= rgb
        blend *= weight[..., None]
        blend += rgb
        np.round(blend, out=blend)
        rgb = np.clip(blend, 0, 255, out=blend).astype(np.uint8)
    thickness = line_thickness(film.shape)
    for lesion in lesions:
        if lesion.located:
            _circle(rgb, lesion, thickness)
    return rgb


def line_thickness(shape: tuple[int, ...]) -> int:
    """Circle lines (and text) scale with the film, so they read the same at any size."""
    return max(1, round(max(shape[:2]) / PIXELS_PER_LINE))


def png_bytes(rgb: np.ndarray, what: str = "the overlay") -> bytes:
    """An RGB uint8 image encoded as PNG, for a download button or a file."""
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BadConfigError(f"a PNG needs an RGB uint8 image, got {image.dtype} "
                             f"{image.shape}")
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise BadConfigError(f"{what}: OpenCV could not encode the PNG")
    return encoded.tobytes()


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 image as a PNG, atomically: a reader (the app, a report page)
    never sees half a file, and a failed write leaves no file behind."""
    target = Path(path)
    encoded = png_bytes(rgb, str(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_bytes(encoded)
    except OSError as error:
        raise BadConfigError(f"{target}: cannot write the PNG ({error.strerror})") from None
    return target


def display_grey(film: np.ndarray) -> np.ndarray:
    """The film as 8-bit grey, stretched between preprocessing's percentiles: a few hot
    pixels or a bright label must not squash the breast's grey levels.

    An 8 or 16-bit film has its percentiles read from its histogram and goes through a
    lookup table made with the same float32 arithmetic per grey level: the same result as
    ``np.percentile`` and stretching every pixel, without sorting or float copies of the
    film (a 2,048-px display film: 60 ms down to 10)."""
    if film.dtype in (np.uint8, np.uint16):
        low, high = _histogram_percentiles(film, NORMALISE_PERCENTILES)
        high = max(float(high), float(low) + 1.0)
        levels = np.arange(np.iinfo(film.dtype).max + 1, dtype=np.float32)
        return _stretched(levels, float(low), high)[film]
    low, high = np.percentile(film, NORMALISE_PERCENTILES)
    high = max(float(high), float(low) + 1.0)
    return _stretched(film.astype(np.float32), float(low), high)


def _histogram_percentiles(film: np.ndarray, percents: Sequence[float]) -> np.ndarray:
    """``np.percentile(film, percents)`` (its default, linear method, step by step as NumPy
    takes it) for unsigned integer pixels, with the order statistics read from the
    histogram instead of a partial sort."""
    cumulative = np.cumsum(np.bincount(film.ravel()))
    count = film.size
    virtual = (count - 1) * (np.asarray(percents, dtype=np.float64) / 100)
    below = np.floor(virtual)
    gamma = virtual - below
    first = below.astype(np.intp)
    second = np.minimum(first + 1, count - 1)
    # The k-th smallest pixel (from 0) is the first level whose running count exceeds k.
    a = np.searchsorted(cumulative, first, side="right").astype(film.dtype)
    b = np.searchsorted(cumulative, second, side="right").astype(film.dtype)
    difference = np.subtract(b, a)
    result = np.add(a, difference * gamma)
    np.subtract(b, difference * (1 - gamma), out=result, where=gamma >= 0.5)
    return result


def _stretched(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """float32 grey values mapped linearly from ``low..high`` onto 0..255, as uint8."""
    stretched = (values - low) * (255.0 / (high - low))
    return np.clip(np.round(stretched), 0, 255).astype(np.uint8)


# Sub-pixel drawing: OpenCV takes integer coordinates with this many fractional bits.
_SHIFT = 4


def _circle(rgb: np.ndarray, lesion: Lesion, thickness: int) -> None:
    (row, col), scale = lesion.center, 1 << _SHIFT
    cv2.circle(rgb, (round(col * scale), round(row * scale)), round(lesion.radius * scale),
               LESION_RGB, thickness, cv2.LINE_AA, _SHIFT)
