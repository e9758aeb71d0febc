"""From a read film to a model input: set upright, normalise, segment, crop, orient, resize,
CLAHE.

Every step can be switched off (``PrepConfig``) and the config is saved in run manifests,
so a result always says how its inputs were made. Every geometric step is recorded as a
``Transform`` from the original film grid to the output grid: lesion centres go forward
through it, heatmaps come back through it, and nothing else adds offsets by hand.

Why this order: segmentation runs on a copy whose long side is ``SEGMENT_SIDE`` pixels
(thresholds and connected components on 1024 x 1024 cost ten times more and find the same
outline), and intensity work (the normalisation lookup table, CLAHE) runs on the output-sized
image, after the crop and the shrink, where it has the fewest pixels to touch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Self

import cv2
import numpy as np

from core.errors import BadConfigError, BadFilmError, reject_unknown_settings
from core.films import Film, chest_wall_on_right_by_header, read_film
from core.geometry import Transform
from core.prep.polarity import Polarity, mirror, polarity_of

#: Long side of the downsampled copy the breast is segmented on (1024-px films shrink 4x).
SEGMENT_SIDE = 256
#: Percentiles that map to black and white: robust to a few hot pixels and to film labels.
NORMALISE_PERCENTILES = (0.5, 99.5)
SUPPORTED_DTYPES = (np.uint8, np.uint16)
#: A dark part whose commonest level is this high has no background peak near zero: every
#: mini-MIAS film with one has it at 17 or below; RSNA films without one, at 24 or above.
PEAK_LEVEL = 24
#: A black background covers at least this share of a film at exactly zero (RSNA films
#: without a background peak: 0.13 and more; a lesion crop inside the breast: about 0.005).
BLACK_SHARE = 0.1
#: The lowest lit levels: on a black background, the foot of the skin line's fall-off. They
#: cover at least ``RIM_SHARE`` of a film with such a fall-off (RSNA films: 0.004 and more; a
#: drawn breast's resized edge 0.0006, a padded crop none), and, once opened, at least
#: ``LIT_REGION`` where a film's background is lit (RSNA films reach 0.0036, mdb257 0.0089).
FLOOR_LEVELS = 4
RIM_SHARE = 0.002
LIT_REGION = 0.006


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class PrepSteps:
    """Which steps turn a film into a model input, and their settings; everything but the
    output size.

    A training config stores these and names the size once, as its ``image_size``
    (``TrainConfig.prep`` is ``steps.sized(image_size)``), so the two can never disagree.

    ``fix_inverted``: True (the default) mirrors the grey levels of a film stored inverted
    (white background, dark breast; ``core.prep.polarity`` tells), before anything else, so
    every dataset's films reach the model the same way round.

    ``keep_aspect``: True (the default) shrinks the crop so its long side is the size and pads
    the short side with black (columns on the right, away from the chest wall when ``orient``
    is on; rows split above and below), so a circle stays a circle and lesion radii map
    exactly. False stretches the crop to a square; centres still map exactly, but a radius
    then maps through the geometric mean of the two axis scales.
    """

    normalise: bool = True
    clahe: bool = True
    clahe_clip: float = 2.0
    clahe_grid: int = 8
    crop_to_breast: bool = True
    orient: bool = True
    keep_aspect: bool = True
    fix_inverted: bool = True

    def __post_init__(self) -> None:
        for name in ("normalise", "clahe", "crop_to_breast", "orient", "keep_aspect",
                     "fix_inverted"):
            if not isinstance(getattr(self, name), bool):
                raise BadConfigError(f"prep config: {name} must be true or false, "
                                     f"got {getattr(self, name)!r}")
        if not _is_number(self.clahe_clip) or not self.clahe_clip > 0:
            raise BadConfigError(f"prep config: clahe_clip must be a positive number, "
                                 f"got {self.clahe_clip!r}")
        if not _is_int(self.clahe_grid) or self.clahe_grid < 1:
            raise BadConfigError(f"prep config: clahe_grid must be a positive integer, "
                                 f"got {self.clahe_grid!r}")

    def sized(self, size: int | None) -> PrepConfig:
        """These steps making ``size`` x ``size`` inputs (``None``: the crop's own size)."""
        steps = {f.name: getattr(self, f.name) for f in fields(PrepSteps)}
        return PrepConfig(size=size, **steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        reject_unknown_settings(cls, data, "prep config")
        return cls(**data)


@dataclass(frozen=True)
class PrepConfig(PrepSteps):
    """How films become model inputs: the steps and the output side ``size`` (``None``: no
    resize, for a single film; stacking films needs a size)."""

    size: int | None = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size is not None and (not _is_int(self.size) or self.size < 1):
            raise BadConfigError(f"prep config: size must be a positive integer or null, "
                                 f"got {self.size!r}")


@dataclass(frozen=True)
class Prepared:
    """A model input and the map from the original film grid onto it; ``inverted`` says the
    film was stored inverted and its grey levels were mirrored first (geometry unchanged)."""

    image: np.ndarray  # uint8, 2-D
    transform: Transform
    inverted: bool = False


@dataclass(frozen=True, eq=False)
class Look:
    """One look at a film: the film the right way round, the polarity check that decided it,
    the small copy segmentation uses and the breast mask found on it.

    Taken once per film (``look_at``) and handed to whoever needs it: prediction sets the
    film upright with it, checks that it looks like a mammogram on its mask and preprocesses
    it, without shrinking, checking or segmenting the film a second or third time (on a
    4,600 x 2,700 film each of those passes costs tens of milliseconds).
    """

    pixels: np.ndarray  # the film, its grey levels mirrored when it was found inverted
    polarity: Polarity | None  # None: not checked (``fix_inverted`` off)
    small: np.ndarray  # ``pixels`` with the long side ``SEGMENT_SIDE``, the film's dtype
    stretched: np.ndarray  # ``small`` as uint8 spread between the normalising percentiles
    mask: np.ndarray  # the breast on ``small``'s grid (bool)
    small_to_film: Transform  # ``small``'s grid onto the film's

    @property
    def inverted(self) -> bool:
        """Whether the film was stored inverted and ``pixels`` are mirrored."""
        return self.polarity is not None and self.polarity.inverted


def look_at(pixels: np.ndarray, fix_inverted: bool = True, source: str | Path = "<array>") -> Look:
    """Shrink the film once, check its polarity (when ``fix_inverted``; a film found
    inverted is mirrored within its own range, and its small copy within the same range),
    and segment the breast on the small copy."""
    _check_pixels(pixels, source)
    small, small_to_film = _shrink(pixels)
    stretched = _stretch(small)
    polarity = polarity_of(stretched) if fix_inverted else None
    if polarity is not None and polarity.inverted:
        low, high = int(pixels.min()), int(pixels.max())
        pixels, small = mirror(pixels, low, high), mirror(small, low, high)
        stretched = _stretch(small)
    return Look(pixels, polarity, small, stretched, _segment(stretched), small_to_film)


def preprocess(pixels: np.ndarray, config: PrepConfig, source: str | Path = "<array>",
               look: Look | None = None, chest_wall_right: bool | None = None) -> Prepared:
    """Turn one film's pixels (2-D uint8 or uint16) into a model input.

    ``source`` only names the film in error messages. ``look``: the film's ``look_at``,
    when the caller has taken it already (for the polarity or the mask); its polarity
    decision then stands, and ``pixels`` only has to be of its shape. ``chest_wall_right``:
    the side the film's header says the chest wall is on
    (``core.films.chest_wall_on_right_by_header``); None reads it from the breast mask.
    """
    if look is None:
        look = look_at(pixels, config.fix_inverted, source)
    else:
        _check_pixels(pixels, source)
        if pixels.shape != look.pixels.shape:
            raise ValueError(f"a look at a {look.pixels.shape} film cannot prepare a "
                             f"{pixels.shape} one")
    pixels, small, mask, small_to_film = look.pixels, look.small, look.mask, look.small_to_film
    inverted = look.inverted

    transform = Transform.identity(pixels.shape)
    image = pixels
    if config.crop_to_breast:
        if not mask.any():
            raise BadFilmError(source, "no breast found: the film is blank")
        step = Transform.crop(pixels.shape, *_bounding_box(mask, small_to_film))
        image, transform = step.cut(image), transform.then(step)
    if config.size is not None:
        step = _fit(image.shape, config.size, config.keep_aspect)
        shrinking = step.dst_shape[0] * step.dst_shape[1] < image.shape[0] * image.shape[1]
        image = cv2.resize(image, step.dst_shape[::-1],
                           interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        transform = transform.then(step)
    if chest_wall_right is None:
        chest_wall_right = chest_wall_on_right(mask)
    if config.orient and chest_wall_right:
        step = Transform.flip_horizontal(image.shape)
        image = cv2.flip(image, 1)
        transform = transform.then(step)

    image = _to_uint8(image, small, mask, config.normalise)
    if config.crop_to_breast:
        breast = small_to_film.then(transform).apply(mask.view(np.uint8) * np.uint8(255)) > 127
        image[~breast] = 0
    if config.clahe:
        clahe = cv2.createCLAHE(clipLimit=config.clahe_clip,
                                tileGridSize=(config.clahe_grid, config.clahe_grid))
        image = clahe.apply(image)
        if config.crop_to_breast:  # CLAHE lifts all-black tiles to grey
            image[~breast] = 0

    if config.size is not None and config.keep_aspect:
        # Padding is a crop with a negative offset: rows centred, columns on the right.
        top = (config.size - image.shape[0]) // 2
        step = Transform.crop(image.shape, -top, 0, config.size, config.size)
        image, transform = step.cut(image), transform.then(step)
    return Prepared(np.ascontiguousarray(image), transform, inverted)


def prepare_film(film: Film, config: PrepConfig, source: str | Path | None = None,
                 look: Look | None = None) -> Prepared:
    """``preprocess`` for a film as read, where its header may say more than its pixels: a
    DICOM's Patient Orientation decides the chest wall's side
    (``core.films.chest_wall_on_right_by_header``), the breast mask otherwise. Every reader
    of a film file prepares it through here, so that decision has one place."""
    return preprocess(film.pixels, config, source if source is not None else film.name,
                      look=look, chest_wall_right=chest_wall_on_right_by_header(film))


def preprocess_files(paths: Sequence[str | Path], config: PrepConfig, workers: int | None = None,
                     failures: list[str] | None = None, inverted: list[int] | None = None,
                     ) -> tuple[np.ndarray, list[Transform | None]]:
    """Read and preprocess films in parallel into one uint8 ``[N, size, size]`` array.

    A bad film raises ``BadFilmError``, unless a ``failures`` list is given: then its message
    is appended there, its row stays black and its transform is ``None``, and the other films
    go on (one corrupt file must not cost a whole dataset). The indices of films found stored
    inverted (and mirrored, ``fix_inverted``) are appended to ``inverted`` when it is given.

    Threads, not processes: OpenCV's decoders and image functions release the GIL, and
    threads write straight into the preallocated output, so memory holds the output plus
    one film per worker. OpenCV's own thread pool is cut to one thread meanwhile, since
    the films already keep every core busy and nested pools only add switching.
    """
    if config.size is None:
        raise BadConfigError("prep config: stacking films needs a fixed size, but size is null")
    paths = list(paths)
    images = np.empty((len(paths), config.size, config.size), np.uint8)
    transforms: list[Transform | None] = [None] * len(paths)

    def one(index: int) -> None:
        try:
            prepared = prepare_film(read_film(paths[index]), config, source=paths[index])
        except BadFilmError as error:
            if failures is None:
                raise
            failures.append(str(error))
            images[index] = 0
            return
        images[index] = prepared.image
        transforms[index] = prepared.transform
        if prepared.inverted and inverted is not None:
            inverted.append(index)  # list.append is atomic under the GIL

    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            list(pool.map(one, range(len(paths))))
    finally:
        cv2.setNumThreads(opencv_threads)
    return images, transforms


# -- polarity -------------------------------------------------------------------------------------
def film_polarity(pixels: np.ndarray) -> Polarity:
    """Whether a film's pixels are stored inverted, judged on the copy ``preprocess`` uses."""
    _check_pixels(pixels, "<array>")
    return polarity_of(_stretch(_shrink(pixels)[0]))


def upright(film: Film, look: Look | None = None) -> Film:
    """The film the right way round, for whoever shows or measures a film outside
    ``preprocess`` (thumbnails, overlays, breast masks), so it looks like the model's input.

    ``metadata["polarity"]`` records the check (``Polarity.to_dict``); an inverted film comes
    back with its grey levels mirrored within its own range, its depth and size unchanged.
    ``look``: the film's ``look_at`` (with its polarity checked), when the caller has it, so
    the check is not made twice.
    """
    if look is None:
        polarity = film_polarity(film.pixels)
        pixels = mirror(film.pixels) if polarity.inverted else film.pixels
    else:
        if look.polarity is None or look.pixels.shape != film.pixels.shape:
            raise ValueError("upright needs a look at this film with its polarity checked")
        polarity, pixels = look.polarity, look.pixels
    metadata = {**film.metadata, "polarity": polarity.to_dict()}
    return replace(film, pixels=pixels, metadata=metadata)


# -- segmentation and orientation ---------------------------------------------------------------
def breast_mask(pixels: np.ndarray | Look) -> np.ndarray:
    """Where the breast is, on the film's own grid (bool, same shape as the film).

    Computed on a copy whose long side is ``SEGMENT_SIDE`` and scaled back up, so it is cheap
    on any film; ``preprocess`` uses the small mask directly. Given a ``Look`` (``look_at``:
    the film's polarity checked in the same pass), its mask is the one scaled up.
    """
    look = pixels if isinstance(pixels, Look) else look_at(pixels, fix_inverted=False)
    mask = look.mask.view(np.uint8) * np.uint8(255)
    return look.small_to_film.apply(mask) > 127


def chest_wall_on_right(mask_or_pixels: np.ndarray) -> bool:
    """True when the chest wall is on the image's right.

    The breast is widest where it leaves the chest wall and tapers to the nipple, so the half
    of its bounding box nearer the chest wall holds more of it. Films whose breast fills the
    whole frame (2 of the 256 mini-MIAS films) give no such cue and may be guessed wrong.
    Takes a breast mask (bool) or a film's pixels (segmented first).
    """
    mask = mask_or_pixels
    if mask.dtype != bool:
        _check_pixels(mask, "<array>")
        mask = _segment(_stretch(_shrink(mask)[0]))
    columns = mask.sum(axis=0)
    occupied = np.flatnonzero(columns)
    if occupied.size == 0:
        return False
    first, last = occupied[0], occupied[-1]
    middle = (first + last) / 2.0
    centroid = float(np.dot(np.arange(columns.size), columns) / columns.sum())
    return centroid > middle


def _segment(small: np.ndarray) -> np.ndarray:
    """Breast mask of a small uint8 film: threshold, open, keep the largest blob, fill holes.

    The threshold must sit just above the film's background, not between fat and gland as
    Otsu's does (that cuts away the dim skin-line rim of fatty breasts). Scanners pad with
    exact zeros, and the exposed film around the breast forms a dark peak just above zero:
    the triangle method on the lit pixels darker than Otsu's split finds the knee where that
    peak ends. When there is no such peak (the breast meets the zero padding directly), the
    triangle lands on the rising flank of the fat instead, below the dark part's mode; then
    Otsu's split between the zeros and that dark part is used, unless the film is digital
    (``_background_level`` says how that is told and why it needs a lower threshold).
    Opening detaches labels and markers joined to the breast by thin bridges.
    """
    lit = small[small > 0]
    if lit.size == 0:
        return np.zeros(small.shape, bool)
    level, at_foot = _background_level(small, lit)
    binary = (small > level).view(np.uint8)

    side = max(3, (max(small.shape) // 28) | 1)  # ~9 px at 256: a label's bridge is thinner
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    opened = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)
    count, labels = cv2.connectedComponents(opened, connectivity=8)
    if count < 2:
        return np.zeros(small.shape, bool)
    largest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    blob = (labels == largest).view(np.uint8)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    if at_foot:  # below the skin line's fall-off already: the rim is in
        return filled.astype(bool)
    # The threshold sits on the skin line's fall-off; one more pixel keeps the whole rim.
    return cv2.dilate(filled, np.ones((3, 3), np.uint8)).astype(bool)


def _background_level(small: np.ndarray, lit: np.ndarray) -> tuple[float, bool]:
    """The grey level just above the film's background (see ``_segment``), and whether it
    lies at the foot of the skin line's fall-off rather than on it. With a single lit level
    (a flat object on black) everything lit is foreground.

    Digital films exported on a black background (the RSNA export) have no dark peak above
    zero either, and nothing lit around the breast: between their exact-zero background and
    the tissue lies only the skin line's fall-off, a rim a pixel or two wide. There Otsu's
    split between the zeros and the dark part falls inside the fat, whose levels reach far
    down, and cuts the fatty part of the breast away (on about 1,600 of the export's 2,711
    films). So when the dark part has no peak near zero (its mode at ``PEAK_LEVEL`` or above,
    or the triangle below it) and the film lies on a black background (``_black_background``),
    the threshold is the foot of the zeros' peak: the triangle knee of the levels up to
    Otsu's split, zeros included; the rim is then inside the mask, which is not widened by
    the pixel ``_segment`` adds otherwise. Anything else keeps the rule above: a scanned
    film whose exposed background is lit (mini-MIAS mdb257, the one MIAS film without a
    dark peak), a lesion crop (no background at all).
    """
    if int(lit.min()) == int(lit.max()):
        return 0.0, False
    split, _ = cv2.threshold(lit.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = lit[lit <= split]
    knee, _ = cv2.threshold(dark.reshape(-1, 1), 0, 255,
                            cv2.THRESH_BINARY + cv2.THRESH_TRIANGLE)
    mode = np.bincount(dark).argmax()
    unlit = small[small <= split].reshape(-1, 1)
    if (knee < mode or mode >= PEAK_LEVEL) and _black_background(small):
        foot, _ = cv2.threshold(unlit, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_TRIANGLE)
        return float(foot), True
    if knee < mode:
        knee, _ = cv2.threshold(unlit, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(knee), False


def _black_background(small: np.ndarray) -> bool:
    """Whether the film lies on a black background with nothing lit around the breast but
    the skin line's fall-off: a share of it at exactly zero (``BLACK_SHARE``: not a lesion
    crop inside the breast), its lowest lit levels holding that fall-off (``RIM_SHARE``: a
    hard edge, as a drawn breast or a zero-padded crop has, leaves every threshold in the
    empty gap alike, so the usual rule stands) and forming no region, as a scanned film's
    lit exposed background does (``LIT_REGION``)."""
    if (small == 0).mean() < BLACK_SHARE:
        return False
    floor = ((small > 0) & (small <= FLOOR_LEVELS)).view(np.uint8)
    if floor.mean() < RIM_SHARE:
        return False
    cross = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    return cv2.morphologyEx(floor, cv2.MORPH_OPEN, cross).mean() < LIT_REGION


def _shrink(pixels: np.ndarray) -> tuple[np.ndarray, Transform]:
    """The segmentation copy (long side ``SEGMENT_SIDE``, never enlarged) and the map from
    its grid back onto the film's."""
    to_small = Transform.fit_long_side(pixels.shape, SEGMENT_SIDE, enlarge=False)
    small = cv2.resize(pixels, to_small.dst_shape[::-1], interpolation=cv2.INTER_AREA)
    # Built rather than inverted: a resize's own matrix is exact where an inverse may not be.
    return small, Transform.resize(to_small.dst_shape, pixels.shape)


def _bounding_box(mask: np.ndarray, small_to_film: Transform) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the film pixels the small mask's box touches."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    # Outer pixel edges of the box on the small grid, mapped onto the film grid.
    corners = small_to_film.forward([[rows[0] - 0.5, cols[0] - 0.5],
                                     [rows[-1] + 0.5, cols[-1] + 0.5]])
    film_rows, film_cols = small_to_film.dst_shape
    top = max(0, int(np.floor(corners[0, 0] + 0.5)))
    left = max(0, int(np.floor(corners[0, 1] + 0.5)))
    bottom = min(film_rows, int(np.ceil(corners[1, 0] + 0.5)))
    right = min(film_cols, int(np.ceil(corners[1, 1] + 0.5)))
    return top, left, bottom - top, right - left


def _fit(shape: tuple[int, ...], size: int, keep_aspect: bool) -> Transform:
    """The resize onto the model input: long side ``size`` (padded square later), or
    stretched to ``size`` x ``size``."""
    if keep_aspect:
        return Transform.fit_long_side(shape, size)
    return Transform.resize(shape, (size, size))


# -- intensities --------------------------------------------------------------------------------
def _stretch(small: np.ndarray) -> np.ndarray:
    """Any-depth small copy as uint8 spread over 0-255, for thresholding."""
    low, high = _percentiles(small, NORMALISE_PERCENTILES)
    return _lookup(small, low, high)


def _to_uint8(image: np.ndarray, small: np.ndarray, mask: np.ndarray,
              normalise: bool) -> np.ndarray:
    """Map intensities to uint8 (always a fresh array: later steps write into it).

    With ``normalise`` the black point is a low percentile of the whole film (its
    background) and the white point a high percentile of the breast alone, so labels and
    markers, brighter than any tissue, do not squash the tissue's range. Without it, 8-bit
    films are kept as they are and deeper ones scaled by their bit depth (read from their
    maximum: a 12-bit film stored in 16 bits fills the range like an 8-bit one).
    """
    if normalise:
        low, _ = _percentiles(small, NORMALISE_PERCENTILES)
        breast = small[mask] if mask.any() else small
        _, high = _percentiles(breast, NORMALISE_PERCENTILES)
        return _lookup(image, low, high)
    if image.dtype == np.uint8:
        return image.copy()
    bits = max(8, int(small.max()).bit_length(), int(image.max()).bit_length())
    return _lookup(image, 0, (1 << bits) - 1)


def _percentiles(values: np.ndarray, percents: Sequence[float]) -> list[int]:
    """Percentiles of integer pixels from their histogram (a sort costs far more)."""
    counts = np.bincount(values.ravel())
    cumulative = np.cumsum(counts)
    return [int(np.searchsorted(cumulative, p / 100.0 * cumulative[-1])) for p in percents]


def _lookup(image: np.ndarray, low: int, high: int) -> np.ndarray:
    """Linear map of ``low..high`` onto 0..255, clipped, through a lookup table."""
    high = max(high, low + 1)
    levels = np.arange(256 if image.dtype == np.uint8 else 65536, dtype=np.float32)
    table = np.clip((levels - low) * (255.0 / (high - low)), 0, 255).round().astype(np.uint8)
    if image.dtype == np.uint8:
        return cv2.LUT(image, table)
    return table[image]


# -- checks ---------------------------------------------------------------------------------------
def _check_pixels(pixels: Any, source: str | Path) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 2 or min(pixels.shape) < 1:
        shape = getattr(pixels, "shape", type(pixels).__name__)
        raise BadFilmError(source, f"pixels must be a non-empty 2-D array, got {shape}")
    if pixels.dtype not in SUPPORTED_DTYPES:
        raise BadFilmError(source, f"pixels must be uint8 or uint16, got {pixels.dtype}")

