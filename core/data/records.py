"""What annotations say about films, independent of where they came from.

Every dataset loader (MIAS, CBIS-DDSM, a class folder, synthetic films) produces the same
``Dataset`` of ``FilmRecord``s, so splits, augmentation, training and the app never need to
know which source they are looking at.

Coordinates are always in *original film pixels*, row/column with the origin at the top-left
pixel centre, whatever convention the source used. ``Lesion`` is defined in ``core.geometry``
(beside the maps that move it) and imported here, so ``from core.data.records import Lesion``
still works; new code imports it from ``core.geometry``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.data.pairs import other_breasts
from core.geometry import Lesion

#: The paper's label encoding: alphabetical, so NORM has id 5 (its CLASS_ID / CLASS_VEC).
MIAS_CLASSES: tuple[str, ...] = ("ARCH", "ASYM", "CALC", "CIRC", "MISC", "NORM", "SPIC")
NORMAL_CLASS = "NORM"
CLASS_NAMES: dict[str, str] = {
    "ARCH": "architectural distortion",
    "ASYM": "asymmetry",
    "CALC": "calcification",
    "CIRC": "circumscribed mass",
    "MISC": "ill-defined mass",
    "NORM": "normal",
    "SPIC": "spiculated mass",
    "cancer": "cancer diagnosed in this breast (RSNA; every view of the breast)",
    "no_cancer": "no cancer found at screening (RSNA; not a proven benign lesion)",
}
#: Benign vs malignant, as the second paper (and CBIS-DDSM) labels them.
PATHOLOGY_CLASSES: tuple[str, ...] = ("BENIGN", "MALIGNANT")
#: The names that make a class of a two-class dataset its positive (malignant) class,
#: compared case-insensitively: CBIS-DDSM's and the lesion crops' MALIGNANT, RSNA
#: screening's ``cancer``, a user's class folder named ``malignant``. Named, not taken from
#: the class order: alphabetically ``cancer`` comes before ``no_cancer``, so "the second
#: class" would score the wrong one. A new two-class dataset adds its name here.
POSITIVE_CLASS_NAMES: frozenset[str] = frozenset({"malignant", "cancer"})
#: RSNA screening labels a breast, not a lesion: cancer or not (cancer second, the positive
#: class). Never "benign": a breast without cancer holds no proven benign lesion.
RSNA_CLASSES: tuple[str, ...] = ("no_cancer", "cancer")
#: First words of a synthetic Info.txt; the MIAS loader marks such a dataset as synthetic so
#: that every summary, plot and result made from it says so.
SYNTHETIC_MARKER = "SYNTHETIC FILMS"
SEVERITIES: tuple[str, ...] = ("B", "M")
TISSUES: dict[str, str] = {"F": "fatty", "G": "fatty-glandular", "D": "dense-glandular"}


def positive_class(classes: Sequence[str]) -> int | None:
    """The index of a two-class dataset's positive class (``POSITIVE_CLASS_NAMES``); None
    for any other class set, and when neither or both names are positive, since then
    nothing says which way round the screening figures must be read."""
    if len(classes) != 2:
        return None
    positive = [i for i, name in enumerate(classes)
                if name.casefold() in POSITIVE_CLASS_NAMES]
    return positive[0] if len(positive) == 1 else None


@dataclass(frozen=True)
class FilmRecord:
    """One film and everything its annotations say about it.

    ``classes`` is the dataset's label order; it is shared between records, and it is what
    ``class_id`` is relative to.
    """

    film_id: str
    patient_id: str
    label: str
    classes: tuple[str, ...]
    path: Path
    side: str | None = None  # "L" or "R"
    view: str | None = None  # "CC", "MLO"
    tissue: str | None = None  # "F", "G", "D" (MIAS) or a density grade (CBIS, RSNA)
    severity: str | None = None  # "B" or "M"; None for normal films
    lesions: tuple[Lesion, ...] = ()
    synthetic: bool = False
    rows: int = 1  # annotation rows behind this film (MIAS lists some films several times)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def class_id(self) -> int:
        return self.classes.index(self.label)


    @property
    def located_lesions(self) -> tuple[Lesion, ...]:
        return tuple(lesion for lesion in self.lesions if lesion.located)


@dataclass
class Dataset:
    """A loaded dataset: the films found, and an honest account of what was not usable.

    ``missing`` lists films the annotations name but the folder lacks; ``warnings`` says what
    else was skipped or doubtful, one line each.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    records: list[FilmRecord]
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    synthetic: bool = False

    def __len__(self) -> int:
        return len(self.records)

    @property
    def rows(self) -> int:
        """Annotation rows that refer to present films."""
        return sum(r.rows for r in self.records)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.class_id for r in self.records], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return np.array([r.patient_id for r in self.records])

    def subset(self, indices: Any) -> Dataset:
        """The same dataset restricted to some films (a split), keeping its class order."""
        chosen = [self.records[int(i)] for i in indices]
        return Dataset(self.name, self.root, self.classes, chosen, synthetic=self.synthetic)

    def summary(self) -> dict[str, Any]:
        """The ``data summary`` document: counts per class, severity and tissue."""
        by_class = Counter(r.label for r in self.records)
        by_severity = Counter(r.severity for r in self.records if r.severity)
        by_tissue = Counter(r.tissue for r in self.records if r.tissue)
        return {
            "dataset": self.name,
            "root": str(self.root),
            "synthetic": self.synthetic,
            "films": len(self.records),
            "patients": len({r.patient_id for r in self.records}),
            "rows": self.rows,
            "classes": {c: by_class.get(c, 0) for c in self.classes},
            "severity": {s: by_severity.get(s, 0) for s in SEVERITIES},
            "tissue": dict(sorted(by_tissue.items())),
            "lesions_located": sum(len(r.located_lesions) for r in self.records),
            # What reading both breasts together (``both_breasts``) can pair.
            "films_with_other_breast": sum(other is not None
                                           for other in other_breasts(self.records)),
            "missing": list(self.missing),
            "warnings": list(self.warnings),
        }
