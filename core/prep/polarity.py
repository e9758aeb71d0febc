"""Films stored inverted (white background, dark breast), told from their pixels alone.

Why pixels: DICOM says when a film is MONOCHROME1 and the reader flips it
(``core.films``), but an export to PNG or JPEG keeps the pixels and drops the tag. The RSNA
export in ``../shared/data/rsna-640`` holds about one inverted film in six, at different
rates in its two classes, so a model fed them as they are could learn the export instead of
the cancer. Any format can hold such a film, so the check runs on every film.

How: the air around the breast is the film's background. It lets the X-rays through, so a
film shown the right way round has it at the dark end of the grey range and an inverted
film at the bright end; and it surrounds the breast on every side but the chest wall, so it
reaches the film's edge. Two cues measure that, and a film counts as inverted only when
both do (each alone has a failure mode the other does not share):

* ``border``: of the film's outer band (``BORDER_BAND`` of its long side), the share at the
  bright extreme minus the share at the dark extreme. Mostly air, so far below zero on a
  film the right way round, far above on an inverted one; near zero when the breast fills
  the frame. Fooled by a bright strip along an edge (the unexposed rim of a scanned film).
* ``background``: the share of the film in bright-extreme regions that reach its edge,
  minus the same for the dark extreme. Air forms one large such region; a bright strip,
  a label or a saturated implant covers little of the film. Fooled when little air shows.

"Extreme" is within ``EXTREME`` grey levels of either end of the film's own range, on the
small copy segmentation uses (long side 256, percentiles 0.5 and 99.5 stretched to 0 and
255), after a 5 x 5 median filter that removes film grain, JPEG ringing and the strokes of
burned-in text. Measured with ``bench/rsna_summary.py`` (figures in its docstring): every
flagged RSNA film has border >= 0.47 and background >= 0.22; every other RSNA film, every
mini-MIAS film and every SYNTHETIC film has border <= 0.00 and background <= -0.08.

Lesion crops (``mias-lesions``, CBIS-DDSM's crop mode) show no air, so neither cue means
what it does on a film, and a crop of dense tissue can look bright at its edge: the 91
mini-MIAS lesion crops reach border 0.23 and background 0.28 (one crop each). Only the
border cue keeps them apart from inverted films, so its threshold sits midway between 0.23
and 0.47; the background threshold midway between -0.08 and 0.22.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: The outer band that counts as the film's border, as a share of its long side.
BORDER_BAND = 0.04
#: Grey levels (of 255) from either end of the range that count as that end.
EXTREME = 12
#: The least ``border`` and ``background`` of an inverted film (see the module docstring).
BORDER_MARGIN = 0.35
BACKGROUND_MARGIN = 0.07
#: Median filter side: wider than film grain and text strokes on the 256-px copy.
_SMOOTH = 5


@dataclass(frozen=True)
class Polarity:
    """Whether a film is stored inverted, and the two cues that say so (shares in -1..1)."""

    inverted: bool
    border: float
    background: float

    def to_dict(self) -> dict[str, bool | float]:
        """For a film's metadata: rounded, since the cues are only read against margins."""
        return {"inverted": self.inverted, "border": round(self.border, 3),
                "background": round(self.background, 3)}


def polarity_of(small: np.ndarray) -> Polarity:
    """The polarity of a film from its small copy: 2-D uint8 spread over 0-255 (what
    ``core.prep.preprocess`` segments). A blank or flat film is not inverted."""
    smooth = cv2.medianBlur(np.ascontiguousarray(small, dtype=np.uint8), _SMOOTH)
    dark, bright = smooth <= EXTREME, smooth >= 255 - EXTREME
    band = max(1, round(max(smooth.shape) * BORDER_BAND))
    ring = np.ones(smooth.shape, bool)
    ring[band:-band, band:-band] = False
    border = float(bright[ring].mean() - dark[ring].mean())
    background = _edge_area(bright) - _edge_area(dark)
    inverted = border >= BORDER_MARGIN and background >= BACKGROUND_MARGIN
    return Polarity(inverted, border, background)


def mirror(pixels: np.ndarray, low: int | None = None, high: int | None = None) -> np.ndarray:
    """``pixels`` with their grey levels reversed within ``low..high`` (by default their own
    least and greatest), so the bright background becomes the dark end and the dtype and
    range stay as they were. Give the full film's range when mirroring a copy of it."""
    low = int(pixels.min()) if low is None else low
    high = int(pixels.max()) if high is None else high
    # In int32: uint16 arithmetic would wrap below zero where a copy strays past the range.
    flipped = np.int32(low + high) - pixels.astype(np.int32)
    return np.clip(flipped, 0, np.iinfo(pixels.dtype).max).astype(pixels.dtype)


def _edge_area(binary: np.ndarray) -> float:
    """The share of the image in regions of ``binary`` that touch its edge."""
    count, labels = cv2.connectedComponents(binary.view(np.uint8), connectivity=4)
    if count < 2:
        return 0.0
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.zeros(count, bool)
    touching[edge] = True
    touching[0] = False  # label 0 is everything outside ``binary``
    return float(touching[labels].mean())
