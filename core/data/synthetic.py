"""Synthetic mammograms in the MIAS layout. THESE ARE NOT REAL MAMMOGRAMS.

They exist so that the app has something to show a user without data, so that tests run in
seconds, and so that a model can be shown to learn and to point at the right place: every
lesion's true class, severity, centre and radius are known exactly. ``generate`` writes
``mdbNNN.pgm`` films and an ``Info.txt`` that the real MIAS loader reads unchanged; the first
line of that file (``SYNTHETIC_MARKER``) and a comment in every film's header say what they are.

What a film looks like, and why:

* MLO view as MIAS shows it: the chest wall is a vertical edge on the left of a left film
  (even number) and on the right of a right film (odd number, mirrored). The breast is a
  half-ellipse-like outline against it, with black padding behind the chest wall and beyond
  the skin line, and the pectoral muscle is a bright triangle in the top corner on the
  chest-wall side. A bright "SYNTHETIC" label sits in the background's top outer corner, as
  the film labels of real MIAS films do, so that breast segmentation has to ignore it.
* Tissue is filtered noise at several scales: broad glandular patches, thin curvilinear
  strands converging on the nipple, and fine mottle, all fading toward the skin line where
  the compressed breast is thinner. The tissue letter sets how much is glandular (bright):
  ``F`` fatty (dark, few patches), ``G`` fatty-glandular, ``D`` dense (bright, mostly gland).
* A patient's two films share one anatomy: the same outline and texture noise, mirrored, with
  small differences (compression, position, a little texture of their own). An ``ASYM`` is
  therefore a real difference between the sides: lesions of the two films of a patient never
  overlap once mirrored, so the partner of an asymmetry has no density where it sits.

The seven classes, each with a circle that encloses all of it (every lesion layer is
windowed to zero at its radius) and a centre inside the breast, clear of the pectoral muscle
and the film's edge:

* ``CALC``: a cluster of small bright specks.
* ``CIRC``: a round or oval mass with a sharp margin.
* ``SPIC``: a small mass with thin lines (spicules) radiating from it.
* ``MISC``: an ill-defined mass whose margin blurs into the tissue.
* ``ARCH``: thin lines radiating from a point with no central mass, the surrounding tissue
  pulled toward that point.
* ``ASYM``: a broad, soft, tissue-textured density in one film and not in the other.
* ``NORM``: nothing.

Severity rule (the pictures show it):

* ``SPIC`` is always malignant and ``CIRC`` always benign.
* ``CALC``, ``MISC``, ``ARCH`` and ``ASYM`` are benign or malignant with equal chance; the
  severity fixes an *irregularity* drawn from [0, 0.4] (benign) or [0.6, 1] (malignant),
  so the two never overlap, and the irregularity drives what is drawn:
  ``CALC`` malignant has many (12-30) small, elongated or branching specks, benign few (4-9)
  larger round ones; ``MISC`` malignant is lobulated with a fuzzier margin, benign nearly
  round; ``ARCH`` malignant has more, longer, brighter lines and a stronger pull on the
  tissue; ``ASYM`` malignant is denser, more compact and more irregular, benign faint and
  diffuse.

Lesion radii follow the MIAS ``Info.txt`` medians at 1024 px (ARCH 61, CIRC 46, MISC 39,
SPIC 47) with a log-normal spread; CALC clusters (MIAS 23) are drawn at 30 so that their
specks stay apart on 256 px films, and asymmetries (MIAS 43) at 50, a broad density.

Everything is in units of the film's side until it is drawn, so a spec renders the same film
at any size, and ``render_film`` is a pure function of the spec and the size.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from core.data.records import MIAS_CLASSES, NORMAL_CLASS, SYNTHETIC_MARKER
from core.errors import BadConfigError
from core.geometry import Lesion, Transform

#: The MIAS frame that Info.txt coordinates live in, whatever size the films are.
MIAS_FRAME = 1024
MIN_SIZE = 64
MAX_FILMS = 999  # mdbNNN has three digits
TISSUE_LETTERS = ("F", "G", "D")

#: Lesion radius at 1024 px: (median, smallest, largest). Medians from MIAS Info.txt except
#: CALC (MIAS 23), drawn larger so that specks stay separable at 256 px, and ASYM (MIAS 43),
#: drawn a little larger because it is a broad density rather than a mass.
RADIUS_1024: dict[str, tuple[float, float, float]] = {
    "ARCH": (61.0, 34.0, 100.0),
    "ASYM": (50.0, 34.0, 100.0),
    "CALC": (30.0, 20.0, 48.0),
    "CIRC": (46.0, 24.0, 80.0),
    "MISC": (39.0, 26.0, 80.0),
    "SPIC": (47.0, 30.0, 90.0),
}
#: Benign irregularities are drawn below the gap, malignant ones above it.
BENIGN_IRREGULARITY = (0.0, 0.4)
MALIGNANT_IRREGULARITY = (0.6, 1.0)

#: Tissue letter -> (fat brightness, glandular threshold in noise s.d., glandular gain,
#: strand gain). A lower threshold makes more of the breast glandular.
TISSUE_LOOK: dict[str, tuple[float, float, float, float]] = {
    "F": (88.0, 1.3, 55.0, 30.0),
    "G": (100.0, 0.3, 75.0, 22.0),
    "D": (112.0, -0.6, 88.0, 14.0),
}
FILM_HEADER_COMMENT = "SYNTHETIC FILM - not a real mammogram"


# ---------------------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Anatomy:
    """A breast as one film shows it, in units of the film side, chest wall on the left.

    Both films of a patient carry the same ``seed`` (so the same texture) and nearly the
    same shape; a right film is drawn from it mirrored.
    """

    seed: int
    tissue: str
    chest: float  # column of the chest wall
    depth: float  # chest wall to nipple
    nipple: float  # row of the nipple
    top: float  # row where the outline would meet the chest wall above (< 0: off the film)
    bottom: float  # row where the outline meets the chest wall below
    roundness: float  # superellipse exponent of the outline
    pectoral_width: float  # along the top edge, from the chest wall
    pectoral_height: float  # down the chest wall
    pectoral_bow: float  # exponent of the muscle's edge (< 1 bulges out)
    hub: tuple[float, float]  # (row, col) where ducts converge: the patient's nipple, kept
    # when a film's compression moves its outline, so that both films share the texture


@dataclass(frozen=True)
class LesionSpec:
    """One abnormality; ``center`` is (row, col) and ``radius`` in units of the film side,
    in the chest-wall-left frame of ``Anatomy``."""

    kind: str
    severity: str
    center: tuple[float, float]
    radius: float
    irregularity: float
    seed: int


@dataclass(frozen=True)
class FilmSpec:
    """Everything needed to draw one film; ``render_film`` is a pure function of it."""

    number: int  # the NNN of mdbNNN
    label: str  # one of MIAS_CLASSES
    severity: str | None
    anatomy: Anatomy
    lesion: LesionSpec | None
    seed: int  # this film's own noise (grain, its share of the texture, the label)

    @property
    def film_id(self) -> str:
        return f"mdb{self.number:03d}"

    @property
    def side(self) -> str:
        """MIAS: odd numbers are right films, even numbers left."""
        return "R" if self.number % 2 else "L"

    @property
    def tissue(self) -> str:
        return self.anatomy.tissue

    def center_px(self, size: int) -> tuple[float, float] | None:
        """The lesion centre as (row, col) in pixels of a ``size`` film, or None (NORM)."""
        if self.lesion is None:
            return None
        row, col = self.lesion.center
        return _to_px(row, size), _to_px(col if self.side == "L" else 1.0 - col, size)

    def radius_px(self, size: int) -> float | None:
        return None if self.lesion is None else self.lesion.radius * size


def _to_px(unit: float, size: int) -> float:
    """Film-side units to pixel coordinates (pixel centres at integers, as geometry.py)."""
    return unit * size - 0.5


def make_specs(n: int, seed: int = 0) -> list[FilmSpec]:
    """The specs of films mdb001..mdbNNN: classes balanced over the seven and shuffled,
    films paired into patients (odd right, even left) who share one anatomy."""
    _check_count(n)
    rng = np.random.default_rng(seed)
    labels = [MIAS_CLASSES[i % len(MIAS_CLASSES)] for i in range(n)]
    labels = [labels[i] for i in rng.permutation(n)]
    specs: list[FilmSpec] = []
    for first in range(1, n + 1, 2):
        numbers = [num for num in (first, first + 1) if num <= n]
        patient = _draw_anatomy(rng)
        anatomies = [_jitter(patient, rng) for _ in numbers]
        allowed = _lesion_room(anatomies)
        placed: list[LesionSpec] = []
        for num, anatomy in zip(numbers, anatomies):
            label = labels[num - 1]
            severity, lesion = _draw_lesion(label, allowed, placed, rng)
            if lesion is not None:
                placed.append(lesion)
            specs.append(FilmSpec(num, label, severity, anatomy, lesion,
                                  int(rng.integers(2**32))))
    return specs


def _draw_anatomy(rng: np.random.Generator) -> Anatomy:
    chest = rng.uniform(0.08, 0.22)
    depth = min(rng.uniform(0.36, 0.60), 0.90 - chest)
    nipple = rng.uniform(0.48, 0.62)
    top = rng.uniform(-0.40, -0.08)
    roundness = rng.uniform(1.8, 2.6)
    # The muscle must stay inside the outline where it meets the top edge.
    u_top = nipple / (nipple - top)
    width_at_top = depth * (1.0 - u_top**roundness) ** (1.0 / roundness)
    return Anatomy(
        seed=int(rng.integers(2**32)),
        tissue=str(rng.choice(TISSUE_LETTERS)),
        chest=chest, depth=depth, nipple=nipple, top=top,
        bottom=rng.uniform(0.90, 0.99), roundness=roundness,
        pectoral_width=min(rng.uniform(0.12, 0.30), 0.8 * width_at_top),
        pectoral_height=rng.uniform(0.25, 0.50),
        pectoral_bow=rng.uniform(0.75, 1.25),
        hub=(nipple, chest + depth),
    )


def _jitter(anatomy: Anatomy, rng: np.random.Generator) -> Anatomy:
    """The same breast on another film: compressed and positioned a little differently."""
    return replace(
        anatomy,
        chest=anatomy.chest + rng.uniform(-0.01, 0.01),
        depth=anatomy.depth * rng.uniform(0.97, 1.03),
        nipple=anatomy.nipple + rng.uniform(-0.012, 0.012),
        top=anatomy.top + rng.uniform(-0.02, 0.02),
        bottom=anatomy.bottom + rng.uniform(-0.008, 0.008),
        pectoral_width=anatomy.pectoral_width * rng.uniform(0.93, 1.07),
        pectoral_height=anatomy.pectoral_height * rng.uniform(0.93, 1.07),
    )


_ROOM_GRID = 256


def _lesion_room(anatomies: list[Anatomy]) -> np.ndarray:
    """Distance (film-side units) from each point of a coarse grid to the nearest place a
    lesion may not reach in any film of the patient: skin, chest wall, muscle, film edge."""
    inside = np.ones((_ROOM_GRID, _ROOM_GRID), bool)
    for anatomy in anatomies:
        frame = _Frame(anatomy, _ROOM_GRID)
        inside &= frame.breast() & (frame.pectoral_alpha(edge_px=0.5) < 0.5)
    padded = cv2.copyMakeBorder(inside.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1] / _ROOM_GRID


def _draw_lesion(label: str, room: np.ndarray, placed: list[LesionSpec],
                 rng: np.random.Generator) -> tuple[str | None, LesionSpec | None]:
    if label == NORMAL_CLASS:
        return None, None
    if label == "SPIC":
        severity = "M"
    elif label == "CIRC":
        severity = "B"
    else:
        severity = "M" if rng.random() < 0.5 else "B"
    low, high = MALIGNANT_IRREGULARITY if severity == "M" else BENIGN_IRREGULARITY
    irregularity = rng.uniform(low, high)
    median, smallest, largest = RADIUS_1024[label]
    radius = float(np.clip(median * math.exp(rng.normal(0.0, 0.3)), smallest, largest))
    radius /= MIAS_FRAME
    grid = (np.arange(_ROOM_GRID) + 0.5) / _ROOM_GRID
    while True:
        ok = room >= radius * 1.05 + 2.0 / _ROOM_GRID
        for other in placed:  # the patient's other film: keep the mirrored lesions apart
            dist = np.hypot(grid[:, None] - other.center[0], grid[None, :] - other.center[1])
            ok &= dist >= radius + other.radius + 0.01
        rows, cols = np.nonzero(ok)
        if len(rows):
            break
        radius *= 0.85  # a small breast: shrink until the lesion fits
    pick = int(rng.integers(len(rows)))
    jitter = rng.uniform(-0.5, 0.5, 2) / _ROOM_GRID
    center = (float(grid[rows[pick]] + jitter[0]), float(grid[cols[pick]] + jitter[1]))
    return severity, LesionSpec(label, severity, center, radius, float(irregularity),
                                int(rng.integers(2**32)))


# ---------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------
class _Frame:
    """Pixel grids and the outline of one anatomy at one size (chest wall on the left)."""

    def __init__(self, anatomy: Anatomy, size: int) -> None:
        self.anatomy = anatomy
        self.size = size
        coords = ((np.arange(size) + 0.5) / size).astype(np.float32)
        self.v = coords[:, None]  # rows
        self.u = coords[None, :]  # cols
        self.width = self._width(coords)[:, None]

    def _width(self, v: np.ndarray) -> np.ndarray:
        a = self.anatomy
        above = v < a.nipple
        u = np.where(above, (a.nipple - v) / (a.nipple - a.top),
                     (v - a.nipple) / (a.bottom - a.nipple))
        u = np.clip(u, 0.0, 1.0)
        width = a.depth * (1.0 - u**a.roundness) ** (1.0 / a.roundness)
        # A gently wavy skin line, the same on both films of the patient.
        knots = np.random.default_rng([a.seed, 1]).normal(0.0, 1.0, (1, 8)).astype(np.float32)
        wobble = cv2.resize(knots, (len(v), 1), interpolation=cv2.INTER_CUBIC)[0]
        return (width * (1.0 + 0.012 * wobble)).astype(np.float32)

    def outline(self) -> np.ndarray:
        """Inside the skin line, ignoring the chest wall (so that distances are to skin)."""
        return (self.u - self.anatomy.chest < self.width) & (self.width > 0)

    def breast(self) -> np.ndarray:
        return self.outline() & (self.u > self.anatomy.chest)

    def pectoral_alpha(self, edge_px: float) -> np.ndarray:
        a = self.anatomy
        down = np.clip(1.0 - self.v / a.pectoral_height, 0.0, 1.0)
        reach = a.pectoral_width * down**a.pectoral_bow
        alpha = ((reach - (self.u - a.chest)) * self.size / edge_px + 0.5).astype(np.float32)
        return np.clip(alpha, 0.0, 1.0) * (reach > 0)


def film_masks(spec: FilmSpec, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The true breast (pectoral muscle included) and pectoral-muscle masks of a film, as
    drawn, in the film's own orientation: ground truth for segmentation and for checks."""
    frame = _Frame(spec.anatomy, size)
    breast = frame.breast()
    muscle = breast & (frame.pectoral_alpha(edge_px=max(1.0, 2.5 * size / MIAS_FRAME)) >= 0.5)
    if spec.side == "R":
        breast, muscle = breast[:, ::-1], muscle[:, ::-1]
    return np.ascontiguousarray(breast), np.ascontiguousarray(muscle)


