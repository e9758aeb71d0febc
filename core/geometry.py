"""The one place that does coordinate arithmetic.

Every geometric step (crop to the breast, flip, resize, augmentation) is an affine map and
returns a ``Transform``. Lesion centres go forward through it for training and scoring;
heatmaps come back through it onto the original film for display. Composing transforms
keeps the whole chain exact, so no other module ever adds offsets or scale factors by hand.

Convention (the same as OpenCV's): a point is ``(row, col)`` and pixel centres sit at
integer coordinates, so pixel ``(0, 0)`` covers ``[-0.5, 0.5)`` in both axes. Resizing a
width ``W`` to ``w`` therefore maps ``x -> (x + 0.5) * w / W - 0.5``, which is what
``cv2.resize`` does, and ``Transform.apply`` (``cv2.warpAffine``) agrees with both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

Shape = tuple[int, int]


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
    def resize(cls, shape: Any, out_shape: Any) -> Transform:
        src, dst = _shape(shape), _shape(out_shape)
        sy, sx = dst[0] / src[0], dst[1] / src[1]
        matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return cls(matrix, src, dst)

    @classmethod
    def flip_horizontal(cls, shape: Any) -> Transform:
        """Mirror left-right (used to put the chest wall on one side)."""
        src = _shape(shape)
        matrix = np.array([[-1.0, 0.0, src[1] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
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

    # -- images -----------------------------------------------------------------------------
    def apply(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR,
              border_value: float = 0.0) -> np.ndarray:
        """Warp a source-grid image (2-D or with channels) onto the destination grid."""
        return _warp(image, self.matrix, self.src_shape, self.dst_shape, interpolation,
                     border_value)

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
