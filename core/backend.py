"""The only module that knows which Keras backend runs: seeds, precision, devices.

Everything else is written against Keras 3's backend-neutral API. What cannot be (exact
determinism switches, listing accelerators, spreading a batch over several of them) lives
here, behind small functions, so that adding a backend means reading one file.
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext

import keras

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


def cpu_threads() -> int:
    """Cores this process may use (respects CPU affinity, e.g. in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
