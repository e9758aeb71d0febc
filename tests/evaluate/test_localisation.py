"""Localisation scores on hand-made maps whose answers can be counted by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.data.records import MIAS_CLASSES, FilmRecord, Lesion
from core.errors import BadConfigError
from core.evaluate.localisation import (
    chance_rate,
    lesion_disk,
    localisation_scores,
    overlap,
    pointing_hit,
)

SHAPE = (200, 200)
LESION = Lesion(center=(100.0, 80.0), radius=20.0)


def _peak_at(row: int, col: int, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    heat = np.full(shape, 0.1, np.float32)
    heat[row, col] = 1.0
    return heat


def _record(film_id: str, label: str, *lesions: Lesion) -> FilmRecord:
    return FilmRecord(film_id, film_id, label, MIAS_CLASSES, Path(f"{film_id}.png"),
                      lesions=tuple(lesions))


@pytest.mark.parametrize(("col", "hit"), [(80 + 35, True), (80 + 36, False),
                                          (80 - 35, True), (80 - 36, False)])
def test_pointing_game_tolerance_is_radius_plus_15_px(col: int, hit: bool) -> None:
    assert pointing_hit(_peak_at(100, col), [LESION]) is hit


def test_pointing_game_diagonal_any_lesion_and_flat_maps() -> None:
    # 24 + 26 px off diagonally: sqrt(24^2 + 26^2) = 35.4 > 35, a miss; 24 + 25: 34.7, a hit.
    assert not pointing_hit(_peak_at(124, 106), [LESION])
    assert pointing_hit(_peak_at(124, 105), [LESION])
    other = Lesion(center=(30.0, 170.0), radius=5.0)
    assert pointing_hit(_peak_at(30, 189), [LESION, other])  # 19 px from the small one
    assert not pointing_hit(_peak_at(100, 80), [Lesion(None, None)])  # no location
    assert not pointing_hit(np.full(SHAPE, 0.7), [LESION])  # a flat map points nowhere
    assert pointing_hit(_peak_at(100, 116), [LESION], tolerance_px=16)
    assert not pointing_hit(_peak_at(100, 101), [LESION], tolerance_px=0)


def test_overlap_of_a_square_region_with_the_lesion_disk() -> None:
    disk = lesion_disk(SHAPE, [LESION])
    assert disk.sum() == 1257  # lattice points within 20 px of a lattice point
    heat = np.zeros(SHAPE, np.float32)
    heat[90:110, 70:90] = 0.8  # a 20 x 20 square inside the disk
    heat[0:10, 0:10] = 0.3  # below half the maximum: not in the region
    assert overlap(heat, [LESION]) == {"iou": pytest.approx(400 / 1257), "inside": 1.0}
    heat[0:10, 0:10] = 0.5  # now at half the maximum: 100 more pixels, all outside
    assert overlap(heat, [LESION]) == {"iou": pytest.approx(400 / 1357), "inside": 0.8}
    assert overlap(heat, [LESION], threshold=0.7) == {"iou": pytest.approx(400 / 1257),
                                                      "inside": 1.0}
    assert overlap(np.zeros(SHAPE), [LESION]) == {"iou": 0.0, "inside": 0.0}
    with pytest.raises(BadConfigError, match="threshold"):
        overlap(heat, [LESION], threshold=0.0)


def test_chance_rate_on_a_known_breast() -> None:
    """The left half of the film is breast (20 000 px); the hit zone (radius 20 + 15 around
    a centre 25 px inside the edge) is a 35 px disk less the cap beyond column 99."""
    breast = np.zeros(SHAPE, bool)
    breast[:, :100] = True
    lesion = Lesion(center=(100.0, 75.0), radius=20.0)
    zone = lesion_disk(SHAPE, [lesion], 15.0)[:, :100].sum()
    assert chance_rate(breast, [lesion]) == pytest.approx(zone / 20000)
    assert 3000 < zone < np.pi * 35**2  # the cap really is cut off
    assert chance_rate(breast, [lesion], tolerance_px=0) == pytest.approx(1257 / 20000)
    with pytest.raises(BadConfigError, match="breast"):
        chance_rate(np.zeros(SHAPE, bool), [lesion])


def test_scores_per_class_and_the_films_left_out() -> None:
    records = [_record("a", "CIRC", LESION), _record("b", "CIRC", LESION),
               _record("c", "SPIC", LESION), _record("n", "NORM"),
               _record("m", "CALC", Lesion(None, None, "M", "CALC"))]  # MIAS NOTE 3
    square = np.zeros(SHAPE, np.float32)
    square[90:110, 70:90] = 1.0
    maps = [square, _peak_at(10, 10), _peak_at(100, 114), None, np.zeros(SHAPE)]
    breast = np.ones(SHAPE, bool)
    scores = localisation_scores(maps, records, breast_masks=[breast] * 5)
    assert scores["n_scored"] == 3 and scores["n_skipped_no_location"] == 2
    chance = lesion_disk(SHAPE, [LESION], 15.0).sum() / (200 * 200)
    circ = scores["per_class"]["CIRC"]
    assert circ["n"] == 2 and circ["hits"] == 1 and circ["pointing_game"] == 0.5
    assert circ["iou"] == pytest.approx(400 / 1257 / 2)  # the square, and a miss
    assert circ["inside"] == pytest.approx(0.5)
    assert circ["chance"] == pytest.approx(chance)
    spic = scores["per_class"]["SPIC"]
    assert (spic["n"], spic["hits"], spic["pointing_game"]) == (1, 1, 1.0)
    overall = scores["overall"]
    assert overall["n"] == 3 and overall["pointing_game"] == pytest.approx(2 / 3)
    assert set(scores["per_class"]) == {"CIRC", "SPIC"}
    assert (scores["tolerance_px"], scores["threshold"]) == (15.0, 0.5)


def test_scores_with_nothing_to_score_and_bad_inputs() -> None:
    empty = localisation_scores([None], [_record("n", "NORM")])
    assert empty["overall"] == {"n": 0, "hits": 0, "pointing_game": None, "iou": None,
                                "inside": None}
    assert empty["per_class"] == {} and empty["n_skipped_no_location"] == 1
    with pytest.raises(BadConfigError, match="2 heatmaps for 1 films"):
        localisation_scores([None, None], [_record("n", "NORM")])
    with pytest.raises(BadConfigError, match="no heatmap"):
        localisation_scores([None], [_record("a", "CIRC", LESION)])
    with pytest.raises(BadConfigError, match="finite"):
        pointing_hit(np.full(SHAPE, np.nan), [LESION])
