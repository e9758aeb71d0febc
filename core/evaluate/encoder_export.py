"""A run's trained encoder as a weights file, for another run to start from.

An encoder fine-tuned on one dataset (rsna-640's 2,711 screening films) may be a better
start for another (mini-MIAS's 322 scanned films) than ImageNet's. The file written here is
what ``--weights`` already reads (a Keras 3 ``.weights.h5`` of the cut backbone, loaded by
structure), so the next run needs no new option: the same ``--backbone``, ``--weights FILE``.
Convolutional weights do not depend on the input size, so a 256 px encoder serves a 512 px
run. The file holds weights only, never code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from core.atomic import atomic_path
from core.errors import BadConfigError
from core.evaluate.evaluate import load_model, run_settings
from core.models.backbones import BACKBONES, feature_model_name
from core.runs.folder import Run

#: Keras chooses the format from the suffix; ``--weights`` loads this one by structure.
ENCODER_SUFFIX = ".weights.h5"


def find_encoder(model: keras.Model, name: str) -> keras.Model:
    """The nested backbone called ``name`` inside a run's model (at any depth), or an error
    naming what the model holds instead."""
    pending, seen = list(model.layers), []
    while pending:
        layer = pending.pop(0)
        if isinstance(layer, keras.Model):
            if layer.name == name:
                return layer
            seen.append(layer.name)
            pending.extend(layer.layers)
    raise BadConfigError(f"the model holds no encoder named {name!r} (its sub-models: "
                         f"{', '.join(seen) or 'none'})")


def export_encoder(run: Run, out: Path) -> dict[str, Any]:
    """Write the run's encoder weights to ``out`` (atomically) and say what they are: the
    facts a later run needs to load them (backbone, feature layer) and where they came
    from (the run, its dataset and its own starting weights)."""
    out = Path(out)
    if not out.name.endswith(ENCODER_SUFFIX):
        raise BadConfigError(f"{out}: an encoder file must end in {ENCODER_SUFFIX}")
    settings = run_settings(run)
    config = settings.config
    layer = config.feature_layer or BACKBONES[config.backbone].feature_layer
    encoder = find_encoder(load_model(run), feature_model_name(config.backbone, layer))
    with atomic_path(out) as tmp:
        encoder.save_weights(tmp)
    return {"file": str(out), "run": run.name, "backbone": config.backbone,
            "feature_layer": layer, "trained_on": config.dataset,
            "started_from": config.weights, "fine_tune_layers": config.fine_tune_layers,
            "patch_layers": config.patch_layers if config.patch_epochs else 0,
            "synthetic": settings.synthetic,
            "use": f"--backbone {config.backbone} --weights {out}"
                   + ("" if config.feature_layer is None else f" --feature-layer {layer}")}
