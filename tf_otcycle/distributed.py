"""What a ``train_step`` needs to be correct under ``tf.distribute``.

Keras sums gradients over replicas, so a step's loss is the per-sample losses summed and
divided by the *global* batch (:func:`global_mean`), not averaged per replica; and logs of
a multi-worker step must have a leading axis for Keras to reduce them (:func:`step_logs`).
"""

from __future__ import annotations

import tensorflow as tf


def global_mean(per_sample: tf.Tensor) -> tf.Tensor:
    """``sum(per_sample) / (B * replicas)``: a replica's share of the global batch's mean loss."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    batch = tf.cast(tf.shape(per_sample)[0] * replicas, per_sample.dtype)
    return tf.reduce_sum(per_sample) / batch


def step_logs(values: dict) -> dict:
    """A step's logs; shaped ``(1,)`` under multi-worker training, where Keras 3 (TF backend)
    reduces them with ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars
    (tensorflow/tensorflow#72388); the reduction then returns the scalar mean over workers."""
    strategy = tf.distribute.get_strategy()
    multi_worker = getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()
    return {k: tf.reshape(v, [1]) for k, v in values.items()} if multi_worker else values
