"""The one place that does coordinate arithmetic.

Every geometric step (crop to the breast, flip, resize, augmentation) is an affine map and
returns a ``Transform``. Lesion centres go forward through it for training and scoring;
heatmaps come back through it onto the original film for display. Composing transforms
keeps the whole chain exact, so no other module ever adds offsets or scale factors by hand.

Convention (the same as OpenCV's): a point is ``(row, col)`` and pixel centres sit at
integer coordinates, so pixel ``(0, 0)`` covers ``[-0.5, 0.5)`` in both axes. Resizing a
width ``W`` to ``w`` therefore maps ``x -> (x + 0.5) * w / W - 0.5``, which is what
``cv2.resize`` does, and ``Transform.apply`` (``cv2.warpAffine``) agrees with both.

A lesion has one shape, ``Lesion``, held here beside the maps that move it. Model code wants
a film's lesions as one ``(n, 3)`` float array of ``(row, col, radius)`` rows;
``lesions_to_array`` and ``lesions_from_array`` are the only conversions between the two.

This module is a bottom layer: from ``core`` it may import only errors and settings, so every
layer above (data, prep, models, render, evaluate) can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

Shape = tuple[int, int]
Point = tuple[float, float]


@dataclass(frozen=True)
class Lesion:
    """One annotated abnormality. ``center`` is ``None`` when the source gives no location
    (MIAS's ``*NOTE 3*`` calcifications spread over the whole breast, mdb059)."""

    center: Point | None  # (row, col) on the grid the lesion belongs to
    radius: float | None
    severity: str | None = None
    kind: str | None = None  # the abnormality's class or type, when the source has one

    @property
    def located(self) -> bool:
        return self.center is not None and self.radius is not None

    @classmethod
    def from_row(cls, row: Any, severity: str | None = None, kind: str | None = None) -> Lesion:
        """A lesion from one ``(row, col, radius)`` row of the array form."""
        values = np.asarray(row, dtype=float).reshape(-1)
        if values.shape != (3,):
            raise ValueError(f"a lesion row is (row, col, radius), got {np.shape(row)}")
        return cls((float(values[0]), float(values[1])), float(values[2]), severity, kind)

    def as_row(self) -> tuple[float, float, float]:
        """``(row, col, radius)``, one row of the array form; only a located lesion has one."""
        if self.center is None or self.radius is None:
            raise ValueError("a lesion without a location has no (row, col, radius) row")
        return float(self.center[0]), float(self.center[1]), float(self.radius)


def lesions_to_array(lesions: Iterable[Lesion], dtype: Any = np.float32) -> np.ndarray:
    """The located lesions as an ``(n, 3)`` array of ``(row, col, radius)`` (the form model
    code batches); lesions without a location have no row and are left out."""
    rows = [lesion.as_row() for lesion in lesions if lesion.located]
    if not rows:
        return np.zeros((0, 3), dtype)
    return np.asarray(rows, dtype=np.float64).astype(dtype)


def lesions_from_array(rows: Any) -> tuple[Lesion, ...]:
    """Lesions from an ``(n, 3)`` array-like of ``(row, col, radius)`` (empty gives none)."""
    array = np.asarray(rows, dtype=float)
    if array.size == 0:
        return ()
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"lesions must be (row, col, radius) rows, got shape {array.shape}")
    return tuple(Lesion.from_row(row) for row in array)


def nearest_pixel(point: Any) -> tuple[int, int]:
    """The pixel whose centre is nearest a ``(row, col)`` point (ties to even, as ``round``):
    what a crop centred on a lesion is centred on, and what names a lesion's crop."""
    return round(float(point[0])), round(float(point[1]))


def _shape(shape: Any) -> Shape:
    rows, cols = int(shape[0]), int(shape[1])
    if rows <= 0 or cols <= 0:
        raise ValueError(f"a transform needs a positive shape, got {shape!r}")
    return rows, cols


