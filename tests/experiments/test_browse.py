"""The Data page's helpers: thumbnails with lesion circles, filters, and the class counts
training will see, checked against training's own split and balancing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data import load_dataset
from core.data.records import MIAS_CLASSES, Dataset, FilmRecord, Lesion
from core.errors import BadConfigError, BadFilmError
from core.experiments.browse import (
    PARTS,
    UNKNOWN,
    class_counts,
    counts_figure,
    describe,
    filter_options,
    filter_records,
    thumbnail,
)
from core.prep.augment import balance_counts
from core.prep.splits import split_dataset
from core.runs.config import TrainConfig
from factories import screening_film


@pytest.fixture(scope="module")
def mias(mias_root: Path) -> Dataset:
    return load_dataset("mias", mias_root)


@pytest.fixture(scope="module")
def synthetic(synthetic_root: Path) -> Dataset:
    return load_dataset("mias", synthetic_root)


def film(dataset: Dataset, film_id: str) -> FilmRecord:
    return next(r for r in dataset.records if r.film_id == film_id)


def red(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] > 200) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)


# -- thumbnails ---------------------------------------------------------------------------------
def test_thumbnail_draws_the_lesion_circle_where_mias_says(mias: Dataset) -> None:
    record = film(mias, "mdb001")  # CIRC at x 535, y 425, radius 197 on the 1024 frame
    rgb = thumbnail(record, size=256)
    assert rgb.shape == (256, 256, 3) and rgb.dtype == np.uint8
    rows, cols = np.nonzero(red(rgb))
    centre = np.array([(1023 - 425 + 0.5) / 4 - 0.5, (535 + 0.5) / 4 - 0.5])
    distance = np.hypot(rows - centre[0], cols - centre[1])
    assert len(distance) > 100
    assert np.median(distance) == pytest.approx(197 / 4, abs=1.5)


def test_thumbnail_of_a_normal_film_has_no_circle(mias: Dataset) -> None:
    rgb = thumbnail(film(mias, "mdb003"), size=128)
    assert rgb.shape == (128, 128, 3)
    assert not red(rgb).any()
    assert (rgb[..., 0] == rgb[..., 1]).all()  # grey film, nothing drawn


def test_thumbnail_keeps_the_aspect_ratio_and_maps_lesions(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), np.full((200, 400), 90, np.uint8))
    record = FilmRecord("wide", "p", "CALC", MIAS_CLASSES, path,
                        lesions=(Lesion((100.0, 300.0), 40.0, "B", "CALC"),))
    rgb = thumbnail(record, size=100)
    assert rgb.shape == (50, 100, 3)
    rows, cols = np.nonzero(red(rgb))
    assert np.median(np.hypot(rows - 24.75, cols - 74.75)) == pytest.approx(10, abs=1)


def test_a_film_stored_inverted_is_shown_upright(tmp_path: Path) -> None:
    path = tmp_path / "inverted.png"
    cv2.imwrite(str(path), screening_film(inverted=True))
    rgb = thumbnail(FilmRecord("inverted", "p", "cancer", ("no_cancer", "cancer"), path),
                    size=128)
    assert rgb[:4, -4:].max() < 10 and rgb[rgb.shape[0] // 2, 4, 0] > 100  # black air, breast


def test_an_unreadable_film_is_a_bad_film_error(tmp_path: Path) -> None:
    path = tmp_path / "mdb001.png"
    path.write_text("not an image")
    with pytest.raises(BadFilmError, match="mdb001.png"):
        thumbnail(FilmRecord("mdb001", "p", "NORM", MIAS_CLASSES, path))


# -- filters ------------------------------------------------------------------------------------
def test_filters_by_class_severity_and_tissue(mias: Dataset) -> None:
    options = filter_options(mias)
    assert options == {"class": list(MIAS_CLASSES), "severity": ["B", "M", UNKNOWN],
                       "tissue": ["D", "F", "G"]}
    assert filter_records(mias.records) == mias.records
    calc = filter_records(mias.records, classes=["CALC"])
    assert calc and {r.label for r in calc} == {"CALC"}
    normal = filter_records(mias.records, severities=[UNKNOWN])
    assert normal == [r for r in mias.records if r.label == "NORM"]
    both = filter_records(mias.records, classes=["CALC", "SPIC"], severities=["M"],
                          tissues=["D"])
    assert both and all(r.label in ("CALC", "SPIC") and r.severity == "M" and r.tissue == "D"
                        for r in both)
    assert describe("D", "tissue") == "D (dense-glandular)"
    assert describe("M", "severity") == "malignant"


# -- class counts -------------------------------------------------------------------------------
def counts_of(table, part: str, stage: str) -> list[int]:
    rows = table[(table["part"] == part) & (table["stage"] == stage)]
    return rows["films"].tolist()


@pytest.mark.parametrize("overrides", [{}, {"augment_target": 1300}, {"test_size": 0.3,
                                                                     "seed": 3}])
def test_class_counts_follow_trainings_split_and_balancing(mias: Dataset,
                                                           overrides: dict) -> None:
    config = TrainConfig(dataset="mias", root=str(mias.root), balance="augment", **overrides)
    table = class_counts(mias, config)
    assert list(table.columns) == ["class", "part", "stage", "films"]
    assert len(table) == len(MIAS_CLASSES) * len(PARTS) * 2
    before = sum(sum(counts_of(table, part, "before")) for part in PARTS)
    assert before == len(mias) == 256

    splits = split_dataset(mias, config.test_size, config.val_fraction, config.seed)
    labels = mias.labels
    for part, indices in zip(PARTS, (splits.train, splits.val, splits.test)):
        assert counts_of(table, part, "before") == np.bincount(labels[indices],
                                                               minlength=7).tolist()
    expected_before, expected_after = balance_counts(labels[splits.train], 7,
                                                     config.augment_target)
    assert counts_of(table, "train", "before") == expected_before.tolist()
    assert counts_of(table, "train", "after") == expected_after.tolist()
    for part in ("validation", "test"):  # never augmented
        assert counts_of(table, part, "after") == counts_of(table, part, "before")
    if config.augment_target == 1300:
        assert sum(counts_of(table, "train", "after")) == 1300
    else:
        assert len(set(counts_of(table, "train", "after"))) == 1  # every class at the largest


def test_class_counts_on_synthetic_films_with_folds_and_without_balancing(
        synthetic: Dataset) -> None:
    config = TrainConfig(dataset="mias", root=str(synthetic.root), folds=4, fold=1,
                         balance="augment")
    table = class_counts(synthetic, config)
    splits = split_dataset(synthetic, config.test_size, config.val_fraction, config.seed,
                           folds=4, fold=1)
    assert counts_of(table, "test", "before") == np.bincount(synthetic.labels[splits.test],
                                                             minlength=7).tolist()
    assert sum(table[table["stage"] == "before"]["films"]) == len(synthetic) == 28
    assert counts_of(table, "test", "after") == counts_of(table, "test", "before")
    unbalanced = class_counts(synthetic, replace(config, balance="none"))
    assert counts_of(unbalanced, "train", "after") == counts_of(unbalanced, "train", "before")


def test_an_impossible_target_is_a_config_error(synthetic: Dataset) -> None:
    with pytest.raises(BadConfigError, match="fewer than"):
        class_counts(synthetic, TrainConfig(root=str(synthetic.root), balance="augment",
                                            augment_target=3))


def test_counts_figure_shows_both_stages_with_every_part(synthetic: Dataset) -> None:
    table = class_counts(synthetic, TrainConfig(root=str(synthetic.root), balance="augment"))
    figure = counts_figure(table, synthetic=True)
    assert len(figure.data) == 2 * len(PARTS)
    assert "SYNTHETIC" in figure.layout.title.text
    for trace in figure.data:
        assert list(trace.x) == list(MIAS_CLASSES)
        assert [int(t) for t in trace.text] == list(trace.y)
    first, second = figure.data[0], figure.data[len(PARTS)]
    assert (first.xaxis, second.xaxis) == ("x", "x2")
    assert first.name.startswith("train (") and first.showlegend and not second.showlegend
    assert sum(second.y) == sum(counts_of(table, "train", "after"))
