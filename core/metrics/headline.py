"""The headline figures: one registry that the report, cross-validation, sweeps, the runs
table, the saved evaluation and the pages all read.

A figure added, relabelled or reordered here is added, relabelled or reordered everywhere;
before, each of those places kept its own list and they had drifted apart. The keys are the
keys of the evaluation JSON (``classification_summary`` and ``evaluate_run``) and of the
manifest's validation summary: saved runs and saved experiment results must keep reading,
so a key is never renamed here.

Each figure also says what a model that learnt nothing scores on it (the trivial
baselines), because a figure without its baseline fools the reader: on mini-MIAS,
answering NORM for every film already scores a weighted F1 near 0.5.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: What a model that learnt nothing scores on a figure, read from an evaluation summary.
Chance = Callable[[Mapping[str, Any]], "float | None"]

# Where each figure is computed, as dotted names (``tests/metrics/test_headline.py`` checks
# that they resolve). Names, not function objects: ``core.metrics.scores`` reads this
# registry, and ``core.evaluate`` sits above ``core.metrics`` and may not be imported here.
FROM_CONFUSION = "core.metrics.scores.scores_from_confusion"
FROM_SUMMARY = "core.metrics.scores.classification_summary"
FROM_CLINICAL_PAIRS = "core.metrics.scores.clinical_pairs"
FROM_PATIENT_LEVEL = "core.metrics.scores.patient_level"
FROM_LOCALISATION = "core.evaluate.localisation.localisation_scores"

#: The specificity at which a screening sensitivity is read: a screening programme recalls
#: only a few of the women without cancer, so the useful question is how many cancers the
#: model finds while it keeps 90% of them free of a recall, not its accuracy at p = 0.5.
#: The figures' keys say 90: a change here is a new key, never a silent change of meaning.
SCREENING_SPECIFICITY = 0.90


def uniform_guess(summary: Mapping[str, Any]) -> float | None:
    """A uniform guess among k classes is right on 1/k of the films and recalls 1/k of each
    class, so 1/k for accuracy and balanced accuracy (``baselines.chance_accuracy``)."""
    return (summary.get("baselines") or {}).get("chance_accuracy")


def coin_flip(summary: Mapping[str, Any]) -> float:
    """A score that knows nothing ranks a positive film above a negative one half the time."""
    return 0.5


def random_score_sensitivity(summary: Mapping[str, Any]) -> float:
    """A score that knows nothing calls as many positives positive as negatives, so at
    specificity s it finds a share 1 - s of the positives: 0.10 at 90% specificity."""
    return round(1.0 - SCREENING_SPECIFICITY, 12)


def random_point_in_breast(summary: Mapping[str, Any]) -> float | None:
    """The pointing game of a point dropped anywhere in the breast: the localisation
    scores' mean chance rate (``localisation.overall.chance``)."""
    return ((summary.get("localisation") or {}).get("overall") or {}).get("chance")


@dataclass(frozen=True)
class Headline:
    """One headline figure.

    ``computed_by`` names the function that computes it (a dotted name). ``majority``: the
    summary's always-majority baseline (``baselines.majority``, the training split's most
    common class answered for every film) carries this figure. ``chance``: how to read its
    chance level from a summary, None where no simple one exists (the F1 figures).
    ``test_only``: only an evaluation on the test split has it (it needs severities,
    lesion positions or patient ids), so the manifest's validation summary does not.
    ``at_a_glance``: one of the few figures a reader looks at first (the Evaluate page's
    cards).
    """

    key: str
    label: str
    computed_by: str
    majority: bool = False
    chance: Chance | None = None
    test_only: bool = False
    at_a_glance: bool = False
    higher_is_better: bool = True

    def majority_baseline(self, summary: Mapping[str, Any]) -> float | None:
        """What always answering the majority class scores, where the summary has it."""
        if not self.majority:
            return None
        return ((summary.get("baselines") or {}).get("majority") or {}).get(self.key)

    def chance_baseline(self, summary: Mapping[str, Any]) -> float | None:
        return None if self.chance is None else self.chance(summary)

    def trivial_baseline(self, summary: Mapping[str, Any]) -> float | None:
        """The one baseline to set beside the figure where there is room for only one: the
        always-majority model's where it has one (the stronger of the two for label
        figures), otherwise chance; None where the figure itself does not apply."""
        if summary.get(self.key) is None:
            return None
        majority = self.majority_baseline(summary)
        return majority if majority is not None else self.chance_baseline(summary)


