"""The only module that knows which Keras backend runs: seeds, precision, devices, gradients.

Everything else is written against Keras 3's backend-neutral API. What cannot be (exact
determinism switches, listing accelerators, spreading a batch over several of them) lives
here, behind small functions, so that adding a backend means reading one file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from types import ModuleType

import keras
import numpy as np

from core.errors import BadConfigError

log = logging.getLogger(__name__)


def name() -> str:
    return keras.backend.backend()


def seed_everything(seed: int) -> None:
    """Python, NumPy and backend seeds, and deterministic kernels where the backend has a
    switch for them (TensorFlow; JAX is deterministic on the CPU by construction)."""
    keras.utils.set_random_seed(seed)
    if name() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except RuntimeError:  # already running ops in this process: too late to switch
            log.debug("TensorFlow op determinism could not be enabled in this process")


def accelerators() -> list[str]:
    """GPU/TPU devices this process can use (empty on a CPU-only machine)."""
    if name() == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    if name() == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices() if d.device_type in {"GPU", "TPU"}]
    return []


def data_pipeline() -> ModuleType:
    """TensorFlow, for ``tf.data`` input pipelines (``core.prep.stream``) on any backend:
    Keras 3's ``fit``, ``evaluate`` and ``predict`` take a ``tf.data.Dataset`` whatever the
    backend. Under JAX (or torch) TensorFlow only reads and prepares data, so it is shown the
    CPU alone: seeing a GPU, it would reserve that GPU's memory for itself."""
    import tensorflow as tf

    if name() != "tensorflow":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # TensorFlow's devices were set up already in this process
            log.debug("TensorFlow's visible devices could not be changed in this process")
    return tf


def pipelines_deterministic() -> bool:
    """Whether TensorFlow's op determinism is on in this process (``seed_everything`` turns it
    on for training, and nothing turns it off). Under it ``tf.data`` runs a stateful map (the
    film reader of ``core.prep.stream``) one element at a time, so a pipeline reads ahead
    less than its bound: memory stays within the bound, decoding is not parallel."""
    try:
        from tensorflow.python.framework import config  # no public query exists (TF 2.21)
    except ImportError:
        return False
    return bool(config.is_op_determinism_enabled())


#: Mixed-precision settings (``TrainConfig.mixed_precision``) and the Keras policy of each.
PRECISION_POLICIES = {"off": "float32", "bfloat16": "mixed_bfloat16",
                      "float16": "mixed_float16"}


def set_mixed_precision(precision: str) -> str:
    """Set the global dtype policy for ``precision`` ("off", "bfloat16" or "float16") and
    return it. float16 pays only on a GPU (tensor cores) and on a CPU is slow and risks
    underflow, so it is refused without an accelerator; bfloat16 keeps float32's range and
    runs anywhere (the CPU tests use it). Heads keep their outputs in float32."""
    if precision not in PRECISION_POLICIES:
        raise BadConfigError(f"mixed precision must be one of {', '.join(PRECISION_POLICIES)}, "
                             f"got {precision!r}")
    if precision == "float16" and not accelerators():
        raise BadConfigError("mixed precision float16 needs a GPU and none is visible: use "
                             "bfloat16 on a CPU, or off")
    policy = PRECISION_POLICIES[precision]
    keras.mixed_precision.set_global_policy(policy)
    return policy


# -- several devices ------------------------------------------------------------------------------
#: The strategy (TensorFlow) or distribution (JAX) made for each device count: every phase of a
#: run must use the same one (TensorFlow refuses to train variables made under another).
_DISTRIBUTIONS: dict[int, object] = {}
#: Where Keras 3 stands on TensorFlow across machines (TF_CONFIG, MultiWorkerMirroredStrategy).
TF_MULTI_WORKER = ("https://github.com/keras-team/keras/issues/20585 (Keras 3 does not train "
                   "under tf.distribute.MultiWorkerMirroredStrategy)")


def join_cluster() -> int:
    """Join the multi-host job the environment describes, if any; return the process count.

    JAX: Keras's ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator first),
    ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID``, read by
    ``keras.distribution.initialize`` (``jax.distributed.initialize`` underneath); every
    host's devices then form one data-parallel mesh. TensorFlow across machines (``TF_CONFIG``)
    is refused: Keras 3 does not train under MultiWorkerMirroredStrategy."""
    processes = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "")
    if name() == "tensorflow" and (os.environ.get("TF_CONFIG") or processes not in ("", "1")):
        raise BadConfigError("training across machines needs the JAX backend "
                             f"(KERAS_BACKEND=jax): see {TF_MULTI_WORKER}")
    if name() != "jax" or processes in ("", "1"):
        return 1
    if not processes.isdigit():
        raise BadConfigError(f"KERAS_DISTRIBUTION_NUM_PROCESSES must be a whole number, got "
                             f"{processes!r}")
    import jax

    if not jax.distributed.is_initialized():
        keras.distribution.initialize()
    return int(processes)


def _jax_devices() -> list[object]:
    import jax

    chosen = [d for d in jax.devices() if d.platform != "cpu"]
    return chosen or jax.devices()


