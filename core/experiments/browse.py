"""What the Data page shows about a dataset: film thumbnails with their lesions, filters, and
the class counts training will see before and after balancing.

``class_counts`` reproduces training's data step without reading a film: the same
patient-grouped split (``core.prep.arrays.split_dataset`` with the config's test share,
validation share, seed and fold) and the same balancing (``balance_counts`` on the fit part
only, as ``core.train.fit`` grows it; the validation and test parts are never augmented). It
assumes every film is readable; a film training cannot read is left out there, and only there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.data.records import TISSUES, Dataset, FilmRecord
from core.films import read_film
from core.geometry import Transform
from core.prep.augment import balance_counts
from core.prep.preprocess import look_at
from core.prep.splits import split_dataset
from core.render.overlay import viridis_overlay
from core.render.palette import PALETTE
from core.runs.config import TrainConfig

#: Shown for a film without a severity (normal films) or a tissue (class-folder films).
UNKNOWN = "none"
SEVERITY_NAMES = {"B": "benign", "M": "malignant", UNKNOWN: "not given"}
PARTS = ("train", "validation", "test")
STAGES = ("before", "after")
_PART_COLOURS = dict(zip(PARTS, PALETTE))


def thumbnail(record: FilmRecord, size: int = 256) -> np.ndarray:
    """The film shrunk so its long side is ``size`` px, as RGB uint8, with its located
    lesions drawn as circles; a film stored inverted is shown the right way round.
    Unreadable films raise ``BadFilmError``.

    Shrinking happens before anything else, so a thumbnail costs one decode and a resize,
    however large the film.
    """
    # As training sees it, not as stored: the polarity is checked on the segmentation copy,
    # which is the thumbnail itself at the default size (one resize, not two).
    look = look_at(read_film(record.path).pixels, source=record.path)
    to_small = Transform.fit_long_side(look.pixels.shape, size)
    small = look.small if look.small.shape == to_small.dst_shape else \
        cv2.resize(look.pixels, to_small.dst_shape[::-1], interpolation=cv2.INTER_AREA)
    # One lesion at a time, as thumbnails always were (a batch may differ in the last bit).
    lesions = [to_small.map_lesion(lesion) for lesion in record.located_lesions]
    return viridis_overlay(small, np.zeros(to_small.dst_shape, np.float32), opacity=0.0,
                           lesions=lesions)


def severity_of(record: FilmRecord) -> str:
    return record.severity or UNKNOWN


def tissue_of(record: FilmRecord) -> str:
    return record.tissue or UNKNOWN


def filter_options(dataset: Dataset) -> dict[str, list[str]]:
    """The values each filter can take in this dataset, in a stable order: classes in the
    dataset's label order, severities and tissues as found."""
    present = {r.label for r in dataset.records}
    return {"class": [c for c in dataset.classes if c in present],
            "severity": sorted({severity_of(r) for r in dataset.records}),
            "tissue": sorted({tissue_of(r) for r in dataset.records})}


def filter_records(records: Iterable[FilmRecord], classes: Sequence[str] = (),
                   severities: Sequence[str] = (), tissues: Sequence[str] = ()
                   ) -> list[FilmRecord]:
    """Films matching every non-empty filter (an empty filter lets everything through)."""
    return [r for r in records
            if (not classes or r.label in classes)
            and (not severities or severity_of(r) in severities)
            and (not tissues or tissue_of(r) in tissues)]


def describe(value: str, kind: str) -> str:
    """A filter value in words: ``B`` is benign, ``D`` dense-glandular."""
    if kind == "severity":
        return SEVERITY_NAMES.get(value, value)
    if kind == "tissue" and value in TISSUES:
        return f"{value} ({TISSUES[value]})"
    return value


def class_counts(dataset: Dataset, config: TrainConfig) -> pd.DataFrame:
    """Films per class in each part of training's split, before and after balancing.

    Columns: ``class``, ``part`` (train, validation, test), ``stage`` (before, after),
    ``films``; one row for every class, part and stage. ``train`` is the part the model is
    fitted on (training's ``splits.train``), the only one that balancing grows.
    """
    splits = split_dataset(dataset, config.test_size, config.val_fraction, config.seed,
                           folds=config.folds, fold=config.fold)
    labels, n_classes = dataset.labels, len(dataset.classes)
    parts = {"train": splits.train, "validation": splits.val, "test": splits.test}
    rows = []
    for part, indices in parts.items():
        before = np.bincount(labels[indices], minlength=n_classes)
        after = before
        if part == "train" and config.balance == "augment":
            before, after = balance_counts(labels[indices], n_classes, config.augment_target)
        for stage, counts in (("before", before), ("after", after)):
            rows += [{"class": name, "part": part, "stage": stage, "films": int(counts[i])}
                     for i, name in enumerate(dataset.classes)]
    return pd.DataFrame(rows, columns=["class", "part", "stage", "films"])


def counts_figure(counts: pd.DataFrame, synthetic: bool = False) -> go.Figure:
    """Two histograms side by side, before and after balancing, with one bar per part and
    class and the count written on each bar; the y axis is shared so the growth shows."""
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                           subplot_titles=("before balancing", "after balancing (train grown)"))
    classes = list(dict.fromkeys(counts["class"]))
    for column, stage in enumerate(STAGES, start=1):
        for part in PARTS:
            rows = counts[(counts["stage"] == stage) & (counts["part"] == part)]
            films = rows.set_index("class")["films"].reindex(classes, fill_value=0)
            name = f"{part} ({_total(counts, part, 'before')} → {_total(counts, part, 'after')})"
            figure.add_trace(go.Bar(
                x=classes, y=films.tolist(), name=name, legendgroup=part,
                showlegend=column == 1, marker_color=_PART_COLOURS[part],
                text=films.tolist(), textposition="outside",
                hovertemplate=f"{part}, %{{x}}: %{{y}} films<extra>{stage}</extra>"),
                row=1, col=column)
    title = "Films per class in training's split"
    figure.update_layout(barmode="group", height=420, margin={"l": 10, "r": 10, "t": 70, "b": 10},
                         title=("SYNTHETIC films: " if synthetic else "") + title,
                         legend={"title": "part (films before → after)", "orientation": "h",
                                 "y": -0.15})
    figure.update_yaxes(title_text="films", col=1)
    return figure


def _total(counts: pd.DataFrame, part: str, stage: str) -> int:
    return int(counts[(counts["part"] == part) & (counts["stage"] == stage)]["films"].sum())
