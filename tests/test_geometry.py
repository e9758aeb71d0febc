"""Transform: points, radii and images must agree through every kind of step."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.geometry import Lesion, Transform, lesions_from_array, lesions_to_array, nearest_pixel


def _disk(shape: tuple[int, int], center: tuple[float, float], radius: int) -> np.ndarray:
    image = np.zeros(shape, np.float32)
    cv2.circle(image, (int(center[1]), int(center[0])), radius, 1.0, -1)
    return image


def _centroid(image: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    total = image.sum()
    return np.array([(rows * image).sum() / total, (cols * image).sum() / total])


CHAIN = [
    Transform.crop((200, 160), 20, 10, 150, 140),
    Transform.resize((150, 140), (75, 70)),
    Transform.flip_horizontal((75, 70)),
    Transform.rotate_scale((75, 70), angle_deg=25, scale=1.15, shift=(3, -4)),
]


def _chained() -> Transform:
    chained = Transform.identity((200, 160))
    for step in CHAIN:
        chained = chained.then(step)
    return chained


def test_disk_stays_under_its_transformed_centre() -> None:
    image = _disk((200, 160), (120, 60), 12)
    transform = _chained()
    warped = transform.apply(image)
    assert np.allclose(_centroid(warped), transform.forward([120, 60]), atol=0.6)
    assert transform.forward_radius(12) == pytest.approx(12 * 0.5 * 1.15, rel=1e-6)


def test_inverse_round_trips_points_and_maps_heatmaps_back() -> None:
    transform = _chained()
    points = np.array([[120.0, 60.0], [30.5, 100.25]])
    assert np.allclose(transform.inverse(transform.forward(points)), points)
    heat = np.zeros(transform.dst_shape, np.float32)
    target = np.round(transform.forward([120, 60])).astype(int)
    heat[target[0], target[1]] = 1.0
    back = transform.unapply(cv2.GaussianBlur(heat, (0, 0), 2))
    peak = np.unravel_index(back.argmax(), back.shape)
    assert np.hypot(peak[0] - 120, peak[1] - 60) <= 2


def test_resize_matches_opencv_half_pixel_convention() -> None:
    image = _disk((64, 64), (20, 41), 5)
    small = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA)
    transform = Transform.resize((64, 64), (16, 16))
    assert np.allclose(_centroid(small), transform.forward([20, 41]), atol=0.1)
    assert np.allclose(transform.apply(image, cv2.INTER_AREA).shape, small.shape)


def test_flip_maps_edges_onto_each_other() -> None:
    flip = Transform.flip_horizontal((10, 30))
    assert np.allclose(flip.forward([4, 0]), [4, 29])
    assert np.allclose(flip.then(flip).matrix, np.eye(3))


def test_serialises_and_refuses_mismatched_chains() -> None:
    transform = _chained()
    again = Transform.from_dict(transform.to_dict())
    assert np.allclose(again.matrix, transform.matrix)
    assert again.src_shape == (200, 160) and again.dst_shape == (75, 70)
    with pytest.raises(ValueError):
        Transform.resize((10, 10), (5, 5)).then(Transform.flip_horizontal((10, 10)))
    with pytest.raises(ValueError):
        Transform.identity((10, 10)).apply(np.zeros((9, 10)))


# -- the MIAS origin: a vertical flip ---------------------------------------------------------
def test_flip_vertical_moves_mias_bottom_left_points_to_top_left_rows() -> None:
    """mdb001's lesion: Info.txt says x 535, y 425 from the bottom-left of the 1024 frame, so
    it sits on row 1023 - 425 = 598, column 535."""
    flip = Transform.flip_vertical((1024, 1024))
    assert flip.forward([425, 535]).tolist() == [598.0, 535.0]
    assert flip.forward([0, 7]).tolist() == [1023.0, 7.0]  # the bottom row is the last row
    assert flip.forward([1023, 7]).tolist() == [0.0, 7.0]
    assert flip.forward(flip.forward([425, 535])).tolist() == [425.0, 535.0]  # its own inverse
    assert np.array_equal(flip.then(flip).matrix, np.eye(3))
    assert flip.forward_radius(40.0) == 40.0


def test_flip_vertical_moves_pixels_as_flipud_does() -> None:
    image = np.arange(6 * 5, dtype=np.uint8).reshape(6, 5)
    flip = Transform.flip_vertical(image.shape)
    assert np.array_equal(flip.apply(image, cv2.INTER_NEAREST), image[::-1])
    assert np.array_equal(flip.unapply(flip.apply(image, cv2.INTER_NEAREST), cv2.INTER_NEAREST),
                          image)


# -- fitting the long side ------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "side", "fitted"), [
    ((1024, 1024), 256, (256, 256)),
    ((1000, 600), 256, (256, 154)),  # 600 * 0.256 = 153.6
    ((600, 1000), 256, (154, 256)),
    ((1000, 37), 64, (64, 2)),  # 37 * 0.064 = 2.368
    ((5000, 3), 100, (100, 1)),  # never below one pixel
    ((100, 80), 200, (200, 160)),  # enlarged by default
])
def test_fit_long_side_rounds_each_side_and_keeps_the_aspect(
        shape: tuple[int, int], side: int, fitted: tuple[int, int]) -> None:
    fit = Transform.fit_long_side(shape, side)
    assert fit.src_shape == shape and fit.dst_shape == fitted
    assert np.array_equal(fit.matrix, Transform.resize(shape, fitted).matrix)


def test_fit_long_side_without_enlarging_keeps_small_films_as_they_are() -> None:
    kept = Transform.fit_long_side((100, 80), 200, enlarge=False)
    assert kept.dst_shape == (100, 80)
    assert np.array_equal(kept.matrix, np.eye(3))
    assert Transform.fit_long_side((1024, 512), 256, enlarge=False).dst_shape == (256, 128)
    with pytest.raises(ValueError):
        Transform.fit_long_side((100, 80), 0)


def test_fit_long_side_agrees_with_opencv_and_round_trips() -> None:
    image = _disk((300, 180), (200, 60), 9)
    fit = Transform.fit_long_side(image.shape, 100)
    small = cv2.resize(image, fit.dst_shape[::-1], interpolation=cv2.INTER_AREA)
    assert small.shape == (100, 60)
    assert np.allclose(_centroid(small), fit.forward([200, 60]), atol=0.1)
    points = np.array([[200.0, 60.0], [0.0, 179.0]])
    assert np.allclose(fit.inverse(fit.forward(points)), points)


# -- crops: composition and exact cutting ------------------------------------------------------
def test_crop_then_resize_is_the_hand_computed_map() -> None:
    """Crop rows 40.. and columns 25.. of a 300 x 200 film to 160 x 120, then resize that to
    80 x 90: a point moves by the offset, then by OpenCV's half-pixel resize rule."""
    chain = Transform.crop((300, 200), 40, 25, 160, 120).then(Transform.resize((160, 120),
                                                                               (80, 90)))
    point = np.array([100.0, 70.0])
    by_hand = [(100 - 40 + 0.5) * 80 / 160 - 0.5, (70 - 25 + 0.5) * 90 / 120 - 0.5]
    assert np.allclose(chain.forward(point), by_hand)
    assert np.allclose(chain.inverse(by_hand), point)
    assert chain.forward_radius(10.0) == pytest.approx(10.0 * np.sqrt(80 / 160 * 90 / 120))
    assert chain.src_shape == (300, 200) and chain.dst_shape == (80, 90)


