"""Everything that defines a training run, in one JSON-serialisable object.

A run's manifest stores ``TrainConfig.to_dict()``; ``from_dict`` rebuilds it, so a run can be
repeated or resumed from its folder alone. Defaults are the configuration we measured best
(see docs/RESULTS.md), not the papers'.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.data import LOADERS
from core.errors import BadConfigError
from core.prep.augment import AugmentConfig
from core.prep.preprocess import PrepConfig, PrepSteps
from core.runs.knobs import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    Needs,
    Range,
    Setting,
    knob,
    settings_of,
)
from core.settings import STREAM_ABOVE_BYTES

MODELS = ("attention", "transfer")
CELLS = ("lstm", "gru", "simple")
OPTIMIZERS = ("adam", "sgd", "adamw")
BALANCING = ("augment", "class_weights", "none")
STREAMING = ("auto", "on", "off")
CLASS_LOSSES = ("categorical", "mse")
PATCH_LABELS = ("class", "lesion")
PRECISIONS = ("off", "bfloat16", "float16")
#: The most devices one run spreads over (a host has at most 16 GPUs).
MAX_DEVICES = 64
ATTENTION = ("attention",)
TRANSFER = ("transfer",)
#: Settings that matter only with another one: the patch phase's with patch epochs, the
#: fine-tuning epochs with layers to tune, momentum with SGD, the target with augmenting.
WITH_PATCHES = Needs("patch_epochs")
WITH_FINE_TUNING = Needs("fine_tune_layers")
#: Settings added after runs were first saved, with the value that says what those older runs
#: did, whatever the default is now: a run saved before patch pretraining existed had none,
#: one saved before patch labels could be chosen labelled patches by class, and none saved
#: before temperature scaling scaled its probabilities. (``streaming`` is not here: streamed
#: or in memory, a run trains on the same batches, core.train.feed.)
ABSENT_FROM_OLDER_RUNS = {"patch_epochs": 0, "patch_labels": "class",
                          "temperature_scaling": False, "devices": 1}
#: ``mixed_precision`` was a yes/no before it named a precision: yes meant float16 (on a GPU).
OLDER_PRECISIONS = {False: "off", True: "float16"}
#: The largest input (and patch) side: a 2048-px film is 16 MiB as float32, and a batch and its
#: activations many times that. A side typed past it (100,000 px would ask for terabytes) is
#: refused by the config, before a run folder is made or anything is allocated.
MAX_IMAGE_SIZE = 2048


def up_to(high: int) -> Range:
    """A positive size bounded by what one machine can hold: every setting that sizes an
    array (input and patch sides, batch, units, steps, patches) has an upper bound too, so
    that a typo cannot reach the allocator."""
    return Range(0, high, low_open=True)


def _backbones() -> list[str]:
    """The backbone registry's names; it loads Keras, so only a form's menu reads it."""
    from core.models.backbones import list_backbones

    return list_backbones()


def _path_text(text: str) -> str:
    """A folder typed on the command line, as the config stores it."""
    return str(Path(text))


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
      ``none``;
    * memory: ``streaming`` reads films (and features) from disk batch by batch
      (``core.train.feed``) instead of holding them all; "auto" streams large datasets;
    * hardware: ``devices`` trains data-parallel on that many devices (``core.backend``),
      ``mixed_precision`` computes in bfloat16 or float16;
    * preprocessing: ``prep_steps`` (which steps, ``core.prep.preprocess``) at ``image_size``:
      ``prep`` is the two together, so the input size has one name. Files name the steps
      ``prep`` and repeat the size in it, for readers that want the whole recipe.

    A field declared with ``knob`` is a setting people choose: ``core.runs.knobs`` says what
    its declaration carries and who reads it (the CLI, the Train page, ``__post_init__``).
    """

    dataset: str = knob("mias", label="Dataset", help="which loader reads the folder",
                        choices=tuple(LOADERS), form=False)
    root: str = knob("", label="Dataset folder", help="the dataset's folder", parse=_path_text,
                     form=False)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model: str = knob("attention", label="Model", choices=MODELS,
                      help="attention: encoder + RNN decoder (paper 1); "
                           "transfer: backbone + new head (paper 2)")
    backbone: str = knob("mobilenet_v2", label="Backbone", menu=_backbones,
                         help="encoder name, e.g. mobilenet_v2, vgg16, alexnet, googlenet")
    weights: str = knob("imagenet", label="Weights", suggestions=("imagenet", "none"),
                        other="a file",
                        choice_labels={"imagenet": "ImageNet",
                                       "none": "none (random-init encoder)"},
                        help="imagenet, none, or a weights file (ImageNet weights load "
                             "offline only where installed in the Keras cache)")
    image_size: int = knob(512, label="Input size (px)", help="model input side in pixels",
                           valid=up_to(MAX_IMAGE_SIZE), span=(32, MAX_IMAGE_SIZE), step=32)
    # None: the registry's default layer for the backbone
    feature_layer: str | None = knob(None, label="Feature layer (empty: the backbone's)",
                                     help="encoder layer the decoder/head reads",
                                     none_as="", advanced=True)
    # attention decoder
    cell: str = knob("lstm", label="Decoder cell", help="attention decoder cell",
                     choices=CELLS, models=ATTENTION)
    steps: int = knob(6, label="Attention steps", help="attention glimpse steps",
                      valid=up_to(32), span=(1, 32), models=ATTENTION)
    units: int = knob(256, label="Decoder units", help="units of the decoder's RNN cell",
                      valid=up_to(4096), span=(1, 4096), models=ATTENTION, advanced=True)
    attention_units: int = knob(128, label="Attention units",
                                help="units of the attention layer", valid=up_to(4096),
                                span=(1, 4096), models=ATTENTION, advanced=True)
    attention_supervision: float = knob(
        1.0, label="Attention supervision", valid=NON_NEGATIVE, span=(0.0, 100.0),
        help="weight of the loss pulling attention to known lesions", models=ATTENTION,
        advanced=True)
    attention_regularization: float = knob(
        0.0, label="Attention regularization", valid=NON_NEGATIVE, span=(0.0, 100.0),
        help="weight of the doubly stochastic penalty (attention spread over the whole map)",
        models=ATTENTION, advanced=True)
    # Off by default: measured against the default on MIAS (docs/RESULTS.md, candidate (c));
    # a default changes only by RESULTS' rule.
    both_breasts: bool = knob(
        False, label="Read both breasts", models=ATTENTION,
        help="read each film beside the other breast of the same view (same woman, other "
             "side; MIAS pairs left and right films): the decoder sees each place's "
             "features and their difference from the other breast's (core.models.pairs)")
    # head and optimisation
    dropout: float = knob(0.3, label="Dropout", help="dropout rate of the head",
                          valid=Range(0, 1, high_open=True), span=(0.0, 0.99), advanced=True)
    class_loss: str = knob("categorical", label="Class loss", choices=CLASS_LOSSES,
                           help="categorical cross-entropy, or squared error (paper 1)",
                           advanced=True)
    optimizer: str = knob("adam", label="Optimizer", help="the optimiser",
                          choices=OPTIMIZERS)
    learning_rate: float = knob(1e-3, label="Learning rate", help="learning rate",
                                valid=POSITIVE, span=(1e-7, 1.0), number_format="%.6f")
    momentum: float = knob(0.9, label="Momentum", help="SGD momentum", valid=NON_NEGATIVE,
                           span=(0.0, 1.0), advanced=True, needs=Needs("optimizer", ("sgd",)))
    weight_lr_factor: float = knob(1.0, label="Weight learn-rate factor",
                                   help="learn-rate factor of the head's weights",
                                   valid=NON_NEGATIVE, span=(0.0, 1000.0), models=TRANSFER)
    bias_lr_factor: float = knob(1.0, label="Bias learn-rate factor",
                                 help="learn-rate factor of the head's biases",
                                 valid=NON_NEGATIVE, span=(0.0, 1000.0), models=TRANSFER)
    l2_factor: float = knob(1.0, label="L2 factor (x 1e-4)",
                            help="L2 factor of the head (times 1e-4)", valid=NON_NEGATIVE,
                            span=(0.0, 1000.0), models=TRANSFER)
    epochs: int = knob(30, label="Epochs", help="epochs of the first (head) phase",
                       valid=POSITIVE, span=(1, 1000))
    batch_size: int = knob(32, label="Batch size", help="batch size", valid=up_to(1024),
                           span=(1, 1024))
    patience: int = knob(8, label="Patience (0: never stop early)",
                         help="epochs without validation improvement before stopping "
                              "(0: never)", valid=NON_NEGATIVE, span=(0, 1000))
    patch_epochs: int = knob(
        10, label="Patch epochs (0: none)", valid=NON_NEGATIVE, span=(0, 1000),
        section="encoder",
        help="before the decoder: tune the encoder's top on patches of the located lesions "
             "and of normal tissue (films without lesion locations skip it, with a warning)")
    patch_size: int = knob(96, label="Patch size (px)", valid=up_to(MAX_IMAGE_SIZE),
                           span=(8, MAX_IMAGE_SIZE),
                           help="patch side in pixels, on the model-input grid",
                           section="encoder", advanced=True, needs=WITH_PATCHES)
    patch_layers: int = knob(10, label="Patch layers", valid=NON_NEGATIVE, span=(0, 500),
                             help="top encoder layers that patch pretraining tunes",
                             section="encoder", needs=WITH_PATCHES)
    patches_per_lesion: int = knob(16, label="Patches per lesion", valid=up_to(1000),
                                   span=(1, 1000), help="patches cut around each lesion",
                                   section="encoder", advanced=True, needs=WITH_PATCHES)
    patch_labels: str = knob("lesion", label="Patch labels", choices=PATCH_LABELS,
                             choice_labels={"lesion": "lesion vs normal",
                                            "class": "the film's class"},
                             help="class (the film's class) or lesion (lesion vs normal "
                                  "tissue)", section="encoder", needs=WITH_PATCHES)
    fine_tune_layers: int = knob(
        10, label="Fine-tune layers", valid=NON_NEGATIVE, span=(0, 500), section="encoder",
        help="after the decoder: unfreeze this many top encoder layers and train end to "
             "end on films (0: none)")
    fine_tune_epochs: int = knob(8, label="Fine-tune epochs", help="epochs of fine-tuning",
                                 valid=NON_NEGATIVE, span=(0, 1000), section="encoder",
                                 needs=WITH_FINE_TUNING)
    fine_tune_lr_scale: float = knob(
        0.1, label="Fine-tune learn-rate scale", span=(1e-4, 10.0), section="encoder",
        help="the fine-tuning (and patch) learning rate, as a share of the first phase's",
        advanced=True)
    # data handling; class weights are as good as augmenting to balance, in half the time
    balance: str = knob("class_weights", label="Class balance", choices=BALANCING,
                        choice_labels={"augment": "augment to balance",
                                       "class_weights": "class weights", "none": "none"},
                        help="augment, class_weights or none")
    augment_target: int | None = knob(
        None, label="Augmentation target (total films; 0: largest class x classes)",
        help="total films after balancing augmentation (default: largest class x classes)",
        valid=Range(0, 100_000), span=(0, 100_000), none_as=0,
        needs=Needs("balance", ("augment",)))
    streaming: str = knob(
        "auto", label="Stream films from disk", choices=STREAMING, advanced=True,
        choice_labels={"auto": f"above {STREAM_ABOVE_BYTES >> 30} GiB of films",
                       "on": "always", "off": "never (films in memory)"},
        help="read films and features from disk batch by batch instead of holding them all "
             f"in memory (auto: when the training and validation films take more than "
             f"{STREAM_ABOVE_BYTES >> 30} GiB at the input size)")
    test_size: float = knob(0.25, label="Test share", valid=FRACTION, span=(0.01, 0.99),
                            help="share of the patients held out for the test split",
                            advanced=True)
    folds: int = 0  # > 1: the test split is fold ``fold`` of a patient-grouped k-fold (cv's)
    fold: int = 0
    val_fraction: float = knob(0.2, label="Validation share", valid=FRACTION,
                               span=(0.01, 0.99), advanced=True,
                               help="share of the training patients for early stopping")
    # False: films split at random (the first paper's protocol)
    split_by_patient: bool = knob(True, label="Split by patient", advanced=True,
                                  help="keep each patient's films on one side of a split")
    seed: int = knob(0, label="Seed", help="random seed", span=(0, 2**31 - 1))
    mixed_precision: str = knob(
        "off", label="Mixed precision", choices=PRECISIONS, advanced=True,
        choice_labels={"off": "off (float32)", "bfloat16": "bfloat16 (CPU or GPU)",
                       "float16": "float16 (GPU only)"},
        help="compute in 16-bit floats, outputs and loss kept in float32: bfloat16 runs "
             "anywhere, float16 only with a GPU (faster on GPUs with tensor cores)")
    devices: int = knob(
        1, label="Devices", valid=up_to(MAX_DEVICES), span=(1, MAX_DEVICES), advanced=True,
        help="train data-parallel on this many GPUs of this machine (each batch split evenly "
             "among them; the batch size must divide by it; a CPU-only machine splits its "
             "CPU, which gains no speed)")
    # Off by default: it changes no prediction, only how sure the probabilities sound, and a
    # small validation split fits it poorly (core.metrics.temperature).
    temperature_scaling: bool = knob(
        False, label="Temperature scaling", advanced=True,
        help="after training, fit one temperature on the validation films so that the "
             "probabilities match how often the model is right; evaluate and predict use it")
    prep_steps: PrepSteps = field(default_factory=PrepSteps)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for setting in SETTINGS.values():
            setting.check(getattr(self, setting.name))
        self._check_program_fields()
        if type(self.prep_steps) is not PrepSteps:  # a PrepConfig would bring a second size
            raise BadConfigError("prep_steps must be PrepSteps: the input size is image_size")
        if self.folds == 1 or self.folds < 0 or not 0 <= self.fold < max(self.folds, 1):
            raise BadConfigError(f"fold {self.fold} of {self.folds} folds: need folds >= 2 "
                                 "and 0 <= fold < folds (or folds 0 for a plain split)")
        if self.batch_size % self.devices:
            raise BadConfigError(f"batch_size {self.batch_size} does not divide among "
                                 f"{self.devices} devices: use a multiple of {self.devices}")
        if self.both_breasts and self.model != "attention":
            raise BadConfigError("both_breasts reads pairs with the attention model only (a "
                                 "transfer model's Grad-CAM needs one film per input)")
        if self.patch_epochs and self.patch_size > self.image_size:
            raise BadConfigError(f"patch_size {self.patch_size} is larger than the films "
                                 f"({self.image_size} px): use a larger input, smaller "
                                 "patches or patch_epochs 0")

    def _check_program_fields(self) -> None:
        """The fields that are not knobs come from files too (a ``--config``, a manifest), so
        their types are checked here: a list where an object belongs would otherwise be a
        ``TypeError`` once training has begun."""
        if not isinstance(self.dataset_options, dict) or not all(
                isinstance(name, str) for name in self.dataset_options):
            raise BadConfigError(f"dataset_options must be an object of loader options, got "
                                 f"{self.dataset_options!r}")
        if not isinstance(self.augment, AugmentConfig):
            raise BadConfigError(f"augment must be an object of settings, got {self.augment!r}")
        for name in ("folds", "fold"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadConfigError(f"{name} must be a whole number, got {value!r}")

    @property
    def prep(self) -> PrepConfig:
        """How films become this run's inputs: ``prep_steps`` at ``image_size``."""
        return self.prep_steps.sized(self.image_size)

    def to_dict(self) -> dict[str, Any]:
        """Every field, ready for JSON; the steps under ``prep``, with the size repeated."""
        data = {("prep" if name == "prep_steps" else name): value
                for name, value in asdict(self).items()}
        data["prep"] = self.prep.to_dict()
        data["augment"] = self.augment.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config a ``to_dict`` (or a person's JSON file) describes. A ``size`` in
        ``prep`` must repeat ``image_size``: the input size is that one setting."""
        if not isinstance(data, dict):
            raise BadConfigError(f"training config: expected an object of settings, got "
                                 f"{type(data).__name__}")
        unknown = sorted(set(data) - FILE_KEYS)
        if unknown:
            raise BadConfigError(f"training config: unknown setting(s) {', '.join(unknown)}")
        values = dict(data)
        if "prep" in values:
            size = values.get("image_size", SETTINGS["image_size"].default)
            values["prep_steps"] = _prep_steps(values.pop("prep"), size)
        if isinstance(values.get("augment"), dict):
            values["augment"] = AugmentConfig.from_dict(values["augment"])
        return cls(**values)

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> TrainConfig:
        """The config a run folder was trained with, also for runs saved by older versions.
        Its ``image_size`` is what the model takes, so that wins over a ``prep`` size."""
        if not isinstance(data, dict):  # a damaged manifest: from_dict names the fault
            return cls.from_dict(data)
        values = {**ABSENT_FROM_OLDER_RUNS, **data}
        if isinstance(values.get("mixed_precision"), bool):
            values["mixed_precision"] = OLDER_PRECISIONS[values["mixed_precision"]]
        if "image_size" in values and isinstance(values.get("prep"), dict):
            values["prep"] = {k: v for k, v in values["prep"].items() if k != "size"}
        return cls.from_dict(values)

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with some fields changed (what the CLI and sweeps build configs with)."""
        data = {**self.to_dict(), "prep": self.prep_steps.to_dict()}  # the size: image_size's
        return TrainConfig.from_dict({**data, **overrides})


#: Every setting people choose, by field name, in declaration order (``core.runs.knobs``).
SETTINGS: dict[str, Setting] = settings_of(TrainConfig)

#: Where a dataset's best measured configuration is not the MIAS default: what
#: ``train --dataset NAME`` does with no options (and what the Train form's presets start
#: from). rsna-640 (docs/RESULTS.md section 4, the same 5 patient-grouped folds): the attention
#: model on the frozen ImageNet encoder at 256 px, image AUC 0.605 against 0.548 for the
#: frozen transfer head at 512 px, paired gain +0.058 [0.030, 0.085]; the MIAS default's
#: patch pretraining needs lesion boxes RSNA has not, and its fine-tuning at 512 px would not
#: fit the 20-minute budget on 2 cores.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "rsna": {"model": "attention", "image_size": 256, "patch_epochs": 0,
             "fine_tune_layers": 0},
}


