"""Everything that defines a training run, in one JSON-serialisable object.

A run's manifest stores ``TrainConfig.to_dict()``; ``from_dict`` rebuilds it, so a run can be
repeated or resumed from its folder alone. Defaults are the configuration we measured best
(see docs/RESULTS.md), not the papers'.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.errors import BadConfigError, reject_unknown_settings
from core.prep.augment import AugmentConfig
from core.prep.preprocess import PrepConfig

MODELS = ("attention", "transfer")
CELLS = ("lstm", "gru", "simple")
OPTIMIZERS = ("adam", "sgd", "adamw")
BALANCING = ("augment", "class_weights", "none")
CLASS_LOSSES = ("categorical", "mse")
PATCH_LABELS = ("class", "lesion")
#: Settings added after runs were first saved, with the value that says what those older runs
#: did, whatever the default is now: a run saved before patch pretraining existed had none,
#: and one saved before patch labels could be chosen labelled patches by class.
ABSENT_FROM_OLDER_RUNS = {"patch_epochs": 0, "patch_labels": "class"}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Groups of fields:

    * data: ``dataset``, ``root``, ``dataset_options``, ``test_size`` (held out for
      evaluation, grouped by patient unless ``split_by_patient`` is off) or, for
      cross-validation, ``folds`` and ``fold`` (the held-out part is that fold),
      ``val_fraction`` (of the training patients, for early stopping and the reported ``val``
      metrics);
    * encoder: ``backbone``, ``weights`` (``imagenet``, ``none`` or a file), ``image_size``,
      ``feature_layer`` (the map the decoder reads; finer layers give finer heatmaps);
    * model: ``model`` (``attention``: the first paper's encoder + RNN decoder;
      ``transfer``: the second paper's backbone + new head) and its knobs;
    * the second paper's head knobs: ``weight_lr_factor``, ``bias_lr_factor``, ``l2_factor``,
      ``patience``;
    * fine-tuning: ``fine_tune_layers`` > 0 unfreezes that many top encoder layers for a
      second phase of ``fine_tune_epochs`` at ``learning_rate * fine_tune_lr_scale``;
    * patch pretraining (``core.train.patches``): ``patch_epochs`` > 0 first tunes the
      encoder's top ``patch_layers`` layers on ``patch_size`` px patches of the training
      films' lesions (``patches_per_lesion`` each) and normal tissue, at the fine-tuning
      learning rate, labelled by the film's class or (``patch_labels="lesion"``) only as
      lesion or normal tissue;
    * balance: ``augment`` (grow every class to ``augment_target``: None = the largest
      class, an int = a total split equally, as the paper's 1300), ``class_weights`` or
      ``none``.
    """

    dataset: str = "mias"
    root: str = ""
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model: str = "attention"
    backbone: str = "mobilenet_v2"
    weights: str = "imagenet"
    image_size: int = 512
    feature_layer: str | None = None  # None: the registry's default layer for the backbone
    # attention decoder
    cell: str = "lstm"
    steps: int = 6
    units: int = 256
    attention_units: int = 128
    attention_supervision: float = 1.0
    attention_regularization: float = 0.0
    # head and optimisation
    dropout: float = 0.3
    class_loss: str = "categorical"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_lr_factor: float = 1.0
    bias_lr_factor: float = 1.0
    l2_factor: float = 1.0
    epochs: int = 30
    batch_size: int = 32
    patience: int = 8
    fine_tune_layers: int = 10
    fine_tune_epochs: int = 8
    fine_tune_lr_scale: float = 0.1
    patch_epochs: int = 10
    patch_size: int = 96
    patch_layers: int = 10
    patches_per_lesion: int = 16
    patch_labels: str = "lesion"
    # data handling
    balance: str = "class_weights"  # as good as augmenting to balance, in half the time
    augment_target: int | None = None
    test_size: float = 0.25
    folds: int = 0  # > 1: the test split is fold ``fold`` of a patient-grouped k-fold
    fold: int = 0
    val_fraction: float = 0.2
    split_by_patient: bool = True  # False: films split at random (the first paper's protocol)
    seed: int = 0
    mixed_precision: bool = False
    prep: PrepConfig = field(default_factory=PrepConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        choices = {"model": MODELS, "cell": CELLS, "optimizer": OPTIMIZERS,
                   "balance": BALANCING, "class_loss": CLASS_LOSSES,
                   "patch_labels": PATCH_LABELS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise BadConfigError(f"{name} must be one of {', '.join(allowed)}, "
                                     f"got {getattr(self, name)!r}")
        positive = ("image_size", "steps", "units", "attention_units", "epochs", "batch_size",
                    "learning_rate", "patch_size", "patches_per_lesion")
        for name in positive:
            if not getattr(self, name) > 0:
                raise BadConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        non_negative = ("attention_supervision", "attention_regularization", "weight_lr_factor",
                        "bias_lr_factor", "l2_factor", "patience", "fine_tune_layers",
                        "fine_tune_epochs", "momentum", "patch_epochs", "patch_layers")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise BadConfigError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            raise BadConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.folds == 1 or self.folds < 0 or not 0 <= self.fold < max(self.folds, 1):
            raise BadConfigError(f"fold {self.fold} of {self.folds} folds: need folds >= 2 "
                                 "and 0 <= fold < folds (or folds 0 for a plain split)")
        if self.patch_epochs and self.patch_size > self.image_size:
            raise BadConfigError(f"patch_size {self.patch_size} is larger than the films "
                                 f"({self.image_size} px): use a larger input, smaller "
                                 "patches or patch_epochs 0")
        if not 0 < self.test_size < 1 or not 0 < self.val_fraction < 1:
            raise BadConfigError("test_size and val_fraction must lie between 0 and 1")
        if self.prep.size != self.image_size:  # one source of truth for the input size
            object.__setattr__(self, "prep", replace(self.prep, size=self.image_size))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["prep"] = self.prep.to_dict()
        data["augment"] = self.augment.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        reject_unknown_settings(cls, data, "training config")
        values = dict(data)
        if isinstance(values.get("prep"), dict):
            values["prep"] = PrepConfig.from_dict(values["prep"])
        if isinstance(values.get("augment"), dict):
            values["augment"] = AugmentConfig.from_dict(values["augment"])
        return cls(**values)

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> TrainConfig:
        """The config a run folder was trained with, also for runs saved by older versions."""
        if not isinstance(data, dict):  # a damaged manifest: from_dict names the fault
            return cls.from_dict(data)
        return cls.from_dict({**ABSENT_FROM_OLDER_RUNS, **data})

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with some fields changed (what the CLI and sweeps build configs with)."""
        return TrainConfig.from_dict({**self.to_dict(), **overrides})
