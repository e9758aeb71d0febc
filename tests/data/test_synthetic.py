"""Synthetic films: deterministic, balanced, readable by the real MIAS loader, and showing
each lesion where its ground truth says, with the two films of a patient alike."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data import load_dataset, mias, synthetic
from core.data.records import MIAS_CLASSES, SYNTHETIC_MARKER
from core.data.synthetic import FilmSpec, film_masks, generate, make_specs, render_film
from core.errors import BadConfigError
from core.films import read_film

SIZE = 256


@pytest.fixture(scope="module")
def specs() -> list[FilmSpec]:
    return make_specs(42, seed=11)  # six films of each class, 21 patients


@pytest.fixture(scope="module")
def films(specs: list[FilmSpec]) -> dict[int, np.ndarray]:
    return {spec.number: render_film(spec, SIZE) for spec in specs}


def _of(specs: list[FilmSpec], label: str) -> list[FilmSpec]:
    chosen = [spec for spec in specs if spec.label == label]
    assert chosen, f"no {label} film in the fixture"
    return chosen


def _distance(spec: FilmSpec) -> tuple[np.ndarray, float]:
    """Distance of every pixel from the lesion centre, and the radius, in film pixels."""
    row, col = spec.center_px(SIZE)
    rows, cols = np.indices((SIZE, SIZE))
    return np.hypot(rows - row, cols - col), spec.radius_px(SIZE)


def _partner(specs: list[FilmSpec], spec: FilmSpec) -> FilmSpec:
    number = spec.number + 1 if spec.number % 2 else spec.number - 1
    return next(other for other in specs if other.number == number)


def _lesion_only(spec: FilmSpec, film: np.ndarray) -> np.ndarray:
    """What the lesion changed: the film minus the same film drawn without it."""
    return film.astype(np.float64) - render_film(replace(spec, lesion=None), SIZE)


# -- determinism --------------------------------------------------------------------------
def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_same_seed_gives_the_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    one = _files(generate(tmp_path / "one", 9, seed=3, size=128, workers=1))
    many = _files(generate(tmp_path / "many", 9, seed=3, size=128, workers=3))
    assert sorted(one) == ["Info.txt"] + [f"mdb{i:03d}.pgm" for i in range(1, 10)]
    assert one == many


def test_another_seed_gives_other_films(tmp_path: Path) -> None:
    first = _files(generate(tmp_path / "a", 6, seed=3, size=128))
    second = _files(generate(tmp_path / "b", 6, seed=4, size=128))
    for name in first:
        assert first[name] != second[name], name


def test_a_spec_draws_the_same_film_at_every_size(specs: list[FilmSpec]) -> None:
    for spec in specs[:4]:
        small = render_film(spec, 128).astype(np.float64)
        large = cv2.resize(render_film(spec, 256), (128, 128), interpolation=cv2.INTER_AREA)
        assert np.corrcoef(small.ravel(), large.ravel())[0, 1] > 0.95


# -- classes --------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [7, 14, 20, 70, 71])
def test_classes_are_balanced(n: int) -> None:
    counts = Counter(spec.label for spec in make_specs(n, seed=5))
    assert set(counts) == set(MIAS_CLASSES)
    assert max(counts.values()) - min(counts.values()) <= 1
    if n % len(MIAS_CLASSES) == 0:
        assert set(counts.values()) == {n // len(MIAS_CLASSES)}


def test_classes_are_shuffled_by_seed() -> None:
    orders = {tuple(spec.label for spec in make_specs(70, seed=seed)) for seed in range(3)}
    assert len(orders) == 3


def test_films_pair_into_patients_with_sides(specs: list[FilmSpec]) -> None:
    for spec in specs:
        assert spec.side == ("R" if spec.number % 2 else "L")
        partner = _partner(specs, spec)
        assert partner.anatomy.seed == spec.anatomy.seed
        assert partner.tissue == spec.tissue


def test_severity_follows_the_documented_rule() -> None:
    every = make_specs(140, seed=2)
    for spec in every:
        if spec.lesion is None:
            assert spec.severity is None
            continue
        assert spec.severity == spec.lesion.severity
        if spec.label == "SPIC":
            assert spec.severity == "M"
        if spec.label == "CIRC":
            assert spec.severity == "B"
        low, high = (synthetic.MALIGNANT_IRREGULARITY if spec.severity == "M"
                     else synthetic.BENIGN_IRREGULARITY)
        assert low <= spec.lesion.irregularity <= high
    for label in ("CALC", "MISC", "ARCH", "ASYM"):
        assert {spec.severity for spec in every if spec.label == label} == {"B", "M"}


# -- Info.txt and the real loader ----------------------------------------------------------
@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("synthetic"), 14, seed=2, size=SIZE)


def test_info_txt_has_the_mias_layout(written: Path) -> None:
    lines = (written / "Info.txt").read_text(encoding="ascii").split("\n")
    assert lines[0].startswith(SYNTHETIC_MARKER)
    assert "NOT REAL MAMMOGRAMS" in lines[0] and "core.data.synthetic" in lines[0]
    assert "seed 2" in lines[0] and f"size {SIZE}" in lines[0]
    rows = [line for line in lines if line.startswith("mdb")]
    assert len(rows) == 14
    for row in rows:
        tokens = row.split(" ")
        if tokens[2] == "NORM":
            assert row.endswith(" ") and len(row.split()) == 3
        else:
            assert not row.endswith(" ") and len(tokens) == 7
            x, y, radius = (int(t) for t in tokens[4:])
            assert 0 <= x < 1024 and 0 <= y < 1024 and radius > 0


def test_real_loader_reads_the_folder_as_synthetic(written: Path) -> None:
    dataset = mias.load(written)
    assert dataset.synthetic and all(record.synthetic for record in dataset.records)
    assert load_dataset("mias", written).synthetic
    assert dataset.warnings == [] and dataset.missing == []
    truth = {spec.film_id: spec for spec in make_specs(14, seed=2)}
    assert sorted(truth) == [record.film_id for record in dataset.records]
    for record in dataset.records:
        spec = truth[record.film_id]
        assert (record.label, record.tissue, record.severity, record.side) == (
            spec.label, spec.tissue, spec.severity, spec.side)
        assert record.extra["film_shape"] == (SIZE, SIZE)
        if spec.lesion is None:
            assert record.lesions == ()
            continue
        (lesion,) = record.lesions
        assert lesion.kind == spec.label
        assert np.allclose(lesion.center, spec.center_px(SIZE), atol=1.0)
        assert lesion.radius == pytest.approx(spec.radius_px(SIZE), abs=1.0)


def test_film_files_are_binary_pgm_that_say_synthetic(written: Path) -> None:
    spec = make_specs(14, seed=2)[4]
    data = (written / f"{spec.film_id}.pgm").read_bytes()
    assert data.startswith(b"P5\n# SYNTHETIC FILM")
    film = read_film(written / f"{spec.film_id}.pgm")
    assert film.pixels.dtype == np.uint8 and film.bit_depth == 8
    assert np.array_equal(film.pixels, render_film(spec, SIZE))


# -- anatomy ---------------------------------------------------------------------------------
def test_films_are_uint8_with_a_dark_background(specs: list[FilmSpec],
                                                films: dict[int, np.ndarray]) -> None:
    for spec in specs:
        film = films[spec.number]
        assert film.dtype == np.uint8 and film.shape == (SIZE, SIZE)
        breast, _ = film_masks(spec, SIZE)
        background = ~cv2.dilate(breast.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        background[: SIZE // 5] = False  # the film label lives up there
        assert film[background].mean() < 6
        assert film[breast].mean() > 60


def test_chest_wall_and_muscle_are_on_the_film_side(specs: list[FilmSpec],
                                                    films: dict[int, np.ndarray]) -> None:
    for spec in specs:
        film, (breast, muscle) = films[spec.number], film_masks(spec, SIZE)
        chest_left = spec.side == "L"
        columns = np.nonzero(breast.any(axis=0))[0]
        chest_col = columns[0] if chest_left else columns[-1]
        expected = spec.anatomy.chest * SIZE - 0.5
        assert abs(chest_col - (expected if chest_left else SIZE - 1 - expected)) <= 1.5
        # The muscle: at the top, against the chest wall, brighter than the tissue.
        muscle_rows, muscle_cols = np.nonzero(muscle)
        assert muscle_rows.min() == 0
        assert (muscle_cols.mean() < SIZE / 2) == chest_left
        assert film[muscle].mean() > film[breast & ~muscle].mean() + 25
        # Behind the chest wall the film is empty.
        lower = film[SIZE // 4:]
        behind = lower[:, :chest_col - 1] if chest_left else lower[:, chest_col + 2:]
        assert behind.size == 0 or behind.mean() < 6


def test_pairs_share_anatomy_mirrored(specs: list[FilmSpec], films: dict[int, np.ndarray]) -> None:
    pair_corr, stranger_corr = [], []
    numbers = sorted(films)
    for right in numbers[::2]:
        stranger = right + 3 if right + 3 <= numbers[-1] else right - 1  # another's left film
        for other, out in ((right + 1, pair_corr), (stranger, stranger_corr)):
            a, b = films[right].astype(np.float64), films[other][:, ::-1].astype(np.float64)
            both = (a > 30) & (b > 30)
            out.append(np.corrcoef(a[both], b[both])[0, 1])
    assert min(pair_corr) > 0.8
    assert np.median(pair_corr) > np.median(stranger_corr) + 0.15


# -- lesions ---------------------------------------------------------------------------------
def test_every_lesion_lies_inside_its_circle_within_the_breast(
        specs: list[FilmSpec], films: dict[int, np.ndarray]) -> None:
    for spec in specs:
        if spec.lesion is None:
            assert spec.center_px(SIZE) is None
            continue
        dist, radius = _distance(spec)
        breast, muscle = film_masks(spec, SIZE)
        disk = dist <= radius
        assert (breast & ~muscle)[disk].all(), spec.film_id
        change = _lesion_only(spec, films[spec.number])
        assert not change[dist > radius + 1].any(), f"{spec.film_id} draws outside its circle"
        assert np.abs(change[disk]).mean() > 3, f"{spec.film_id} draws almost nothing"


@pytest.mark.parametrize("label", ["CIRC", "MISC", "SPIC", "ASYM"])
def test_masses_and_densities_stand_out(label: str, specs: list[FilmSpec],
                                        films: dict[int, np.ndarray]) -> None:
    for spec in _of(specs, label):
        film = films[spec.number].astype(np.float64)
        dist, radius = _distance(spec)
        breast, muscle = film_masks(spec, SIZE)
        ring = (dist > radius) & (dist <= 1.6 * radius) & breast & ~muscle
        contrast = film[dist <= 0.5 * radius].mean() - film[ring].mean()
        assert contrast > 10, f"{spec.film_id} {label}: contrast {contrast:.1f}"


def test_circumscribed_masses_have_sharper_margins_than_ill_defined(
        specs: list[FilmSpec], films: dict[int, np.ndarray]) -> None:
    def margin_steepness(spec: FilmSpec) -> float:
        change = _lesion_only(spec, films[spec.number])
        grad = np.hypot(*np.gradient(change))
        return float(np.percentile(grad[change > 0], 95) / change.max())

    circ = [margin_steepness(spec) for spec in _of(specs, "CIRC")]
    misc = [margin_steepness(spec) for spec in _of(specs, "MISC")]
    assert min(circ) > max(misc)


def _specks(image: np.ndarray, where: np.ndarray) -> int:
    """Local maxima that rise clearly above their immediate neighbourhood."""
    image = np.clip(image, 0, 255).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    tophat = cv2.morphologyEx(image, cv2.MORPH_TOPHAT, kernel)
    peaks = (tophat == cv2.dilate(tophat, np.ones((3, 3), np.uint8))) & (tophat > 25)
    return int((peaks & where).sum())


def test_calcifications_are_many_small_specks(specs: list[FilmSpec],
                                              films: dict[int, np.ndarray]) -> None:
    counts = {"B": [], "M": []}
    for spec in _of(specs, "CALC"):
        dist, radius = _distance(spec)
        disk = dist <= radius
        clean = render_film(replace(spec, lesion=None), SIZE)
        found = _specks(films[spec.number], disk)
        assert found >= 4 and found >= _specks(clean, disk) + 3, spec.film_id
        counts[spec.severity].append(found)
    assert counts["B"] and counts["M"]
    assert np.mean(counts["M"]) > np.mean(counts["B"])


def test_distortions_have_lines_and_no_central_mass(specs: list[FilmSpec],
                                                    films: dict[int, np.ndarray]) -> None:
    for spec in _of(specs, "ARCH") + _of(specs, "SPIC"):
        change = _lesion_only(spec, films[spec.number])
        dist, radius = _distance(spec)
        centre = np.median(change[dist <= 0.15 * radius])
        lines = (change[(dist > 0.45 * radius) & (dist < 0.8 * radius)] > 8).mean()
        assert lines > 0.1, f"{spec.film_id}: only {lines:.2f} of the annulus is line"
        if spec.label == "ARCH":
            assert centre < 15, f"{spec.film_id}: a central mass of {centre:.0f}"
        else:
            assert centre > 30, f"{spec.film_id}: no central mass"


def test_asymmetry_is_missing_from_the_other_side(specs: list[FilmSpec],
                                                  films: dict[int, np.ndarray]) -> None:
    for spec in _of(specs, "ASYM"):
        partner = _partner(specs, spec)
        dist, radius = _distance(spec)
        here = films[spec.number].astype(np.float64)
        there = films[partner.number][:, ::-1].astype(np.float64)  # mirrored onto this film
        breast, muscle = film_masks(spec, SIZE)
        core = dist <= 0.5 * radius
        ring = (dist > radius) & (dist <= 1.5 * radius) & breast & ~muscle
        side_difference = (here - there)[core].mean() - (here - there)[ring].mean()
        assert side_difference > 15, f"{spec.film_id}: only {side_difference:.1f} brighter"


def test_lesions_of_a_patient_never_overlap_once_mirrored() -> None:
    every = make_specs(140, seed=8)
    for right, left in zip(every[::2], every[1::2]):
        if right.lesion and left.lesion:
            gap = np.hypot(right.lesion.center[0] - left.lesion.center[0],
                           right.lesion.center[1] - left.lesion.center[1])
            assert gap >= right.lesion.radius + left.lesion.radius


def test_radii_are_like_mias() -> None:
    every = make_specs(350, seed=1)
    radii = {label: [spec.radius_px(1024) for spec in every if spec.label == label]
             for label in MIAS_CLASSES if label != "NORM"}
    masses = radii["CIRC"] + radii["MISC"] + radii["SPIC"]
    assert 30 < np.median(masses) < 55
    assert np.median(radii["CALC"]) < np.median(masses)


# -- refusing bad requests ------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"n": 0}, {"n": 1000}, {"n": 5, "size": 32}, {"n": 5, "seed": -1}, {"n": 5, "workers": 0},
])
def test_bad_requests_raise_config_errors(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(BadConfigError):
        generate(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out" / "Info.txt").exists()


@pytest.mark.parametrize("name, content", [
    ("Info.txt", b"MIAS MiniMammographic Database\nmdb001 G CIRC B 1 2 3\n"),
    ("mdb001.png", b"\x89PNG\r\n\x1a\n"),
    ("mdb001.pgm", b"P5\n1024 1024\n255\n"),
])
def test_never_writes_over_real_data(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadConfigError, match="not synthetic"):
        generate(tmp_path, 4, size=64)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert (tmp_path / name).read_bytes() == content


def test_regenerating_smaller_removes_old_films(tmp_path: Path) -> None:
    generate(tmp_path, 6, size=64)
    generate(tmp_path, 3, size=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Info.txt", "mdb001.pgm", "mdb002.pgm", "mdb003.pgm"]
    assert len(mias.load(tmp_path)) == 3
