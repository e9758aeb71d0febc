"""The only module that knows which Keras backend runs: seeds, precision, devices, gradients.

Everything else is written against Keras 3's backend-neutral API. What cannot be (exact
determinism switches, listing accelerators, spreading a batch over several of them) lives
here, behind small functions, so that adding a backend means reading one file.
"""

from __future__ import annotations

import logging
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


def set_mixed_precision(enabled: bool) -> str:
    """Turn float16 compute on only where it pays (an accelerator); return the policy used."""
    policy = "mixed_float16" if enabled and accelerators() else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def distribution_scope() -> AbstractContextManager[object]:
    """Data parallelism over every local accelerator when there is more than one.

    JAX uses Keras's distribution API (set globally); TensorFlow a MirroredStrategy scope that
    model building and compiling must run inside. With one device or none it does nothing.
    """
    devices = accelerators()
    if len(devices) < 2:
        return nullcontext()
    if name() == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        return nullcontext()
    if name() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy().scope()
    return nullcontext()


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
