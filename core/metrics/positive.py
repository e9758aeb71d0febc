"""The yes/no question a class set answers, and the score it is read from: one place for it.

Several figures read one binary question off a model's class probabilities: the AUCs of the
clinical pairs, sensitivity at 90% specificity, the patient-level figures, the operating
points and the calibration. Before this module each of them wrote its own ``1 - p(NORM)`` or
``p(positive)``; they must never drift apart, or a threshold picked on one page would mean
something else on the next.

Two questions exist:

* **malignant** (a two-class dataset with a positive class, ``positive_class``: CBIS-DDSM's
  MALIGNANT, RSNA's cancer): that class against the other, scored by its probability;
* **abnormal** (a class set with NORM, MIAS): any lesion against a normal film, scored by
  ``1 - p(NORM)``.

The screening question of a class set is the first of these that applies: the cancer
question is the one a screening reader is asked, and a two-class dataset has no NORM anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data.records import NORMAL_CLASS, positive_class


@dataclass(frozen=True)
class BinaryQuestion:
    """A yes/no question about a film, asked of a class set.

    ``key`` is the clinical pair it is (``"malignant"`` or ``"abnormal"``: the keys of
    ``clinical_pairs`` and of an evaluation's ``curves``); ``positive`` and ``negative`` name
    its two answers and ``score`` says how the score is made, in words a person reads.
    ``class_index`` is the class whose probability the score reads; ``complement``: the
    score is one minus it and the positive films are those *not* of that class.
    """

    key: str
    positive: str
    negative: str
    score: str
    class_index: int
    complement: bool = False

    def truth(self, y_true: Any) -> np.ndarray:
        """Which films are positive, from their class indices."""
        labels = np.asarray(y_true, dtype=np.int64)
        return labels != self.class_index if self.complement else labels == self.class_index

    def scores(self, probabilities: Any) -> np.ndarray:
        """Each film's score, from its class probabilities ``(n, classes)``."""
        column = np.asarray(probabilities, dtype=np.float64)[:, self.class_index]
        return 1.0 - column if self.complement else column

    def describe(self) -> dict[str, str]:
        """The question's names, as evaluations store them beside its figures."""
        return {"positive": self.positive, "negative": self.negative, "score": self.score}


def malignant_question(classes: Sequence[str]) -> BinaryQuestion | None:
    """The positive class against the other, for a two-class dataset with a positive class;
    None for any other class set."""
    index = positive_class(classes)
    if index is None:
        return None
    return BinaryQuestion("malignant", classes[index], classes[1 - index],
                          f"p({classes[index]})", index)


def abnormal_question(classes: Sequence[str]) -> BinaryQuestion | None:
    """Any lesion against a normal film, scored ``1 - p(NORM)``; None without NORM."""
    if NORMAL_CLASS not in classes:
        return None
    return BinaryQuestion("abnormal", "abnormal", "normal", f"1 - p({NORMAL_CLASS})",
                          list(classes).index(NORMAL_CLASS), complement=True)


def screening_question(classes: Sequence[str]) -> BinaryQuestion | None:
    """The question operating points and calibration are read on: the malignant one where a
    class set has it, else the abnormal one, else None (nothing says which way is positive)."""
    return malignant_question(classes) or abnormal_question(classes)