def dataset_default(dataset: Any, **data: Any) -> TrainConfig:
    """The defaults for ``dataset`` (``DATASET_DEFAULTS`` over ``TrainConfig``'s), with
    ``data`` (root, options, ...) on top. ``dataset`` may come from a user's config file, so
    it is checked as any setting is (a list there is one error, not a failed lookup)."""
    known = DATASET_DEFAULTS.get(dataset, {}) if isinstance(dataset, str) else {}
    return TrainConfig().with_overrides(**{**known, **data, "dataset": dataset})
#: The keys of a config file: the fields, with the preprocessing steps named ``prep``.
FILE_KEYS = frozenset({f.name for f in fields(TrainConfig)} - {"prep_steps"} | {"prep"})


def _prep_steps(prep: Any, image_size: Any) -> PrepSteps:
    """The steps of a config file's ``prep`` (an object, or a ``PrepSteps``/``PrepConfig``)."""
    if isinstance(prep, PrepSteps):
        prep = prep.to_dict()
    if not isinstance(prep, dict):
        raise BadConfigError(f"prep config: expected an object of settings, got {prep!r}")
    steps = dict(prep)
    size = steps.pop("size", image_size)
    if size != image_size:
        raise BadConfigError(f"prep size {size!r} differs from image_size {image_size!r}: the "
                             "input size is image_size alone (leave size out of prep)")
    return PrepSteps.from_dict(steps)