#: Every headline figure, in the order a reader compares them: label figures, then AUCs,
#: then localisation. Tables and summaries list them in this order.
HEADLINE: tuple[Headline, ...] = (
    Headline("accuracy", "accuracy", FROM_CONFUSION, majority=True, chance=uniform_guess,
             at_a_glance=True),
    Headline("balanced_accuracy", "balanced accuracy", FROM_CONFUSION, majority=True,
             chance=uniform_guess),
    Headline("macro_f1", "macro F1", FROM_CONFUSION, majority=True, at_a_glance=True),
    Headline("weighted_f1", "weighted F1", FROM_CONFUSION, majority=True),
    # Anything but NORM vs NORM, scored 1 - p(NORM); None without a NORM class.
    Headline("auc_abnormal", "AUC abnormal vs normal", FROM_SUMMARY, chance=coin_flip,
             at_a_glance=True),
    # The malignant (positive) class scored by its probability. MIAS: malignant vs benign
    # among the abnormal films (their severities); a two-class dataset with a positive class
    # (core.data.records.positive_class: MALIGNANT, cancer): positive vs negative over every
    # film. The pair's AUC, stored by evaluate_run.
    Headline("auc_malignant", "AUC malignant", FROM_CLINICAL_PAIRS, chance=coin_flip,
             test_only=True, at_a_glance=True),
    # Two-class datasets with a positive class only: the most positive films found while
    # SCREENING_SPECIFICITY of the negative films are called negative (scores.operating_point).
    Headline("sensitivity_at_90_specificity", "sensitivity at 90% specificity", FROM_SUMMARY,
             chance=random_score_sensitivity),
    # The same two figures per woman: scored by her highest film's p(positive), positive when
    # any of her films is; evaluate_run stores them beside ``patient_level``.
    Headline("patient_auc", "patient AUC (her highest film)", FROM_PATIENT_LEVEL,
             chance=coin_flip, test_only=True, at_a_glance=True),
    Headline("patient_sensitivity_at_90_specificity", "patient sensitivity at 90% specificity",
             FROM_PATIENT_LEVEL, chance=random_score_sensitivity, test_only=True,
             at_a_glance=True),
    # Two-class problems only, scored by p(second class).
    Headline("auc", "AUC (two classes)", FROM_SUMMARY, chance=coin_flip),
    # Mean of each class's AUC against the rest, over the classes present.
    Headline("auc_ovr_macro", "mean AUC, each class vs rest", FROM_SUMMARY, chance=coin_flip),
    # Share of films with a located lesion whose heatmap maximum falls on it; evaluate_run
    # stores the localisation scores' overall figure.
    Headline("pointing_game", "pointing game", FROM_LOCALISATION,
             chance=random_point_in_breast, test_only=True, at_a_glance=True),
)

#: The figures the validation summary of training has (every one but the test-only).
VALIDATION: tuple[Headline, ...] = tuple(m for m in HEADLINE if not m.test_only)
#: The figures only an evaluation on the test split has.
TEST_ONLY: tuple[Headline, ...] = tuple(m for m in HEADLINE if m.test_only)

#: The figure runs are ranked by unless told otherwise (sweeps, the Runs page's chart): macro
#: F1, because every class counts in it equally and answering the majority class scores low.
RANKED_BY = "macro_f1"

_BY_KEY = {m.key: m for m in HEADLINE}


def by_key(key: str) -> Headline:
    """The registry entry of ``key``; a KeyError names the known keys."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"{key!r} is not a headline figure; known: "
                       f"{', '.join(_BY_KEY)}") from None


def keys(metrics: tuple[Headline, ...] = HEADLINE) -> tuple[str, ...]:
    """The keys of ``metrics`` (all of them by default), in registry order."""
    return tuple(m.key for m in metrics)
