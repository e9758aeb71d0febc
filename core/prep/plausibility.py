"""Does a picture look like a mammogram? A few cheap checks of an input film, each naming
what is wrong, so a prediction on a holiday photo or a noise picture is not read as a
finding.

Why warn rather than refuse: the model answers anything it is given, and showing that answer
beside the reason to distrust it teaches more than a refusal; and a check this simple will
sometimes doubt a real film (a tight crop, an unusual export), which must still be scored.

Each threshold was set on real films with a wide margin (``bench/plausibility.py`` prints the
figures): over all 256 mini-MIAS films and every ninth film of the RSNA 640-px export (302),
neighbouring pixels correlate at 0.91 or more (uniform noise: 0.01 to 0.14), the breast
found covers 5.8% of the picture or more (noise: under 0.3%), at least 8.8% of the picture is
dark background (the two colour photos in the shared folder: 1.4% and 13%), and no pixel is
coloured (the photos: 98% and 99%).
"""

from __future__ import annotations

import numpy as np

from core.films import Film
from core.prep.preprocess import Look, look_at

#: Height over width outside this range is no mammogram's shape: films are square (mini-MIAS,
#: the RSNA export) or taller than wide (detectors 1.2 to 1.3, scanned films to about 2).
ASPECT_RANGE = (0.8, 2.5)
#: Share of coloured pixels (``films.COLOUR_SPREAD``) above which a picture is a colour one.
COLOUR_SHARE = 0.05
#: Every warning starts so, so that it reads on its own in a list of a film's warnings.
NOT_A_MAMMOGRAM = "does not look like a mammogram"
#: A breast found on less than this share of the picture is none.
BREAST_SHARE = 0.02
#: Correlation of horizontally neighbouring pixels below which a picture is noise.
SMOOTHNESS = 0.5
#: Grey levels (of the stretched 0-255 copy) counted as background, and the least share of
#: the picture a mammogram's background covers.
DARK_LEVEL, DARK_SHARE = 20, 0.03
#: Spread between the 0.5th and 99.5th percentile, as a share of the film's range, below
#: which a picture is one flat grey.
FLAT_SPREAD = 0.02
#: Long side of the strided sample the spread is measured on.
SPREAD_SAMPLE_SIDE = 1024


def measures(film: Film, look: Look | None = None) -> dict[str, float]:
    """The figures the checks judge (``bench/plausibility.py`` prints them for real films):
    ``aspect`` (height over width), ``colour_share``, ``spread`` (of the grey levels, as a
    share of the film's range), ``smoothness`` (neighbouring pixels' correlation),
    ``breast_share`` and ``dark_share`` (of the picture).

    The small copy and the breast mask are preprocessing's (``look_at``), so the check sees
    the film as training does; ``look``: the film's look when the caller has taken it
    already (prediction does, once, for preprocessing too), else it is taken here."""
    rows, cols = film.pixels.shape
    if look is None:
        look = look_at(film.pixels, fix_inverted=False, source=film.name)
    elif look.pixels.shape != film.pixels.shape:
        raise ValueError("the look is not of this film")
    small, breast = look.stretched, look.mask
    return {"aspect": rows / cols,
            "colour_share": float(film.metadata.get("colour_share") or 0.0),
            "spread": _spread(film), "smoothness": _smoothness(small),
            "breast_share": float(breast.mean()),
            "dark_share": float((small < DARK_LEVEL).mean())}


def plausibility_warnings(film: Film, look: Look | None = None) -> list[str]:
    """What makes ``film`` (read and set upright) look unlike a mammogram, one sentence
    each; empty when nothing does. ``look``: as ``measures`` takes it."""
    figures = measures(film, look)
    warnings: list[str] = []
    aspect = figures["aspect"]
    if not ASPECT_RANGE[0] <= aspect <= ASPECT_RANGE[1]:
        rows, cols = film.pixels.shape
        shape = "wider than tall" if aspect < ASPECT_RANGE[0] else "a narrow strip"
        warnings.append(f"{NOT_A_MAMMOGRAM}: its shape, {cols} x {rows} pixels (width x "
                        f"height), is {shape}; films are square or taller than wide")
    if figures["colour_share"] > COLOUR_SHARE:
        warnings.append(f"{NOT_A_MAMMOGRAM}: it is a colour picture "
                        f"({figures['colour_share']:.0%} of its pixels are coloured); "
                        "mammograms are grey")
    if figures["spread"] < FLAT_SPREAD:
        warnings.append(f"{NOT_A_MAMMOGRAM}: it is almost one flat grey, with no tissue to see")
        return warnings  # nothing below can be judged on a flat picture
    if figures["smoothness"] < SMOOTHNESS:
        warnings.append(f"{NOT_A_MAMMOGRAM}: its intensities look like noise (neighbouring "
                        "pixels are unrelated, where tissue changes smoothly)")
    if figures["breast_share"] < BREAST_SHARE:
        warnings.append(f"{NOT_A_MAMMOGRAM}: no breast was found in it")
    elif figures["dark_share"] < DARK_SHARE:
        warnings.append(f"{NOT_A_MAMMOGRAM}: it has no dark background around the breast")
    return warnings


def _spread(film: Film) -> float:
    """On every n-th pixel, so a 12-megapixel picture costs what a 1-megapixel one does."""
    step = max(1, max(film.pixels.shape) // SPREAD_SAMPLE_SIDE)
    low, high = np.percentile(film.pixels[::step, ::step], (0.5, 99.5))
    top = float((1 << film.bit_depth) - 1)
    return float(high - low) / top if top > 0 else 0.0


def _smoothness(small: np.ndarray) -> float:
    """Correlation of each pixel with its right-hand neighbour (1.0 for a picture too flat
    to say: that is reported as flat, not as noise)."""
    left = small[:, :-1].astype(np.float32).ravel()
    right = small[:, 1:].astype(np.float32).ravel()
    if left.size < 2 or left.std() == 0 or right.std() == 0:
        return 1.0
    return float(np.corrcoef(left, right)[0, 1])