def test_centred_crop_puts_the_nearest_pixel_at_the_centre() -> None:
    window = Transform.centred_crop((50, 40), (20.4, 10.6), 9)
    assert window.dst_shape == (9, 9)
    assert window.forward([20, 11]).tolist() == [4.0, 4.0]  # (20.4, 10.6) rounds to (20, 11)
    assert window.inverse([0, 0]).tolist() == [16.0, 7.0]
    even = Transform.centred_crop((50, 40), (2.5, 3.5), 4)  # ties go to even, as round()
    assert even.forward([2, 4]).tolist() == [2.0, 2.0]
    with pytest.raises(ValueError):
        Transform.centred_crop((50, 40), (20, 10), 0)


def test_cut_copies_pixels_exactly_and_fills_past_the_edges() -> None:
    image = np.arange(1, 7 * 6 + 1, dtype=np.uint16).reshape(7, 6)
    inside = Transform.crop(image.shape, 2, 1, 3, 4).cut(image)
    assert inside.dtype == np.uint16 and np.array_equal(inside, image[2:5, 1:5])
    corner = Transform.centred_crop(image.shape, (0, 5), 5).cut(image)
    padded = np.pad(image, 2)  # the same window cut from a zero-padded copy
    assert np.array_equal(corner, padded[0:5, 5:10])
    assert corner[:2].sum() == 0 and corner[:, 3:].sum() == 0
    outside = Transform.crop(image.shape, 20, 20, 2, 2).cut(image, fill=9)
    assert np.array_equal(outside, np.full((2, 2), 9, np.uint16))
    pad = Transform.crop(image.shape, -1, 0, 9, 8).cut(image)  # a negative offset pads
    assert np.array_equal(pad[1:8, :6], image) and pad[0].sum() == pad[8].sum() == 0


def test_cut_refuses_maps_that_resample_and_mismatched_images() -> None:
    image = np.zeros((10, 12), np.uint8)
    for resampling in (Transform.resize((10, 12), (5, 6)), Transform.flip_vertical((10, 12)),
                       Transform.crop((10, 12), 0, 0, 5, 5).then(
                           Transform.rotate_scale((5, 5), shift=(0.5, 0.0)))):
        with pytest.raises(ValueError, match="only a crop"):
            resampling.cut(image)
    with pytest.raises(ValueError, match="does not match"):
        Transform.crop((10, 12), 0, 0, 5, 5).cut(np.zeros((11, 12), np.uint8))


