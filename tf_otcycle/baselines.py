"""The paper's learned baselines, built from the same parts as the OT-cycleGAN.

* supervised: the same generator trained on matched pairs ``(y, x)`` with L1 or L2;
* conventional cycleGAN: two deep generators ``G: y -> x`` and ``F: x -> y`` (F replaces the
  known physics H), two critics, the same cycle and WGAN-GP losses: an :class:`OTCycleGAN`
  whose ``forward_op`` is a network.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_otcycle.model import OTCycleGAN


def supervised(generator: keras.Model, loss: str = "l1",
               optimizer: keras.optimizers.Optimizer | None = None) -> keras.Model:
    """Compile ``generator`` for supervised training on ``(y, x)`` batches; returns it."""
    losses = {"l1": "mean_absolute_error", "l2": "mean_squared_error"}
    if loss not in losses:
        raise ValueError(f"loss: expected 'l1' or 'l2', got {loss!r}")
    generator.compile(optimizer=optimizer or keras.optimizers.Adam(1e-4, 0.5, 0.9), loss=losses[loss])
    return generator


def as_pairs(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``{"x", "y", ...}`` batches -> ``(y, x)`` for ``fit`` of a supervised generator."""
    return dataset.map(lambda d: (d["y"], d["x"]))


def conventional_cyclegan(
    generator: keras.Model, inverse_generator: keras.Model, critic_x: keras.Model, critic_y: keras.Model, **kwargs
) -> OTCycleGAN:
    """Standard cycleGAN with WGAN-GP: ``forward_op`` is the deep generator F: x -> y."""
    return OTCycleGAN(generator, inverse_generator, critic_x, critic_y, **kwargs)
