"""Preprocessing: lesions follow every geometric step, and each step does what it says."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import BadConfigError, BadFilmError
from core.films import read_film
from core.geometry import Transform
from core.prep.preprocess import (
    PrepConfig,
    breast_mask,
    chest_wall_on_right,
    look_at,
    prepare_film,
    preprocess,
    preprocess_files,
    upright,
)
from factories import label_box, screening_breast, screening_film

SHAPE = (320, 256)
LESION = (150.0, 175.0, 12)  # (row, col, radius) inside the breast of a right-wall film
#: A tall film (the crop is padded on the right) and a wide one (padded above and below).
FILMS = {"tall": (SHAPE, LESION), "wide": ((200, 360), (120.0, 262.0, 10))}
LESION_GAIN = 80
GEOMETRY_ONLY = {"normalise": False, "clahe": False}


def _film(chest_wall_right: bool = True, lesion: bool = True, labels: bool = True,
          shape: tuple[int, int] = SHAPE,
          where: tuple[float, float, int] = LESION) -> np.ndarray:
    """A breast-like half ellipse against one side, film labels in the background, and
    optionally a bright disk (the lesion) at ``where`` (given for a right-wall film)."""
    rows, cols = shape
    row, col = np.indices(shape, dtype=np.float32)
    from_wall = (cols - 1 - col) if chest_wall_right else col
    reach = ((row - rows * 0.5) / (rows * 0.42)) ** 2 + (from_wall / (cols * 0.6)) ** 2
    film = np.where(reach <= 1, 60 + 90 * np.sqrt(np.clip(1 - reach, 0, 1)), 0)
    film += np.random.default_rng(0).normal(0, 3, shape) * (reach <= 1)
    film = np.clip(film, 0, 255).astype(np.uint8)
    if labels:
        outer = slice(6, 30) if chest_wall_right else slice(cols - 30, cols - 6)
        film[rows * 2 // 10: rows * 2 // 10 + 20, outer] = 250  # inside the breast's box
        film[rows - 22: rows - 8, outer] = 235  # a marker below the breast's box
    if lesion:
        disk = np.zeros(shape, np.uint8)
        centre = (round(where[1]) if chest_wall_right else cols - 1 - round(where[1]),
                  round(where[0]))
        cv2.circle(disk, centre, where[2], LESION_GAIN, -1)
        film = cv2.add(film, disk)
    return film


def _lesion_centre(chest_wall_right: bool, shape: tuple[int, int] = SHAPE,
                   where: tuple[float, float, int] = LESION) -> np.ndarray:
    col = where[1] if chest_wall_right else shape[1] - 1 - where[1]
    return np.array([where[0], col])


def _centroid(image: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    return np.array([(rows * image).sum(), (cols * image).sum()]) / image.sum()


def _lesion_footprint(config: PrepConfig, chest_wall_right: bool, shape: tuple[int, int],
                      where: tuple[float, float, int]) -> tuple[np.ndarray, Transform]:
    """The lesion alone in the output: the film with it minus the film without it."""
    with_lesion = preprocess(_film(chest_wall_right, shape=shape, where=where), config)
    without = preprocess(_film(chest_wall_right, lesion=False, shape=shape), config)
    assert np.allclose(with_lesion.transform.matrix, without.transform.matrix)
    footprint = with_lesion.image.astype(np.float64) - without.image.astype(np.float64)
    return footprint, with_lesion.transform


GEOMETRIES = {
    "crop+orient+resize": {},
    "crop+orient+stretch": {"keep_aspect": False},
    "crop only": {"orient": False, "size": None},
    "orient only": {"crop_to_breast": False, "size": None},
    "resize only": {"crop_to_breast": False, "orient": False, "size": 160},
    "stretch only": {"crop_to_breast": False, "orient": False, "size": 100,
                     "keep_aspect": False},
    "crop+enlarge": {"orient": False, "size": 400},
}


@pytest.mark.parametrize("steps", GEOMETRIES.values(), ids=GEOMETRIES.keys())
@pytest.mark.parametrize("chest_wall_right", [True, False], ids=["wall right", "wall left"])
@pytest.mark.parametrize("film", FILMS.values(), ids=FILMS.keys())
def test_lesion_follows_every_geometric_step(steps: dict, chest_wall_right: bool,
                                             film: tuple) -> None:
    shape, where = film
    config = PrepConfig(**GEOMETRY_ONLY, **{"size": 128, **steps})
    footprint, transform = _lesion_footprint(config, chest_wall_right, shape, where)
    centre = _lesion_centre(chest_wall_right, shape, where)

    # Far inside a pixel: an off-by-half-a-pixel convention would fail here.
    expected = transform.forward(centre)
    assert np.allclose(_centroid(footprint), expected, atol=0.1)
    # The disk's area at half its height gives its radius on the output grid.
    measured_radius = np.sqrt((footprint > LESION_GAIN / 2).sum() / np.pi)
    assert measured_radius == pytest.approx(transform.forward_radius(where[2]), abs=0.5)
    # ... and the measured centre maps back onto the film.
    back = transform.inverse(_centroid(footprint))
    assert np.hypot(*(back - centre)) <= 0.25


def test_output_heatmap_maps_back_onto_the_lesion() -> None:
    prepared = preprocess(_film(), PrepConfig(size=128))
    heat = np.zeros(prepared.image.shape, np.float32)
    peak = np.round(prepared.transform.forward(_lesion_centre(True))).astype(int)
    heat[peak[0], peak[1]] = 1.0
    on_film = prepared.transform.unapply(cv2.GaussianBlur(heat, (0, 0), 3))
    assert on_film.shape == SHAPE
    found = np.unravel_index(on_film.argmax(), on_film.shape)
    assert np.hypot(*(np.array(found) - _lesion_centre(True))) <= 1.0 / prepared.transform.scale


def test_crop_drops_labels_and_markers() -> None:
    config = PrepConfig(size=128)
    prepared = preprocess(_film(), config)
    label = [SHAPE[0] * 2 // 10 + 10, 18]  # inside the breast's bounding box
    marker = [SHAPE[0] - 15, 18]  # below it
    row, col = np.round(prepared.transform.forward(label)).astype(int)
    assert 0 <= row < 128 and 0 <= col < 128
    assert prepared.image[row - 2:row + 3, col - 2:col + 3].max() == 0
    assert prepared.transform.forward(marker)[0] > 128
    # The output is what the same film without labels gives, bar the threshold's rounding.
    without = preprocess(_film(labels=False), config)
    assert np.allclose(prepared.transform.matrix, without.transform.matrix)
    assert np.abs(prepared.image.astype(int) - without.image).mean() < 1.0
    # Without the crop the label is still there.
    uncropped = preprocess(_film(), PrepConfig(size=128, crop_to_breast=False, orient=False,
                                               **GEOMETRY_ONLY))
    row, col = np.round(uncropped.transform.forward(label)).astype(int)
    assert uncropped.image[row, col] > 200


def test_breast_mask_covers_the_breast_and_not_the_labels() -> None:
    film = _film()
    mask = breast_mask(film)
    assert mask.shape == film.shape and mask.dtype == bool
    assert mask[SHAPE[0] // 2, SHAPE[1] - 5] and mask[int(LESION[0]), int(LESION[1])]
    assert not mask[SHAPE[0] * 2 // 10 + 10, 18] and not mask[SHAPE[0] - 15, 18]
    assert not mask[5, 5]


@pytest.mark.parametrize("chest_wall_right", [False, True], ids=["wall left", "wall right"])
def test_a_burned_in_label_stays_out_and_the_fatty_rim_stays_in(chest_wall_right: bool) -> None:
    """A digital film on a black background with its view label in a corner: the label is
    left out of the mask and the crop, and the whole breast is kept, its dark fat at the
    skin line included (Otsu's split between the black and the fat used to cut that away:
    18% of this breast, and the fatty half of many RSNA films)."""
    film = screening_film(chest_wall_right=chest_wall_right)
    rows, cols = label_box(film.shape, chest_wall_right)
    assert film[rows, cols].max() >= 240  # the label is there, bright
    mask = breast_mask(film)
    assert not mask[rows, cols].any()
    assert mask[screening_breast(film.shape, chest_wall_right)].mean() > 0.99

    config = PrepConfig(size=128)
    prepared = preprocess(film, config)
    without = preprocess(screening_film(chest_wall_right=chest_wall_right, label=False), config)
    assert np.allclose(prepared.transform.matrix, without.transform.matrix)
    assert np.abs(prepared.image.astype(int) - without.image).mean() < 1.0
    # Every label pixel lands outside the model input or on its black background.
    label = np.argwhere(film[rows, cols] >= 200) + [rows.start, cols.start]
    where = np.round(prepared.transform.forward(label)).astype(int)
    inside = ((where >= 0) & (where < 128)).all(axis=1)
    assert not prepared.image[where[inside, 0], where[inside, 1]].any()


def test_chest_wall_ends_on_the_left() -> None:
    film = _film(chest_wall_right=True)
    assert chest_wall_on_right(film) and chest_wall_on_right(breast_mask(film))
    assert not chest_wall_on_right(_film(chest_wall_right=False))
    prepared = preprocess(film, PrepConfig(size=128))
    assert not chest_wall_on_right(prepared.image > 0)
    assert prepared.transform.matrix[0, 0] < 0  # the recorded map mirrors
    kept = preprocess(_film(chest_wall_right=False), PrepConfig(size=128))
    assert kept.transform.matrix[0, 0] > 0
    unoriented = preprocess(film, PrepConfig(size=128, orient=False))
    assert chest_wall_on_right(unoriented.image > 0)


def test_sixteen_bit_film_is_normalised_to_uint8() -> None:
    eight = _film()
    twelve = eight.astype(np.uint16) * 16 + 7  # the same film as 12-bit data, lifted black
    for config in (PrepConfig(size=128), PrepConfig(size=128, clahe=False)):
        from_twelve = preprocess(twelve, config)
        assert from_twelve.image.dtype == np.uint8 and from_twelve.image.max() >= 250
        from_eight = preprocess(eight, config)
        assert np.allclose(from_twelve.transform.matrix, from_eight.transform.matrix)
        # 16-bit data is resized before rounding to 8 bits; CLAHE amplifies the difference.
        tolerance = 2.5 if config.clahe else 0.5
        assert np.abs(from_twelve.image.astype(int) - from_eight.image).mean() < tolerance
    plain = preprocess(twelve, PrepConfig(size=None, normalise=False, clahe=False,
                                          crop_to_breast=False, orient=False))
    assert plain.image.dtype == np.uint8
    assert np.abs(plain.image.astype(int) - (twelve / 4095 * 255)).max() <= 1


def test_every_step_can_be_switched_off() -> None:
    film = _film()
    nothing = PrepConfig(normalise=False, clahe=False, crop_to_breast=False, orient=False,
                         size=None)
    prepared = preprocess(film, nothing)
    assert np.array_equal(prepared.image, film)
    assert np.allclose(prepared.transform.matrix, np.eye(3))
    outputs = {}
    for step in ("normalise", "clahe", "crop_to_breast", "orient"):
        outputs[step] = preprocess(film, PrepConfig(size=None, **{step: True, **{
            other: False for other in ("normalise", "clahe", "crop_to_breast", "orient")
            if other != step}})).image
        assert not np.array_equal(outputs[step], film), step
    assert outputs["crop_to_breast"].shape != film.shape
    assert outputs["orient"].shape == film.shape
    assert np.array_equal(outputs["orient"], film[:, ::-1])
    # Intensity steps never move anything.
    moved = [preprocess(film, PrepConfig(size=96, normalise=n, clahe=c)).transform.matrix
             for n in (True, False) for c in (True, False)]
    assert all(np.allclose(m, moved[0]) for m in moved)


def test_output_is_square_uint8_and_padding_is_black() -> None:
    prepared = preprocess(_film(), PrepConfig(size=128))
    assert prepared.image.shape == (128, 128) and prepared.image.dtype == np.uint8
    # The crop is taller than wide, so the right-hand columns are padding.
    crop_cols = prepared.transform.forward([[0, 0], [0, SHAPE[1] - 1]])[:, 1]
    assert prepared.image[:, int(np.ceil(max(crop_cols))) + 1:].max() == 0
    stretched = preprocess(_film(), PrepConfig(size=128, keep_aspect=False))
    assert stretched.image.shape == (128, 128)


def test_config_round_trips_through_json_and_refuses_nonsense() -> None:
    config = PrepConfig(clahe=False, clahe_clip=3.5, size=None, keep_aspect=False)
    again = PrepConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert PrepConfig.from_dict({}) == PrepConfig()
    for bad in ({"size": 0}, {"clahe_clip": -1}, {"clahe_grid": 2.5}, {"crop_to_breast": "yes"},
                {"sharpen": True}):
        with pytest.raises(BadConfigError):
            PrepConfig.from_dict(bad)


def test_bad_pixels_name_the_source() -> None:
    with pytest.raises(BadFilmError, match="scan.png: pixels must be a non-empty 2-D"):
        preprocess(np.zeros((8, 8, 3), np.uint8), PrepConfig(), source="scan.png")
    with pytest.raises(BadFilmError, match="uint8 or uint16, got float64"):
        preprocess(np.zeros((8, 8)), PrepConfig())
    with pytest.raises(BadFilmError, match="blank.pgm: no breast found"):
        preprocess(np.zeros((64, 64), np.uint8), PrepConfig(), source="blank.pgm")
    blank = preprocess(np.zeros((64, 64), np.uint8), PrepConfig(crop_to_breast=False, size=32))
    assert blank.image.shape == (32, 32)


def test_preprocess_files_matches_one_by_one_for_any_worker_count(tmp_path: Path) -> None:
    paths = []
    for index, right in enumerate([True, False, True, False, True]):
        path = tmp_path / f"film{index}.png"
        cv2.imwrite(str(path), np.roll(_film(chest_wall_right=right), 3 * index, axis=0))
        paths.append(path)
    config = PrepConfig(size=64)
    one, one_transforms = preprocess_files(paths, config, workers=1)
    two, two_transforms = preprocess_files(paths, config, workers=3)
    assert one.shape == (5, 64, 64) and one.dtype == np.uint8
    assert np.array_equal(one, two)
    for path, image, transform in zip(paths, one, two_transforms):
        alone = preprocess(read_film(path).pixels, config)
        assert np.array_equal(image, alone.image)
        assert np.allclose(transform.matrix, alone.transform.matrix)
    assert len(one_transforms) == 5
    with pytest.raises(BadConfigError, match="fixed size"):
        preprocess_files(paths, PrepConfig(size=None))
    with pytest.raises(BadFilmError, match="missing.png"):
        preprocess_files([paths[0], tmp_path / "missing.png"], config)


# -- real films ---------------------------------------------------------------------------------
MDB001_LESION = (598.0, 535.0, 197.0)  # Info.txt: x 535, y 425 from the bottom, radius 197


@pytest.mark.parametrize("film_id", ["mdb001", "mdb002", "mdb059", "mdb135", "mdb216"])
def test_real_films_keep_the_breast(mias_root: Path, film_id: str) -> None:
    pixels = read_film(mias_root / f"{film_id}.png").pixels
    mask = breast_mask(pixels)
    assert 0.15 < mask.mean() < 0.9
    # Odd MIAS films are right breasts: chest wall on the image's right.
    assert chest_wall_on_right(mask) == (int(film_id[3:]) % 2 == 1)
    prepared = preprocess(pixels, PrepConfig(size=256))
    assert prepared.image.shape == (256, 256) and prepared.image.dtype == np.uint8
    assert 0.2 < (prepared.image > 0).mean() < 0.95
    assert not chest_wall_on_right(prepared.image > 0)
    # Every breast pixel of the film that lands in the output is kept in the output.
    kept = prepared.transform.apply(mask.view(np.uint8), cv2.INTER_NEAREST).astype(bool)
    assert (prepared.image[kept] > 0).mean() > 0.97


def test_mdb001_lesion_maps_inside_the_output(mias_root: Path) -> None:
    prepared = preprocess(read_film(mias_root / "mdb001.png").pixels, PrepConfig())
    row, col = prepared.transform.forward(MDB001_LESION[:2])
    assert 0 <= row < 512 and 0 <= col < 512
    assert 0 < prepared.transform.forward_radius(MDB001_LESION[2]) < 256
    assert np.allclose(prepared.transform.inverse([row, col]), MDB001_LESION[:2])


def test_preprocess_files_can_skip_bad_films(tmp_path) -> None:
    good = tmp_path / "good.png"
    film = np.zeros((64, 64), np.uint8)
    film[8:56, :40] = 180
    cv2.imwrite(str(good), film)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a film")
    with pytest.raises(BadFilmError):
        preprocess_files([good, bad], PrepConfig(size=32), workers=1)
    failures: list[str] = []
    images, transforms = preprocess_files([good, bad], PrepConfig(size=32), workers=2,
                                          failures=failures)
    assert transforms[0] is not None and transforms[1] is None
    assert len(failures) == 1 and "bad.png" in failures[0]
    assert images[0].any() and not images[1].any()


@pytest.mark.parametrize("inverted", [False, True])
def test_a_look_taken_once_prepares_the_film_as_preprocess_alone_does(inverted: bool) -> None:
    """Handing ``preprocess`` the film's ``look_at`` (as prediction does, after using it to
    set the film upright) gives the same input and map as ``preprocess`` alone; the look
    found the film inverted exactly when it is, and ``upright`` with the look mirrors as
    ``upright`` alone does."""
    pixels = screening_film(SHAPE, chest_wall_right=True, inverted=inverted).astype(np.uint16)
    pixels *= 16
    config = PrepConfig(size=96)
    look = look_at(pixels)
    alone, shared = preprocess(pixels, config), preprocess(pixels, config, look=look)
    assert look.inverted is inverted and shared.inverted is inverted
    np.testing.assert_array_equal(shared.image, alone.image)
    np.testing.assert_array_equal(shared.transform.matrix, alone.transform.matrix)
    film = read_film(cv2.imencode(".png", pixels)[1].tobytes(), name="film.png")
    by_itself, with_look = upright(film), upright(film, look_at(film.pixels))
    np.testing.assert_array_equal(with_look.pixels, by_itself.pixels)
    assert with_look.metadata["polarity"] == by_itself.metadata["polarity"]
    with pytest.raises(ValueError, match="cannot prepare"):
        preprocess(pixels[:-1], config, look=look)


# -- the chest wall's side from a DICOM header ----------------------------------------------------
def _centre_column(image: np.ndarray) -> float:
    """Where the breast's grey mass lies across the breast's own columns (the input is
    padded on one side), as a share of their span: the gland is densest by the wall."""
    weights = image.astype(np.float64).sum(axis=0)
    columns = np.flatnonzero(weights)
    centre = (weights * np.arange(image.shape[1])).sum() / weights.sum()
    return float((centre - columns[0]) / (columns[-1] - columns[0]))


@pytest.mark.parametrize("orientation, flipped", [("A\\FR", False), ("P\\FL", True),
                                                  (None, False), ("F\\A", False)])
def test_a_dicoms_patient_orientation_decides_the_chest_wall_side(
        tmp_path: Path, orientation: str | None, flipped: bool) -> None:
    """Patient Orientation's row direction says where the chest wall is: "A" (the nipple to
    the right) on the left, "P" on the right, and the header then rules over the image (a
    "P" here is wrong on purpose, to show it is obeyed). Without it, or with a direction
    that says nothing of it, the mask decides, and this film's wall is on the left."""
    from core.films import chest_wall_on_right_by_header
    from factories import dicom

    pixels = screening_film(chest_wall_right=False).astype(np.uint16) * 16
    elements = {} if orientation is None else {"PatientOrientation": orientation}
    path = tmp_path / "film.dcm"
    path.write_bytes(dicom(pixels, **elements))
    film = read_film(path)
    expected = {"A": False, "P": True}.get((orientation or " ")[0])
    assert chest_wall_on_right_by_header(film) is expected
    images, _ = preprocess_files([path], PrepConfig(size=64))
    assert (_centre_column(images[0]) > 0.5) is flipped
    np.testing.assert_array_equal(prepare_film(film, PrepConfig(size=64)).image, images[0])
    assert chest_wall_on_right_by_header(read_film(_png(tmp_path, pixels))) is None


def _png(folder: Path, pixels: np.ndarray) -> Path:
    path = folder / "film.png"
    cv2.imwrite(str(path), pixels)
    return path