@dataclass(frozen=True)
class Transform:
    """An affine map from a source image grid to a destination grid.

    ``matrix`` is 3 x 3 and acts on homogeneous ``(x, y, 1)`` = ``(col, row, 1)`` columns,
    as OpenCV's matrices do; the public methods take and return ``(row, col)`` points.
    """

    matrix: np.ndarray
    src_shape: Shape
    dst_shape: Shape

    # -- construction -------------------------------------------------------------------
    @classmethod
    def identity(cls, shape: Any) -> Transform:
        shape = _shape(shape)
        return cls(np.eye(3), shape, shape)

    @classmethod
    def crop(cls, shape: Any, top: int, left: int, height: int, width: int) -> Transform:
        """Keep rows ``top:top+height`` and columns ``left:left+width``."""
        matrix = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]])
        return cls(matrix, _shape(shape), _shape((height, width)))

    @classmethod
    def centred_crop(cls, shape: Any, center: Any, side: int) -> Transform:
        """The ``side`` x ``side`` window whose pixel ``(side // 2, side // 2)`` is the source
        pixel nearest ``center``; it may reach past the source's edges (``cut`` fills there).
        Lesion crops and patches are cut this way, so a lesion sits at the crop's centre."""
        if side < 1:
            raise ValueError(f"a crop needs a side of at least 1 pixel, got {side}")
        row, col = nearest_pixel(center)
        return cls.crop(shape, row - side // 2, col - side // 2, side, side)

    @classmethod
    def resize(cls, shape: Any, out_shape: Any) -> Transform:
        src, dst = _shape(shape), _shape(out_shape)
        sy, sx = dst[0] / src[0], dst[1] / src[1]
        matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return cls(matrix, src, dst)

    @classmethod
    def fit_long_side(cls, shape: Any, side: int, enlarge: bool = True) -> Transform:
        """The resize that makes the long side ``side`` px and keeps the aspect (each side
        rounded, at least 1 px). Thumbnails, the display copy, the segmentation copy and
        the model input all size a film this way, so one rounding rule serves them all.

        ``enlarge=False`` never grows a film: one already within ``side`` keeps its shape
        (the transform is then the identity)."""
        if side < 1:
            raise ValueError(f"a long side must be at least 1 pixel, got {side}")
        rows, cols = _shape(shape)
        factor = side / max(rows, cols)
        if not enlarge:
            factor = min(1.0, factor)
        fitted = (max(1, min(side, round(rows * factor))), max(1, min(side, round(cols * factor))))
        return cls.resize((rows, cols), fitted)

    @classmethod
    def flip_horizontal(cls, shape: Any) -> Transform:
        """Mirror left-right (used to put the chest wall on one side)."""
        src = _shape(shape)
        matrix = np.array([[-1.0, 0.0, src[1] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        return cls(matrix, src, src)

    @classmethod
    def flip_vertical(cls, shape: Any) -> Transform:
        """Mirror top-bottom: row ``r`` goes to ``rows - 1 - r``. It is its own inverse.

        This is also the change of origin for sources that count rows up from the bottom
        (MIAS's ``Info.txt``): a point given as ``(y, x)`` with the origin at the bottom-left
        pixel maps to ``(row, col)`` from the top-left, and back."""
        src = _shape(shape)
        matrix = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, src[0] - 1.0], [0.0, 0.0, 1.0]])
        return cls(matrix, src, src)

    @classmethod
    def rotate_scale(cls, shape: Any, angle_deg: float = 0.0, scale: float = 1.0,
                     shift: tuple[float, float] = (0.0, 0.0), flip: bool = False) -> Transform:
        """Rotation by ``angle_deg`` (counter-clockwise on screen) and scaling about the
        image centre, an optional left-right flip, then a shift of ``(rows, cols)``; the
        grid keeps its shape. This is what augmentation draws at random."""
        src = _shape(shape)
        centre = ((src[1] - 1) / 2.0, (src[0] - 1) / 2.0)
        rot = np.vstack([cv2.getRotationMatrix2D(centre, angle_deg, scale), [0.0, 0.0, 1.0]])
        if flip:
            rot = rot @ cls.flip_horizontal(src).matrix
        rot[0, 2] += shift[1]
        rot[1, 2] += shift[0]
        return cls(rot, src, src)

    # -- composition ----------------------------------------------------------------------
    def then(self, other: Transform) -> Transform:
        """This transform followed by ``other`` (whose source must be our destination)."""
        if tuple(other.src_shape) != tuple(self.dst_shape):
            raise ValueError(f"cannot chain: {self.dst_shape} does not feed {other.src_shape}")
        return Transform(other.matrix @ self.matrix, self.src_shape, other.dst_shape)

    def inverted(self) -> Transform:
        return Transform(np.linalg.inv(self.matrix), self.dst_shape, self.src_shape)

    # -- points and radii -------------------------------------------------------------------
    def forward(self, points_rc: Any) -> np.ndarray:
        """Map ``(row, col)`` points (shape ``(2,)`` or ``(n, 2)``) to the destination grid."""
        return _apply_points(self.matrix, points_rc)

    def inverse(self, points_rc: Any) -> np.ndarray:
        """Map destination ``(row, col)`` points back onto the source grid."""
        return _apply_points(np.linalg.inv(self.matrix), points_rc)

    @property
    def scale(self) -> float:
        """The factor a length is multiplied by (the geometric mean of the axis scales)."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:2, :2]))))

    def forward_radius(self, radius: float) -> float:
        return radius * self.scale

    def inverse_radius(self, radius: float) -> float:
        return radius / self.scale

    # -- lesions ----------------------------------------------------------------------------
    def map_lesion(self, lesion: Lesion) -> Lesion:
        """The lesion on the destination grid: centre forward, radius scaled; severity and
        kind kept. A lesion without a location has nothing to move and comes back as is."""
        if lesion.center is None or lesion.radius is None:
            return lesion
        return self._placed(lesion, self.forward(lesion.center), lesion.radius)

    def map_lesions(self, lesions: Sequence[Lesion]) -> tuple[Lesion, ...]:
        """``map_lesion`` over a film's lesions, in order, with the centres mapped in one
        batch. (A batched matrix product may differ from one point at a time in the last
        bit, so a caller that must reproduce earlier numbers keeps its way of calling.)"""
        located = [lesion for lesion in lesions if lesion.located]
        if not located:
            return tuple(lesions)
        centres = iter(self.forward([lesion.center for lesion in located]))
        return tuple(self._placed(lesion, next(centres), lesion.radius)
                     if lesion.center is not None and lesion.radius is not None else lesion
                     for lesion in lesions)

    def _placed(self, lesion: Lesion, centre: np.ndarray, radius: float) -> Lesion:
        """``lesion`` at ``centre`` (already on the destination grid), its radius scaled."""
        return replace(lesion, center=(float(centre[0]), float(centre[1])),
                       radius=self.forward_radius(float(radius)))

    # -- images -----------------------------------------------------------------------------
    def apply(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR,
              border_value: float = 0.0) -> np.ndarray:
        """Warp a source-grid image (2-D or with channels) onto the destination grid."""
        return _warp(image, self.matrix, self.src_shape, self.dst_shape, interpolation,
                     border_value)

    def cut(self, image: np.ndarray, fill: float = 0) -> np.ndarray:
        """The source pixels on the destination grid, copied exactly (no interpolation),
        ``fill`` where the grid reaches past the source's edges. Only a crop (a whole-pixel
        shift) can be cut; any other map resamples, so it needs ``apply``."""
        top, left = self._crop_offset()
        if tuple(image.shape[:2]) != tuple(self.src_shape):
            raise ValueError(f"image of shape {image.shape[:2]} does not match the grid "
                             f"{self.src_shape}")
        height, width = self.dst_shape
        window = np.full((height, width, *image.shape[2:]), fill, image.dtype)
        rows, cols = self.src_shape
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + height, rows), min(left + width, cols)
        if r1 > r0 and c1 > c0:
            window[r0 - top:r1 - top, c0 - left:c1 - left] = image[r0:r1, c0:c1]
        return window

    def _crop_offset(self) -> tuple[int, int]:
        """``(top, left)`` of a crop's window on the source grid; any other map refuses."""
        linear, shift = self.matrix[:2, :2], self.matrix[:2, 2]
        if not (np.array_equal(linear, np.eye(2)) and np.array_equal(shift, np.round(shift))
                and np.array_equal(self.matrix[2], [0.0, 0.0, 1.0])):
            raise ValueError("only a crop (a whole-pixel shift) can be cut; use apply")
        return int(-shift[1]), int(-shift[0])

    def unapply(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR,
                border_value: float = 0.0) -> np.ndarray:
        """Warp a destination-grid image (e.g. a heatmap) back onto the source grid."""
        return _warp(image, np.linalg.inv(self.matrix), self.dst_shape, self.src_shape,
                     interpolation, border_value)

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"matrix": self.matrix.tolist(), "src_shape": list(self.src_shape),
                "dst_shape": list(self.dst_shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transform:
        return cls(np.asarray(data["matrix"], dtype=float), _shape(data["src_shape"]),
                   _shape(data["dst_shape"]))


def _apply_points(matrix: np.ndarray, points_rc: Any) -> np.ndarray:
    points = np.asarray(points_rc, dtype=float)
    single = points.ndim == 1
    points = points.reshape(-1, 2)
    xy1 = np.column_stack([points[:, 1], points[:, 0], np.ones(len(points))])
    mapped = xy1 @ matrix.T
    out = np.column_stack([mapped[:, 1], mapped[:, 0]])
    return out[0] if single else out


def _warp(image: np.ndarray, matrix: np.ndarray, src_shape: Shape, dst_shape: Shape,
          interpolation: int, border_value: float) -> np.ndarray:
    if tuple(image.shape[:2]) != tuple(src_shape):
        raise ValueError(f"image of shape {image.shape[:2]} does not match the grid {src_shape}")
    return cv2.warpAffine(image, matrix[:2], (dst_shape[1], dst_shape[0]), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
