"""Lesion crops from the real mini-MIAS films: the second paper's benign-vs-malignant task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.data import load_dataset
from core.data.records import Dataset
from core.films import read_film


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
