"""Feeding Keras from numpy arrays one batch at a time, and the weights that balance classes."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from core.errors import BadConfigError
from core.models.pairs import stack_pair
from core.prep.stream import FIRST_EPOCH_DRAW, Shuffle


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-sample weights that make every present class weigh the same in the loss."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    per_class = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return per_class[labels].astype(np.float32)


def evenly_divided(count: int, batch_size: int, replicas: int) -> int:
    """How many of ``count`` samples an epoch feeds so that every batch divides evenly among
    ``replicas`` devices: all but the last ``count % replicas``. A batch size that does not
    divide is a config error (``TrainConfig`` checks it first)."""
    if replicas < 1 or batch_size % replicas:
        raise BadConfigError(f"batch size {batch_size} does not divide among {replicas} "
                             "devices")
    used = count - count % replicas
    if count and not used:
        raise BadConfigError(f"{count} sample(s) cannot be split among {replicas} devices")
    return used


class FeedEpochs(keras.callbacks.Callback):
    """Tells training feeds (``Batches``, or a streamed feed's ``start_epoch``) which epoch
    ``fit`` begins, so each epoch's order is that epoch's, not a count of the passes read."""

    def __init__(self, *feeds: Any) -> None:
        super().__init__()
        self.starts = [feed.start_epoch for feed in feeds if hasattr(feed, "start_epoch")]

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for start in self.starts:
            start(epoch)


class Batches(keras.utils.PyDataset):
    """Inputs and targets in batches, cast to float32 one batch at a time.

    Handing Keras whole arrays makes it hold a float32 copy of all of them (cached float16
    features of a balanced MIAS set come to gigabytes); batches keep memory at one batch.
    ``films=True`` adds the channel axis grey films need. Shuffled anew every epoch.
    ``partners``: each sample's other breast, a position in ``inputs``; each input then goes
    with it as a pair (``core.models.pairs.stack_pair``).

    ``replicas``: the devices each batch is split among (``core.backend.distribution_scope``),
    which must divide every batch, the last one too: an epoch then leaves out its last
    ``len(inputs) % replicas`` samples in its order (different ones every shuffled epoch).
    """

    def __init__(self, inputs: np.ndarray, targets: Any, batch_size: int,
                 weights: np.ndarray | None = None, seed: int | None = None,
                 films: bool = False, replicas: int = 1,
                 partners: np.ndarray | None = None) -> None:
        super().__init__()
        if partners is not None and len(partners) != len(inputs):
            raise BadConfigError(f"{len(partners)} other breasts for {len(inputs)} samples")
        self.inputs, self.targets, self.weights = inputs, targets, weights
        self.partners = partners
        self.batch_size, self.films = batch_size, films
        self.used = evenly_divided(len(inputs), batch_size, replicas)
        self.shuffle = Shuffle(len(inputs), seed)
        self.driven = False
        self.order = self.shuffle.next()

    def __len__(self) -> int:
        return math.ceil(self.used / self.batch_size)

    def on_epoch_end(self) -> None:
        if not self.driven:
            self.order = self.shuffle.next()

    def start_epoch(self, epoch: int) -> None:
        """``fit`` begins epoch ``epoch`` (``FeedEpochs``): its order is draw
        ``epoch + FIRST_EPOCH_DRAW``, as a streamed feed's (``core.prep.stream.EpochOrder``),
        and from now on only this sets the order."""
        self.driven = True
        self.order = self.shuffle.draw(epoch + FIRST_EPOCH_DRAW)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        end = min((index + 1) * self.batch_size, self.used)
        rows = np.sort(self.order[index * self.batch_size:end])
        batch = self.inputs[rows]
        if self.partners is not None:
            batch = stack_pair(batch, self.inputs[self.partners[rows]], films=self.films)
        elif self.films:
            batch = batch[..., None]
        batch = batch.astype(np.float32)
        targets = (self.targets[rows] if isinstance(self.targets, np.ndarray)
                   else {k: v[rows] for k, v in self.targets.items()})
        if self.weights is None:
            return batch, targets
        return batch, targets, self.weights[rows]
