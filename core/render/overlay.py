"""Drawing a heatmap over its film: a Viridis overlay at the film's own size, with the known
lesion circles on top, and saving it as a PNG.

Viridis rather than jet: it is perceptually uniform and reads in greyscale and to the
colour-blind, so a brighter colour always means more weight. The circles go on after the
blend so they stay crisp at full strength, in red, a colour Viridis never uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_path
from core.errors import BadConfigError
from core.geometry import Lesion
from core.prep.preprocess import NORMALISE_PERCENTILES

LESION_RGB = (255, 0, 0)
CAPTION_RGB = (255, 255, 255)
#: Line thickness per this many pixels of the film's long side (1 px on 256 px, 4 on 1024).
PIXELS_PER_LINE = 256


def viridis_overlay(film_pixels: np.ndarray, heatmap: np.ndarray, opacity: float = 0.45,
                    lesions: Sequence[Lesion] = (), predicted: str | None = None,
                    actual: str | None = None, stretch: bool = True) -> np.ndarray:
    """The film in grey, the heatmap blended over it in Viridis with ``opacity``, the
    located ``lesions`` as circles, and a caption when ``predicted`` or ``actual`` is given.

    ``film_pixels``: the original film (2-D uint8 or uint16), stretched to 8 bits between
    preprocessing's percentiles, or, with ``stretch=False``, an 8-bit film already stretched
    by ``display_grey`` (the app redraws a kept, shrunken film at each opacity, and
    stretching it again would shift its contrast). ``heatmap``: the same shape, values in
    [0, 1] (``to_film`` gives that). Returns RGB uint8 of the film's shape.
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

    grey = cv2.cvtColor(display_grey(film) if stretch else film, cv2.COLOR_GRAY2RGB)
    colours = cv2.cvtColor(cv2.applyColorMap(np.round(heat * 255.0).astype(np.uint8),
                                             cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)
    rgb = cv2.addWeighted(colours, float(opacity), grey, 1.0 - float(opacity), 0.0)
    thickness = max(1, round(max(film.shape) / PIXELS_PER_LINE))
    for lesion in lesions:
        if lesion.located:
            _circle(rgb, lesion, thickness)
    caption = " | ".join(f"{what}: {name}" for what, name in
                         (("predicted", predicted), ("actual", actual)) if name is not None)
    if caption:
        _caption(rgb, caption, thickness)
    return rgb


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
    pixels or a bright label must not squash the breast's grey levels."""
    low, high = np.percentile(film, NORMALISE_PERCENTILES)
    high = max(float(high), float(low) + 1.0)
    stretched = (film.astype(np.float32) - float(low)) * (255.0 / (high - float(low)))
    return np.clip(np.round(stretched), 0, 255).astype(np.uint8)


# Sub-pixel drawing: OpenCV takes integer coordinates with this many fractional bits.
_SHIFT = 4


def _circle(rgb: np.ndarray, lesion: Lesion, thickness: int) -> None:
    (row, col), scale = lesion.center, 1 << _SHIFT
    cv2.circle(rgb, (round(col * scale), round(row * scale)), round(lesion.radius * scale),
               LESION_RGB, thickness, cv2.LINE_AA, _SHIFT)


def _caption(rgb: np.ndarray, text: str, thickness: int) -> None:
    """White text on a black band in the top-left corner, scaled with the film."""
    text = text.encode("ascii", "replace").decode("ascii")  # Hershey fonts are ASCII only
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness
    (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
    margin = 2 * thickness
    cv2.rectangle(rgb, (0, 0), (width + 2 * margin, height + baseline + 2 * margin),
                  (0, 0, 0), cv2.FILLED)
    cv2.putText(rgb, text, (margin, margin + height), font, scale, CAPTION_RGB, thickness,
                cv2.LINE_AA)