# -- lesions ---------------------------------------------------------------------------------------
def test_map_lesion_moves_centre_and_radius_and_keeps_the_rest() -> None:
    transform = Transform.crop((400, 300), 100, 50, 200, 200).then(
        Transform.resize((200, 200), (100, 100)))
    lesion = Lesion((150.0, 90.0), 20.0, "M", "CIRC")
    moved = transform.map_lesion(lesion)
    assert moved.severity == "M" and moved.kind == "CIRC"
    assert moved.center == pytest.approx(((150 - 100 + 0.5) / 2 - 0.5, (90 - 50 + 0.5) / 2 - 0.5))
    assert moved.radius == pytest.approx(10.0)
    back = transform.inverted().map_lesion(moved)
    assert back.center == pytest.approx(lesion.center) and back.radius == pytest.approx(20.0)
    unplaced = Lesion(None, None, "B", "CALC")
    assert transform.map_lesion(unplaced) is unplaced


def test_map_lesions_keeps_order_and_leaves_unplaced_lesions_alone() -> None:
    transform = Transform.resize((100, 100), (50, 50))
    lesions = [Lesion((10.0, 20.0), 4.0, "B"), Lesion(None, None, "M"),
               Lesion((60.0, 30.0), 8.0, "M")]
    moved = transform.map_lesions(lesions)
    assert [lesion.severity for lesion in moved] == ["B", "M", "M"]
    assert moved[1] == lesions[1]
    for before, after in zip([lesions[0], lesions[2]], [moved[0], moved[2]]):
        assert after.center == pytest.approx(tuple(transform.forward(before.center)))
        assert after.radius == pytest.approx(before.radius / 2)
    assert transform.map_lesions([]) == ()


def test_lesions_convert_to_and_from_the_array_form() -> None:
    lesions = [Lesion((1.0, 2.0), 3.0, "B", "CIRC"), Lesion(None, None, "M"),
               Lesion((4.5, 5.5), 6.0)]
    rows = lesions_to_array(lesions)
    assert rows.dtype == np.float32 and rows.tolist() == [[1.0, 2.0, 3.0], [4.5, 5.5, 6.0]]
    assert lesions_to_array(lesions, np.float64).dtype == np.float64
    again = lesions_from_array(rows)
    assert [lesion.center for lesion in again] == [(1.0, 2.0), (4.5, 5.5)]
    assert [lesion.radius for lesion in again] == [3.0, 6.0]
    assert lesions_to_array([]).shape == (0, 3) and lesions_from_array(np.zeros((0, 3))) == ()
    assert Lesion.from_row([7, 8, 9], "M", "SPIC") == Lesion((7.0, 8.0), 9.0, "M", "SPIC")
    assert Lesion((7.0, 8.0), 9.0).as_row() == (7.0, 8.0, 9.0)
    with pytest.raises(ValueError):
        Lesion(None, None).as_row()
    with pytest.raises(ValueError):
        Lesion.from_row([1.0, 2.0])
    with pytest.raises(ValueError):
        lesions_from_array(np.zeros((2, 2)))


def test_mapping_rows_through_lesions_matches_mapping_the_array() -> None:
    """Augmentation carries (row, col, radius) rows through a transform; going through
    ``Lesion`` must give what the arithmetic on the array gives."""
    transform = Transform.rotate_scale((64, 64), angle_deg=20, scale=1.1, shift=(2, -3),
                                       flip=True)
    rows = np.array([[10.0, 20.0, 3.0], [40.0, 5.5, 7.25]])
    moved = lesions_to_array(transform.map_lesions(lesions_from_array(rows)), np.float64)
    assert np.array_equal(moved[:, :2], transform.forward(rows[:, :2]))
    assert np.array_equal(moved[:, 2], rows[:, 2] * transform.scale)


def test_nearest_pixel_rounds_ties_to_even() -> None:
    assert nearest_pixel((2.5, 3.5)) == (2, 4)
    assert nearest_pixel(np.array([-0.6, 10.49])) == (-1, 10)


# -- one lesion type, a bottom layer ------------------------------------------------------------
def test_records_use_the_geometry_lesion() -> None:
    from core.data import records

    assert records.Lesion is Lesion


def test_geometry_imports_only_the_bottom_layers() -> None:
    """core.geometry sits under data, prep and models: it may use only errors and settings
    from core, besides numpy, OpenCV and the standard library."""
    import ast
    import sys

    import core.geometry

    tree = ast.parse(Path(core.geometry.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)]
    allowed = {"numpy", "cv2", "core.errors", "core.settings"}
    for module in imported:
        assert (module in allowed or module.split(".")[0] in sys.stdlib_module_names
                or module == "__future__"), module
