"""Does the heatmap point at the lesion? Scores against located ground truth, in original
film pixels (maps from ``heatmaps.to_film``, lesions from the dataset records).

* Pointing game (Zhang et al., ECCV 2016): a hit when the map's maximum lies within a lesion's
  radius plus ``tolerance_px`` (15 px, as the issue asks) of its centre. The first maximum
  in row-major order is the point; a flat map (no maximum above its minimum) points nowhere
  and is a miss.
* Overlap: the map thresholded at ``threshold`` times its maximum against the lesion disk
  (the union of the film's lesion circles): IoU, and the share of the thresholded region that
  lies inside the disk. A map with nothing above zero scores 0 on both.
* Chance: the pointing game's hit zone (the same disks, radius plus tolerance) as a share of
  the breast, which is what a point dropped uniformly on the breast would score.

Films without a located lesion (normal films, MIAS's NOTE 3 calcifications spread over the
breast, mdb059) cannot be scored; they are left out and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.data.records import FilmRecord
from core.errors import BadConfigError
from core.geometry import Lesion

TOLERANCE_PX = 15.0
THRESHOLD = 0.5


def lesion_disk(shape: tuple[int, int], lesions: Sequence[Lesion],
                extra_px: float = 0.0) -> np.ndarray:
    """Pixels (bool, ``shape``) whose centre lies within ``radius + extra_px`` of a located
    lesion's centre."""
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    disk = np.zeros(shape, bool)
    for lesion in lesions:
        if lesion.located:
            (row, col), reach = lesion.center, lesion.radius + extra_px
            disk |= (rows - row) ** 2 + (cols - col) ** 2 <= reach**2
    return disk


def pointing_hit(heatmap: np.ndarray, lesions: Sequence[Lesion],
                 tolerance_px: float = TOLERANCE_PX) -> bool:
    """True when the map's maximum lies within radius + ``tolerance_px`` of a located lesion."""
    heat = _check_map(heatmap)
    _check_tolerance(tolerance_px)
    if not heat.max() > heat.min():
        return False
    row, col = np.unravel_index(np.argmax(heat), heat.shape)
    return any(np.hypot(row - lesion.center[0], col - lesion.center[1])
               <= lesion.radius + tolerance_px for lesion in lesions if lesion.located)


def overlap(heatmap: np.ndarray, lesions: Sequence[Lesion],
            threshold: float = THRESHOLD) -> dict[str, float]:
    """``{"iou", "inside"}`` of the region where the map is at least ``threshold`` times its
    maximum, against the lesion disk."""
    heat = _check_map(heatmap)
    if not 0.0 < float(threshold) <= 1.0:
        raise BadConfigError(f"threshold must be in (0, 1], a share of the map's maximum, "
                             f"got {threshold!r}")
    peak = float(heat.max())
    region = heat >= threshold * peak if peak > 0.0 else np.zeros(heat.shape, bool)
    disk = lesion_disk(heat.shape, lesions)
    common = int(np.count_nonzero(region & disk))
    union = int(np.count_nonzero(region | disk))
    size = int(np.count_nonzero(region))
    return {"iou": common / union if union else 0.0, "inside": common / size if size else 0.0}


def chance_rate(breast_mask: np.ndarray, lesions: Sequence[Lesion],
                tolerance_px: float = TOLERANCE_PX) -> float:
    """The pointing game's chance level on one film: the share of the breast within radius +
    ``tolerance_px`` of a located lesion (``tolerance_px=0``: the lesion disk's own share).
    ``breast_mask`` is ``core.prep.preprocess.breast_mask`` of the film."""
    mask = np.asarray(breast_mask, dtype=bool)
    _check_tolerance(tolerance_px)
    if mask.ndim != 2 or not mask.any():
        raise BadConfigError("chance_rate needs a 2-D breast mask with some breast in it")
    zone = lesion_disk(mask.shape, lesions, tolerance_px) & mask
    return float(np.count_nonzero(zone) / np.count_nonzero(mask))


def localisation_scores(maps: Sequence[np.ndarray | None], records: Sequence[FilmRecord],
                        tolerance_px: float = TOLERANCE_PX, threshold: float = THRESHOLD,
                        breast_masks: Sequence[np.ndarray | None] | None = None
                        ) -> dict[str, Any]:
    """Pointing game and overlap over films, overall and per class (the record's label).

    ``maps[i]`` is film ``records[i]``'s heatmap on its original grid; it may be ``None``
    for a film without a located lesion, which is skipped either way. With ``breast_masks``
    each group also gets its mean chance rate. Rates and means are ``None`` for a group with
    no scored film. Returns ``{"overall", "per_class", "n_scored", "n_skipped_no_location",
    "tolerance_px", "threshold"}``; a group is ``{"n", "hits", "pointing_game", "iou",
    "inside"[, "chance"]}``.
    """
    if len(maps) != len(records):
        raise BadConfigError(f"{len(maps)} heatmaps for {len(records)} films")
    if breast_masks is not None and len(breast_masks) != len(records):
        raise BadConfigError(f"{len(breast_masks)} breast masks for {len(records)} films")
    scored: dict[str, list[dict[str, float]]] = {}
    skipped = 0
    for index, (heatmap, record) in enumerate(zip(maps, records)):
        lesions = record.located_lesions
        if not lesions:
            skipped += 1
            continue
        if heatmap is None:
            raise BadConfigError(f"film {record.film_id} has a located lesion but no heatmap")
        score = {"hit": float(pointing_hit(heatmap, lesions, tolerance_px)),
                 **overlap(heatmap, lesions, threshold)}
        if breast_masks is not None:
            if breast_masks[index] is None:
                raise BadConfigError(f"film {record.film_id} has a located lesion but no "
                                     "breast mask")
            score["chance"] = chance_rate(breast_masks[index], lesions, tolerance_px)
        scored.setdefault(record.label, []).append(score)
    every = [score for scores in scored.values() for score in scores]
    return {"overall": _summary(every, breast_masks is not None),
            "per_class": {label: _summary(scored[label], breast_masks is not None)
                          for label in sorted(scored)},
            "n_scored": len(every), "n_skipped_no_location": skipped,
            "tolerance_px": float(tolerance_px), "threshold": float(threshold)}


def _summary(scores: list[dict[str, float]], with_chance: bool) -> dict[str, Any]:
    def mean(key: str) -> float | None:
        return float(np.mean([s[key] for s in scores])) if scores else None

    summary: dict[str, Any] = {"n": len(scores), "hits": int(sum(s["hit"] for s in scores)),
                               "pointing_game": mean("hit"), "iou": mean("iou"),
                               "inside": mean("inside")}
    if with_chance:
        summary["chance"] = mean("chance")
    return summary


def _check_map(heatmap: np.ndarray) -> np.ndarray:
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 2 or heat.size == 0 or not np.all(np.isfinite(heat)):
        raise BadConfigError(f"a heatmap must be a finite, non-empty 2-D map, got shape "
                             f"{heat.shape}")
    return heat


def _check_tolerance(tolerance_px: float) -> None:
    if not (np.isfinite(tolerance_px) and tolerance_px >= 0):
        raise BadConfigError(f"tolerance_px must be a finite number >= 0, got {tolerance_px!r}")
