"""Lesion crops from the real mini-MIAS films: the second paper's benign-vs-malignant task."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.data import load_dataset, mias_lesions
from core.data.records import Dataset
from core.films import Film, read_film
from core.geometry import nearest_pixel


@pytest.fixture(scope="module")
def lesions(mias_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dataset]:
    with pytest.MonkeyPatch.context() as patch:  # crops go to this module's own cache
        patch.setenv("MAMMO_CACHE", str(tmp_path_factory.mktemp("crops-cache")))
        yield load_dataset("mias-lesions", mias_root)


def test_every_located_lesion_with_a_severity_becomes_one_crop(lesions: Dataset) -> None:
    labels = [r.label for r in lesions.records]
    assert (len(labels), labels.count("BENIGN"), labels.count("MALIGNANT")) == (91, 51, 40)
    assert lesions.classes == ("BENIGN", "MALIGNANT")
    unlocated = [w for w in lesions.warnings if "no location" in w]
    assert [w.split(":")[0] for w in unlocated] == ["mdb059", "mdb216", "mdb245"]
    by_film = {}
    for record in lesions.records:
        by_film.setdefault(record.extra["film"], set()).add(record.patient_id)
    assert all(len(patients) == 1 for patients in by_film.values())


def test_a_crop_is_the_film_around_the_lesion_centre(lesions: Dataset, mias_root: Path) -> None:
    mias = {r.film_id: r for r in load_dataset("mias", mias_root).records}
    for record in lesions.records[:12]:
        film = mias[record.extra["film"]]
        source = next(lesion for lesion in film.located_lesions
                      if abs(lesion.radius - record.lesions[0].radius) < 1e-6)
        crop = read_film(record.path).pixels
        side = record.extra["side_px"]
        assert crop.shape == (side, side)
        row, col = (round(v) for v in source.center)
        centre = record.lesions[0].center
        assert crop[int(centre[0]), int(centre[1])] == read_film(film.path).pixels[row, col]


def test_crops_are_cut_once_and_reused(lesions: Dataset, mias_root: Path) -> None:
    times = {r.path: r.path.stat().st_mtime_ns for r in lesions.records}
    again = load_dataset("mias-lesions", mias_root)
    assert {r.path: r.path.stat().st_mtime_ns for r in again.records} == times
    assert np.all([r.path.parent == lesions.records[0].path.parent for r in again.records])


@pytest.fixture()
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAMMO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_crops_of_small_films_centre_the_nearest_pixel(synthetic_root: Path,
                                                       own_cache: Path) -> None:
    """128 px films put lesion centres between pixels; each crop is the film's window around
    the pixel nearest the centre (zero past the film's edge), and the lesion sits there."""
    crops = load_dataset("mias-lesions", synthetic_root, min_side=16, max_side=64)
    films = {r.film_id: r for r in load_dataset("mias", synthetic_root).records}
    assert crops.records
    for record in crops.records:
        film = films[record.extra["film"]]
        side = record.extra["side_px"]
        (source,) = [lesion for lesion in film.located_lesions
                     if lesion.severity == record.severity]
        row, col = nearest_pixel(source.center)
        padded = np.pad(read_film(film.path).pixels, side)
        expected = padded[row + side - side // 2:row + 2 * side - side // 2,
                          col + side - side // 2:col + 2 * side - side // 2]
        assert np.array_equal(read_film(record.path).pixels, expected)
        assert record.lesions[0].center == (float(side // 2), float(side // 2))
        assert record.lesions[0].radius == source.radius


def test_a_film_that_changed_size_since_listing_is_left_out(synthetic_root: Path, own_cache: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    def smaller(path: Path) -> Film:
        film = read_film(path)
        return replace(film, pixels=film.pixels[:100])

    monkeypatch.setattr(mias_lesions, "read_film", smaller)
    crops = load_dataset("mias-lesions", synthetic_root, min_side=16, max_side=64)
    assert not crops.records
    assert any("not the 128 x 128 px it was listed at" in w for w in crops.warnings)
