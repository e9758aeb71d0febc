"""Named starting points for a training: our default, the two papers' set-ups, and the small
configuration the landing demo trains on a CPU.

A preset is only a set of ``TrainConfig`` overrides; the Train page fills its form from one
and the user may change any field. The papers' presets follow ``../shared/PAPERS.md``; where
a paper's backbone has no ImageNet weights here (VGG16, AlexNet, GoogLeNet), the preset
still asks for ``imagenet``, and ``weights_problem`` says why it cannot start and what does
(the file to place, or a random-init encoder, named as such), so nobody trains a
random-init "reproduction" by accident and nobody starts a job that can only fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from core import settings
from core.errors import BadConfigError
from core.models.backbones import (
    backbone_facts,
    imagenet_installed,
    imagenet_weights_file,
    keras_cache_dir,
)
from core.runs.config import TrainConfig, dataset_default

#: Films the demo draws: enough for a patient-grouped split with every class in the test part.
DEMO_FILMS = 140
DEMO_BACKBONE = "mobilenet_v2"
#: Our default tunes the encoder (patches, then films); these presets do not. The papers'
#: presets train new layers on a fixed encoder, as reproduced in docs/RESULTS.md, and the
#: demo must be short on a CPU.
FROZEN_ENCODER = MappingProxyType({"patch_epochs": 0, "fine_tune_layers": 0})


@dataclass(frozen=True)
class Preset:
    title: str
    why: str
    overrides: MappingProxyType[str, Any]

    def config(self, **data: Any) -> TrainConfig:
        """The preset applied on top of the dataset's defaults (``DATASET_DEFAULTS``) and
        ``data`` (dataset, root, ...)."""
        dataset = data.pop("dataset", TrainConfig().dataset)
        return dataset_default(dataset, **data).with_overrides(**self.overrides)


def _preset(title: str, why: str, **overrides: Any) -> Preset:
    return Preset(title, why, MappingProxyType(overrides))


PRESETS: dict[str, Preset] = {
    "default": _preset(
        "Our default (best measured)",
        "What `python -m core train` does with no options; see docs/RESULTS.md."),
    "paper1": _preset(
        "Paper 1: VGG16 + RNN decoder",
        "224 px, a plain RNN, squared-error loss, 15 epochs, a random 75/25 split of films "
        "(not patients) and augmentation to a balanced 1300 films (Krishnakumar et al.).",
        backbone="vgg16", image_size=224, cell="simple", class_loss="mse",
        attention_supervision=0.0, epochs=15, patience=0, augment_target=1300,
        test_size=0.25, split_by_patient=False, **FROZEN_ENCODER),
    "paper2": _preset(
        "Paper 2: AlexNet transfer head (their best row, AL3)",
        "227 px AlexNet with a new head: weight / bias learn-rate factors 15 / 20, L2 factor "
        "1, validation patience 15, SGD with momentum (Sharma and Mukherjee).",
        model="transfer", backbone="alexnet", image_size=227, optimizer="sgd",
        learning_rate=1e-4, momentum=0.9, weight_lr_factor=15.0, bias_lr_factor=20.0,
        l2_factor=1.0, patience=15, epochs=60, test_size=0.3, **FROZEN_ENCODER),
    "demo": _preset(
        "Quick demo (SYNTHETIC films, small and short)",
        "A small input and few epochs, for the landing page's walkthrough on synthetic films.",
        backbone=DEMO_BACKBONE, image_size=256, epochs=40, patience=0, batch_size=16,
        **FROZEN_ENCODER),
}


def demo_pretrained() -> bool:
    """Whether the demo's encoder has its ImageNet weights here (without them it learns next
    to nothing, and the landing page says so)."""
    return imagenet_installed(DEMO_BACKBONE, int(PRESETS["demo"].overrides["image_size"]))


def demo_weights_file() -> str:
    """The file name to place in the Keras cache for a pretrained demo."""
    return imagenet_weights_file(DEMO_BACKBONE, int(PRESETS["demo"].overrides["image_size"]))


def demo_job(films_dir: str) -> dict[str, Any]:
    """The landing demo's job spec: draw ``DEMO_FILMS`` SYNTHETIC films into ``films_dir``,
    then train the demo preset on them, with ImageNet weights where they are installed and a
    random-init encoder (said so in the run's config) where they are not."""
    preset = PRESETS["demo"]
    size = int(preset.overrides["image_size"])
    weights = "imagenet" if demo_pretrained() else "none"
    config = preset.config(dataset="mias", root=films_dir).with_overrides(weights=weights)
    return {"synthetic": True, "films": {"out": films_dir, "n": DEMO_FILMS, "seed": 0, "size": size},
            "config": config.to_dict()}


def weights_problem(config: TrainConfig) -> str | None:
    """Why ``config`` cannot start here for want of ImageNet weights, in one line that says
    what would work (the file to place and where, or a random-init encoder); ``None`` when
    its weights will load (installed, not ImageNet, or a download Keras is allowed to do)."""
    if config.weights != "imagenet" or imagenet_installed(config.backbone, config.image_size):
        return None
    try:
        file_name = imagenet_weights_file(config.backbone, config.image_size)
    except BadConfigError:
        return (f"{config.backbone} has no ImageNet weights this program can load: train it "
                "with a random-init encoder (it learns far less), or give a weights file")
    if settings.download_weights() and backbone_facts(config.backbone)["keras_downloads"]:
        return None
    return (f"{config.backbone}'s ImageNet weights are not installed here: place {file_name} "
            f"in {keras_cache_dir()}/, or train with a random-init encoder (it learns far "
            "less)")