def render_film(spec: FilmSpec, size: int) -> np.ndarray:
    """Draw one film as a ``size`` x ``size`` uint8 image; the same spec gives the same bytes."""
    if size < MIN_SIZE:
        raise BadConfigError(f"film size {size} is too small; use at least {MIN_SIZE} px")
    anatomy = spec.anatomy
    frame = _Frame(anatomy, size)
    own = np.random.default_rng([spec.seed, 2])
    px = size / MIAS_FRAME  # pixels per MIAS pixel: lengths below are set at 1024 px

    outline = frame.outline().astype(np.uint8)
    skin = cv2.distanceTransform(outline, cv2.DIST_L2, 5) / size  # film-side units
    fat, threshold, gland_gain, strand_gain = TISSUE_LOOK[anatomy.tissue]
    gland, strands, mottle, nipple_dist = _texture(frame, own)
    chest_dist = frame.u - anatomy.chest
    where = (_smoothstep(0.0, 0.07, skin) * _smoothstep(0.0, 0.08, chest_dist)
             * (1.0 - _smoothstep(0.75, 1.2, nipple_dist / anatomy.depth)))
    glandular = _smoothstep(threshold - 0.6, threshold + 0.9, gland) * where
    image = (fat + gland_gain * glandular + strand_gain * strands * (0.5 + 0.5 * where)
             + 7.0 * mottle).astype(np.float32)

    if spec.lesion is not None:
        image = _draw_lesion_on(image, spec.lesion, size, px, gland)

    thickness = 1.0 - np.exp(-skin / 0.06)
    image *= 0.3 + 0.7 * thickness
    pect = frame.pectoral_alpha(edge_px=max(1.0, 2.5 * px))
    muscle = (200.0 + 22.0 * (1.0 - frame.v / anatomy.pectoral_height)
              + 8.0 * _noise(np.random.default_rng([anatomy.seed, 3]), (16, 16), size))
    image = image * (1.0 - pect) + muscle * pect
    image *= frame.breast()
    image += 2.0  # film base fog
    image += own.standard_normal((size, size), dtype=np.float32) * 2.0  # grain
    film = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    if spec.side == "R":
        film = np.ascontiguousarray(film[:, ::-1])
    _stamp_label(film, frame.breast() if spec.side == "L" else frame.breast()[:, ::-1],
                 spec.side, own)
    return film