def use_devices(count: int) -> list[str]:
    """The ``count`` devices a run trains on: the accelerators (GPUs, TPUs) or, on a machine
    without any, the CPU split into ``count`` devices. Must run before the backend starts:
    TensorFlow splits its CPU only then (this does it), JAX only at import, from
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set by whoever starts Python).
    Splitting a CPU gains no speed (the cores are shared either way); it is how the
    multi-device path is tested without GPUs. Too few devices is one error line."""
    if count < 1:
        raise BadConfigError(f"devices must be at least 1, got {count}")
    if name() == "jax":
        join_cluster()
        found = [str(d) for d in _jax_devices()]
        hint = ("start Python with XLA_FLAGS=--xla_force_host_platform_device_count="
                f"{count} to split a CPU")
    elif name() == "tensorflow":
        join_cluster()
        found = _tensorflow_devices(count)
        hint = ("TensorFlow's CPU is split only before it starts, and into at most "
                f"{os.cpu_count()} devices (its cores)")
    else:
        found, hint = ["cpu"], f"the {name()} backend trains on one device here"
    if count > len(found):
        raise BadConfigError(f"devices {count}: only {len(found)} device(s) here "
                             f"({', '.join(found)}); {hint}")
    return found[:count]


def _tensorflow_devices(count: int) -> list[str]:
    import tensorflow as tf

    if any(tf.config.list_physical_devices(kind) for kind in ("GPU", "TPU")):
        return accelerators()  # listing logical devices starts TensorFlow: only after this
    if 1 < count <= (os.cpu_count() or 1):  # more devices than cores would only queue
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            if len(tf.config.get_logical_device_configuration(cpu) or ()) != count:
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
        except RuntimeError:  # started already: whatever it has is what there is
            log.debug("TensorFlow's CPU could not be split in this process")
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def distribution_scope(devices: int = 1) -> AbstractContextManager[object]:
    """Data parallelism over ``devices`` devices (``use_devices``) while the context is open:
    every batch is split evenly among them and the gradients are summed, so the weights are
    those one device would train on the same batches.

    JAX uses Keras's distribution API (``DataParallel``); TensorFlow a ``MirroredStrategy``.
    Models must be built, compiled and fitted inside it (TensorFlow trains only variables
    made under its strategy, JAX only those laid out by its distribution); calls that only
    run a model forward (encoding films, scoring) belong outside, where a batch need not
    divide among the devices. With one device it does nothing."""
    if devices <= 1:
        return nullcontext()
    if devices not in _DISTRIBUTIONS:
        chosen = use_devices(devices)
        if name() == "jax":
            import jax

            by_name = {str(d): d for d in jax.devices()}
            _DISTRIBUTIONS[devices] = keras.distribution.DataParallel(
                devices=[by_name[d] for d in chosen])
        elif name() == "tensorflow":
            import tensorflow as tf

            _DISTRIBUTIONS[devices] = tf.distribute.MirroredStrategy(chosen)
        else:
            raise BadConfigError(f"several devices need the tensorflow or jax backend, "
                                 f"not {name()}")
    return _DISTRIBUTIONS[devices].scope()  # type: ignore[attr-defined]


def forward(model: keras.Model, batch: np.ndarray) -> np.ndarray:
    """``model`` on one batch, compiled, as an array. ``predict_on_batch``, except for a
    model built under a TensorFlow strategy of several devices, whose ``predict_on_batch``
    returns every replica's copy of the whole batch (Keras 3.15), one after the other."""
    strategy = getattr(model, "distribute_strategy", None)
    if name() == "tensorflow" and getattr(strategy, "num_replicas_in_sync", 1) > 1:
        return np.asarray(model.predict(batch, batch_size=len(batch), verbose=0))
    return np.asarray(model.predict_on_batch(batch))


def gradients(model: keras.Model, inputs: np.ndarray,
              cotangent: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A one-output ``model``'s outputs on ``inputs`` and the gradient of ``sum(outputs * w)``
    with respect to ``inputs``, where ``w = cotangent(outputs)``: one vector-Jacobian product.

    ``w`` is chosen after the forward pass, so one pass serves both (Grad-CAM picks each
    film's predicted class from the very scores it differentiates). Inference mode: dropout
    off, batch normalisation on its moving statistics, so the rows of a batch do not interact
    and a one-hot ``w`` per row gives each row its own gradient. TensorFlow records the pass on
    a ``GradientTape``; JAX differentiates ``stateless_call``, a pure function of the
    variables' current values, so nothing is traced into or written back to the model.
    """
    x = np.asarray(inputs, dtype=np.float32)
    if name() == "tensorflow":
        import tensorflow as tf

        x_tf = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x_tf)
            y = model(x_tf, training=False)
        w = tf.convert_to_tensor(np.asarray(cotangent(y.numpy()), dtype=np.float32))
        grad = tape.gradient(y, x_tf, output_gradients=w,
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return y.numpy(), grad.numpy()
    if name() == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def forward(films: jax.Array) -> jax.Array:
            return model.stateless_call(trainable, frozen, films, training=False)[0]

        y, pullback = jax.vjp(forward, jnp.asarray(x))
        (grad,) = pullback(jnp.asarray(cotangent(np.asarray(y)), dtype=y.dtype))
        return np.asarray(y), np.asarray(grad)
    raise BadConfigError(f"gradients (Grad-CAM) need the tensorflow or jax backend, "
                         f"not {name()}")
