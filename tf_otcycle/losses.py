"""Losses of the OT-cycleGAN (paper eqs. 19-21): cycle L1, Wasserstein terms, gradient penalty.

Every loss returns one value *per sample* ``(B,)``; the model averages over the global
batch so that gradients summed across replicas are correct under ``tf.distribute``.
A critic may return one score map or a list of them (multi-scale PatchGAN); scores are
averaged over each map and summed over the list.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def _per_sample_mean(t: tf.Tensor) -> tf.Tensor:
    t = tf.convert_to_tensor(t)
    return tf.reduce_mean(tf.reshape(t, [tf.shape(t)[0], -1]), axis=1)


def l1_per_sample(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference per sample, ``(B,)``."""
    return _per_sample_mean(tf.abs(a - b))


def l2_per_sample(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Mean squared difference per sample, ``(B,)``."""
    return _per_sample_mean(tf.square(a - b))


def cycle_l1(
    real_x: tf.Tensor, cycled_x: tf.Tensor, real_y: tf.Tensor, cycled_y: tf.Tensor, rho: float, sigma: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Cycle terms of eq. (21): ``rho |x - G(Hx)|_1`` and ``sigma |y - H G(y)|_1``, each ``(B,)``."""
    return rho * l1_per_sample(real_x, cycled_x), sigma * l1_per_sample(real_y, cycled_y)


def critic_score(scores) -> tf.Tensor:
    """Potential value per sample, ``(B,)``: mean over each score map, summed over scales."""
    if isinstance(scores, (list, tuple)):
        return tf.add_n([_per_sample_mean(s) for s in scores])
    return _per_sample_mean(scores)


def gradient_penalty(
    critic: Callable,
    real: tf.Tensor,
    fake: tf.Tensor,
    alpha: tf.Tensor,
    epsilon: float = 1e-12,
    training: bool = True,
) -> tf.Tensor:
    """Gulrajani et al. penalty ``(||∇ D(x̂)||_2 - 1)^2`` per sample, ``(B,)``.

    ``x̂ = alpha * real + (1 - alpha) * fake`` with ``alpha`` uniform in [0, 1), shape
    ``(B, 1, ..., 1)``. The norm is ``sqrt(sum g^2 + epsilon)`` so its gradient is finite
    at g = 0. For a critic with several score maps each map is penalised separately and the
    penalties are summed.
    """
    interp = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(interp)
        scores = critic(interp, training=training)
        maps = scores if isinstance(scores, (list, tuple)) else [scores]
        sums = [tf.reduce_sum(_per_sample_mean(s)) for s in maps]
    penalty = 0.0
    for total in sums:
        grad = tape.gradient(total, interp)
        norm = tf.sqrt(tf.reduce_sum(tf.reshape(tf.square(grad), [tf.shape(grad)[0], -1]), axis=1) + epsilon)
        penalty += tf.square(norm - 1.0)
    del tape
    return penalty