def _smoothstep(low: float, high: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - low) / (high - low), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _grid(rng: np.random.Generator, cells: tuple[int, int], blur: float = 1.0) -> np.ndarray:
    """A coarse grid of smoothed noise of unit s.d.; upsampling it gives the same pattern at
    every film size."""
    grid = rng.standard_normal(cells, dtype=np.float32)
    grid = cv2.GaussianBlur(grid, (0, 0), blur, borderType=cv2.BORDER_REFLECT)
    return grid / (grid.std() + 1e-6)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    shrinking = size < max(grid.shape)
    return cv2.resize(grid, (size, size),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def _noise(rng: np.random.Generator, cells: tuple[int, int], size: int) -> np.ndarray:
    return _upsample(_grid(rng, cells), size)


_SMOOTH_GRID = 64


def _texture(frame: _Frame, own: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Glandular field (s.d. ~1), strands (0..1), fine mottle and distance to the nipple.

    Most of each pattern comes from the patient's seed (shared by the two films) and a
    little from the film's own, so that the two sides look alike but not identical.
    """
    a, size = frame.anatomy, frame.size
    shared = np.random.default_rng([a.seed, 4])

    def mixed(cells: tuple[int, int], blur: float = 1.0, own_share: float = 0.3) -> np.ndarray:
        return (math.sqrt(1.0 - own_share**2) * _grid(shared, cells, blur)
                + own_share * _grid(own, cells, blur))

    # Polar coordinates about the nipple: ducts and ligaments converge on it.
    dy = frame.v - a.hub[0]
    dx = a.hub[1] - frame.u
    rho = np.sqrt(dy * dy + dx * dx)
    theta = np.arctan2(dy, dx) + 0.25 * _noise(shared, (6, 6), size)
    # Toward the nipple the polar grid crowds into a fan; fade polar patterns out there.
    away = _smoothstep(0.03, 0.2, rho)
    span = math.pi / 2 + 0.4

    def polar(grid: np.ndarray, enlarge: int) -> np.ndarray:
        # Enlarging the small grid first lets a cheap linear remap stay smooth.
        rows, cols = grid.shape[0] * enlarge, grid.shape[1] * enlarge
        grid = cv2.resize(grid, (cols, rows), interpolation=cv2.INTER_CUBIC)
        map_x = ((theta + span) * (cols / (2 * span)) - 0.5).astype(np.float32)
        map_y = (rho * rows - 0.5).astype(np.float32)
        return cv2.remap(grid, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def smooth(*layers: tuple[float, np.ndarray]) -> np.ndarray:
        """Sum smooth patterns on a small grid and enlarge once (fewer full-size resizes)."""
        total = sum(weight * _upsample(grid, _SMOOTH_GRID) for weight, grid in layers)
        return _upsample(total, size)

    # The glandular pattern is thresholded, which magnifies differences: keep the films'
    # own share of it small, so that only a lesion makes a broad difference between sides.
    gland = (smooth((1.0, mixed((6, 6), own_share=0.12)), (0.8, mixed((12, 12), own_share=0.12)),
                    (0.5, mixed((24, 24), own_share=0.12)))
             + 0.7 * away * polar(mixed((8, 48), 0.8, own_share=0.12), 4))
    gland /= gland.std() + 1e-6
    # Strands: thin ridges where a noise field crosses zero. Polar ridges run toward the
    # nipple (ducts); isotropic ones form the curved net of the ligaments. Patchy, and
    # faded near the nipple where the polar grid would crowd into a fan.
    ducts = polar(mixed((24, 150), 0.8), 2)
    net = _upsample(mixed((40, 40)), size)
    fine_net = _upsample(mixed((100, 100)), size)
    patchy = _upsample(0.5 + 0.5 * _smoothstep(-1.0, 1.0, _upsample(mixed((10, 10)), _SMOOTH_GRID)),
                       size)
    strands = (np.exp(-((ducts / 0.22) ** 2)) * away + 0.35 * np.exp(-((net / 0.15) ** 2))
               + 0.3 * np.exp(-((fine_net / 0.2) ** 2))) * patchy
    mottle = _upsample(mixed((128, 128)), size)
    return gland, strands, mottle, rho


def _disk_window(dist: np.ndarray, radius: float) -> np.ndarray:
    """1 inside 0.9 of the radius, 0 from the radius on: keeps every lesion in its circle."""
    return _smoothstep(radius, 0.9 * radius, dist)


def _lobulated(phi: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """A radius multiplier varying with angle: a few random lobes of total size ``amount``."""
    out = np.ones_like(phi)
    for k in range(2, 6):
        out += amount / 4.0 * rng.uniform(0.5, 1.0) * np.cos(k * phi + rng.uniform(0, 2 * math.pi))
    return out


def _draw_lesion_on(image: np.ndarray, lesion: LesionSpec, size: int, px: float,
                    gland: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng([lesion.seed, 5])
    cy, cx = _to_px(lesion.center[0], size), _to_px(lesion.center[1], size)
    radius = lesion.radius * size
    top, left = max(int(cy - radius) - 2, 0), max(int(cx - radius) - 2, 0)
    bottom, right = min(int(cy + radius) + 3, size), min(int(cx + radius) + 3, size)
    ys = np.arange(top, bottom, dtype=np.float32)[:, None] - cy
    xs = np.arange(left, right, dtype=np.float32)[None, :] - cx
    dist = np.sqrt(ys * ys + xs * xs)
    phi = np.arctan2(ys, xs)
    window = _disk_window(dist, radius)
    patch = image[top:bottom, left:right]
    q = lesion.irregularity
    kind = lesion.kind
    if kind == "CIRC":
        layer = _circ(ys, xs, radius, px, rng)
    elif kind == "MISC":
        layer = _misc(dist, phi, radius, q, rng)
    elif kind == "SPIC":
        layer = _spic(dist, phi, radius, px, (cy - top, cx - left), rng)
    elif kind == "ARCH":
        patch = _pull(patch, ys, xs, dist, radius, q, window)
        layer = _lines(dist.shape, (cy - top, cx - left), radius, px, rng,
                       count=int(8 + 10 * q), length=(0.55 + 0.25 * q, 0.95),
                       width=0.06 + 0.02 * q, start=(0.15, 0.4), gain=32.0 + 20.0 * q)
    elif kind == "ASYM":
        local = _smoothstep(-1.5, 1.5, gland[top:bottom, left:right])
        layer = _asym(dist, phi, radius, q, local, rng)
    elif kind == "CALC":
        layer = _calc(dist.shape, (cy - top, cx - left), radius, px, q, lesion.severity, rng)
    else:
        raise ValueError(f"no drawing for class {kind!r}")
    out = image.copy()
    out[top:bottom, left:right] = patch + layer * window
    return out


def _circ(ys: np.ndarray, xs: np.ndarray, radius: float, px: float,
          rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, math.pi)
    major = radius * rng.uniform(0.78, 0.86)
    minor = major * rng.uniform(0.8, 1.0)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    across = -xs * math.sin(angle) + ys * math.cos(angle)
    e = np.sqrt((along / major) ** 2 + (across / minor) ** 2)
    edge = np.clip((1.0 - e) * minor / max(1.0, 1.5 * px) + 0.5, 0.0, 1.0)
    dome = 0.7 + 0.3 * np.sqrt(np.clip(1.0 - e * e, 0.0, 1.0))
    return rng.uniform(55.0, 70.0) * edge * dome


def _misc(dist: np.ndarray, phi: np.ndarray, radius: float, q: float,
          rng: np.random.Generator) -> np.ndarray:
    outline = 0.55 * radius * _lobulated(phi, rng, 0.08 + 0.22 * q)
    soft = radius * (0.06 + 0.05 * q)
    body = 1.0 / (1.0 + np.exp((dist - outline) / soft))
    return rng.uniform(48.0, 60.0) * body


def _spic(dist: np.ndarray, phi: np.ndarray, radius: float, px: float,
          center: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    core_r = radius * rng.uniform(0.28, 0.36)
    outline = core_r * _lobulated(phi, rng, 0.2)
    core = 1.0 / (1.0 + np.exp((dist - outline) / (0.05 * core_r + 0.5)))
    lines = _lines(dist.shape, center, radius, px, rng, count=int(rng.integers(12, 22)),
                   length=(0.6, 0.97), width=0.09, start=(0.0, 0.0), gain=40.0)
    return rng.uniform(60.0, 72.0) * core + lines * (1.0 - core)


def _lines(shape: tuple[int, int], center: tuple[float, float], radius: float, px: float,
           rng: np.random.Generator, count: int, length: tuple[float, float], width: float,
           start: tuple[float, float], gain: float) -> np.ndarray:
    """Thin tapering lines radiating from ``center``, each of its own length, width and
    brightness, brighter near the centre."""
    canvas = np.zeros(shape, np.uint8)
    turn = rng.uniform(0, 2 * math.pi)
    for i in range(count):
        angle = turn + 2 * math.pi * (i + rng.uniform(-0.4, 0.4)) / count
        reach = radius * rng.uniform(*length)
        base = radius * rng.uniform(*start)
        half = max(0.6, radius * width * rng.uniform(0.5, 1.0) / 2)
        c, s = math.cos(angle), math.sin(angle)
        points = np.array([
            (center[1] + base * c - half * s, center[0] + base * s + half * c),
            (center[1] + reach * c, center[0] + reach * s),
            (center[1] + base * c + half * s, center[0] + base * s - half * c),
        ])
        line = np.zeros_like(canvas)
        cv2.fillConvexPoly(line, np.round(points * 16).astype(np.int32),  # 4-bit sub-pixel
                           int(rng.integers(150, 256)), lineType=cv2.LINE_AA, shift=4)
        np.maximum(canvas, line, out=canvas)
    layer = canvas.astype(np.float32) / 255.0
    layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, 0.8 * px))
    ys = np.arange(shape[0], dtype=np.float32)[:, None] - center[0]
    xs = np.arange(shape[1], dtype=np.float32)[None, :] - center[1]
    fall = 1.0 - 0.5 * np.sqrt(ys * ys + xs * xs) / radius
    return gain * layer * fall


def _pull(patch: np.ndarray, ys: np.ndarray, xs: np.ndarray, dist: np.ndarray, radius: float,
          q: float, window: np.ndarray) -> np.ndarray:
    """Retract the tissue toward the centre, as a distortion drags it."""
    strength = (0.35 + 0.35 * q) * np.exp(-((dist / (0.55 * radius)) ** 2)) * window
    map_x = (xs * (1.0 + strength)).astype(np.float32)
    map_y = (ys * (1.0 + strength)).astype(np.float32)
    cy, cx = -ys[0, 0], -xs[0, 0]
    return cv2.remap(patch, map_x + cx, map_y + cy, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def _asym(dist: np.ndarray, phi: np.ndarray, radius: float, q: float, local: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    outline = radius * (0.62 - 0.06 * q) * _lobulated(phi, rng, 0.1 + 0.25 * q)
    soft = radius * (0.13 - 0.04 * q)
    body = 1.0 / (1.0 + np.exp((dist - outline) / soft))
    return (58.0 + 14.0 * q) * body * (0.7 + 0.3 * local)


def _calc(shape: tuple[int, int], center: tuple[float, float], radius: float, px: float,
          q: float, severity: str, rng: np.random.Generator) -> np.ndarray:
    """A cluster: malignant many small irregular specks, benign few larger round ones."""
    malignant = severity == "M"
    count = int(12 + 18 * (q - 0.6) / 0.4) if malignant else int(4 + 6 * q / 0.4)
    spread = 0.78 * radius
    spacing = spread * (1.4 / math.sqrt(count))
    centres: list[tuple[float, float]] = []
    for _ in range(400):
        if len(centres) == count:
            break
        r = min(abs(rng.normal(0.0, 0.5 * spread)), spread)  # denser toward the middle
        a = rng.uniform(0, 2 * math.pi)
        point = (center[0] + r * math.sin(a), center[1] + r * math.cos(a))
        if all(math.hypot(point[0] - p[0], point[1] - p[1]) >= spacing for p in centres):
            centres.append(point)
    layer = np.zeros(shape, np.float32)
    ys = np.arange(shape[0], dtype=np.float32)[:, None]
    xs = np.arange(shape[1], dtype=np.float32)[None, :]
    for y0, x0 in centres:
        if malignant:
            sigma = rng.uniform(0.9, 1.6) * px
            aspect = rng.uniform(1.5, 3.0)
            peak = rng.uniform(85.0, 120.0)
            pieces = int(rng.integers(1, 4))  # linear / branching forms
        else:
            sigma = rng.uniform(2.2, 3.4) * px
            aspect = rng.uniform(1.0, 1.2)
            peak = rng.uniform(110.0, 140.0)
            pieces = 1
        angle = rng.uniform(0, math.pi)
        for piece in range(pieces):
            step = piece * 2.5 * sigma * aspect
            py, px0 = y0 + step * math.sin(angle), x0 + step * math.cos(angle)
            angle += rng.uniform(-0.6, 0.6)
            major = max(0.6, sigma * math.sqrt(aspect))
            minor = max(0.6, sigma / math.sqrt(aspect))
            dy, dx = ys - py, xs - px0
            along = dx * math.cos(angle) + dy * math.sin(angle)
            across = -dx * math.sin(angle) + dy * math.cos(angle)
            spot = peak * np.exp(-0.5 * ((along / major) ** 2 + (across / minor) ** 2))
            np.maximum(layer, spot, out=layer)
    return layer


_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _stamp_label(film: np.ndarray, breast: np.ndarray, side: str,
                 rng: np.random.Generator) -> None:
    """A bright film label with dark lettering in the top outer corner (real MIAS films
    carry one). It is left out if it would touch the breast."""
    size = film.shape[0]
    height, width = round(0.07 * size), round(0.16 * size)
    top = round(rng.uniform(0.01, 0.05) * size)
    margin = round(rng.uniform(0.02, 0.06) * size)
    left = size - margin - width if side == "L" else margin
    box = (slice(top, top + height), slice(left, left + width))
    guard = (slice(max(top - 4, 0), top + height + 4), slice(max(left - 4, 0), left + width + 4))
    if breast[guard].any():
        return
    label = np.full((height, width), int(rng.integers(225, 250)), np.uint8)
    scale = height / 70.0
    thickness = max(1, round(2 * scale))
    for line, text in enumerate(("SYNTHETIC", f"{side} MLO")):
        cv2.putText(label, text, (int(4 * scale) + 1, int((30 + 32 * line) * scale)), _FONT,
                    0.9 * scale, 40, thickness, cv2.LINE_AA)
    film[box] = label


# ---------------------------------------------------------------------------------------
# Writing a dataset
# ---------------------------------------------------------------------------------------
INFO_NAME = "Info.txt"
_FILM_STEM = re.compile(r"^mdb\d{3}\.", re.IGNORECASE)


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_FILMS:
        raise BadConfigError(f"number of synthetic films must be 1..{MAX_FILMS}, got {n!r}")


def info_text(specs: list[FilmSpec], seed: int, size: int) -> str:
    """Info.txt in the original MIAS layout, saying on its first line that it is synthetic."""
    lines = [
        (f"{SYNTHETIC_MARKER} - NOT REAL MAMMOGRAMS. Generated by core.data.synthetic "
         f"with seed {seed} and size {size}."),
        "",
        "Every film in this folder was drawn by a program. None shows a patient and none",
        "carries a diagnosis; use them for demonstrations and tests only.",
        "",
        "Layout as in the MIAS database README. Columns: reference number, background",
        "tissue (F fatty, G fatty-glandular, D dense-glandular), class (CALC CIRC SPIC MISC",
        "ARCH ASYM NORM), severity (B benign, M malignant), x and y of the centre of the",
        "abnormality and the radius in pixels of a circle enclosing it.",
        "x, y and the radius are in pixels of a 1024 x 1024 frame whose origin is the",
        f"bottom-left corner, whatever the size of the films (here {size} x {size}).",
        "Odd numbers are right films and even numbers left films; each odd/even pair is",
        "one synthetic patient.",
        "",
    ]
    to_mias = Transform.resize((size, size), (MIAS_FRAME, MIAS_FRAME))
    # (row, col) on the frame -> Info.txt's (y, x) from the bottom-left: the same flip that
    # the MIAS loader reads them back with.
    to_info = Transform.flip_vertical((MIAS_FRAME, MIAS_FRAME))
    for spec in specs:
        centre, radius = spec.center_px(size), spec.radius_px(size)
        if centre is None or radius is None:
            lines.append(f"{spec.film_id} {spec.tissue} {spec.label} ")
            continue
        row, col, r = to_mias.map_lesion(Lesion(centre, radius)).as_row()
        y, x = to_info.forward((row, col))
        lines.append(f"{spec.film_id} {spec.tissue} {spec.label} {spec.severity} "
                     f"{round(x)} {round(y)} {max(1, round(r))}")
    return "\n".join(lines) + "\n"


def pgm_bytes(film: np.ndarray, comment: str) -> bytes:
    """A binary (P5) 8-bit PGM with a comment line in its header."""
    rows, cols = film.shape
    return f"P5\n# {comment}\n{cols} {rows}\n255\n".encode("ascii") + film.tobytes()


#: How every film this module writes begins; it is how an earlier set is recognised.
_FILM_MAGIC = f"P5\n# {FILM_HEADER_COMMENT}".encode("ascii")


def generate(out_dir: str | Path, n: int, seed: int = 0, size: int = 1024,
             workers: int | None = None) -> Path:
    """Write mdb001.pgm..mdbNNN.pgm and Info.txt into ``out_dir``; return ``out_dir``.

    The bytes depend only on ``n``, ``seed`` and ``size``, never on ``workers``. A folder
    holding anything MIAS-like that this module did not write is refused, so that real data
    is never overwritten or mixed with synthetic films; synthetic films left over from an
    earlier, larger set are removed.
    """
    _check_count(n)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise BadConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_SIZE <= size <= 4096:
        raise BadConfigError(f"film size must be {MIN_SIZE}..4096 px, got {size!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise BadConfigError(f"workers must be a positive integer, got {workers!r}")
    out = Path(out_dir)
    earlier = _earlier_synthetic_films(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = make_specs(n, seed)
    wanted = {f"{spec.film_id}.pgm" for spec in specs}
    for stale in earlier:
        if stale.name not in wanted:
            stale.unlink()

    def write(spec: FilmSpec) -> None:
        comment = f"{FILM_HEADER_COMMENT}; core.data.synthetic seed {seed} {spec.film_id}"
        (out / f"{spec.film_id}.pgm").write_bytes(pgm_bytes(render_film(spec, size), comment))

    workers = workers or min(len(specs), os.cpu_count() or 1, 8)
    if workers == 1:
        for spec in specs:
            write(spec)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(write, specs))  # list(): surface any worker's exception
    (out / INFO_NAME).write_text(info_text(specs, seed, size), encoding="ascii")
    return out


def _earlier_synthetic_films(out: Path) -> list[Path]:
    """The films of an earlier synthetic set in ``out``; refuse a folder holding an Info.txt
    or an mdbNNN file that this module did not write."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise BadConfigError(f"{out}: exists and is not a folder")
    films: list[Path] = []
    foreign: list[str] = []
    for path in sorted(out.iterdir()):
        if path.name.lower() == INFO_NAME.lower():
            with path.open("rb") as handle:
                ours = handle.read(len(SYNTHETIC_MARKER)) == SYNTHETIC_MARKER.encode("ascii")
            if not ours or path.name != INFO_NAME:
                foreign.append(path.name)
        elif _FILM_STEM.match(path.name):
            with path.open("rb") as handle:
                ours = handle.read(len(_FILM_MAGIC)) == _FILM_MAGIC and path.suffix == ".pgm"
            if ours:
                films.append(path)
            else:
                foreign.append(path.name)
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise BadConfigError(f"{out}: holds MIAS files that are not synthetic ({shown}); "
                             "refusing to write synthetic films there")
    return films
