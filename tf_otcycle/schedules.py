"""Learning-rate schedules."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_otcycle")
class LinearDecayAfter(keras.optimizers.schedules.LearningRateSchedule):
    """Constant ``initial_learning_rate`` for ``decay_start`` steps, then linear to 0 at ``total_steps``.

    The microscopy schedule of the paper: 200 epochs, decay after epoch 40, i.e.
    ``decay_start = 40 * steps_per_epoch`` and ``total_steps = 200 * steps_per_epoch``
    (counted in the optimizer's own iterations).
    """

    def __init__(self, initial_learning_rate: float, decay_start: int, total_steps: int):
        if total_steps < decay_start or decay_start < 0:
            raise ValueError(
                f"decay_start/total_steps: expected 0 <= {decay_start} <= {total_steps}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_start = int(decay_start)
        self.total_steps = int(total_steps)
        # A multiplier training may lower (rollback after a NaN halves it); not part of the config.
        self.factor = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="learning_rate_factor")

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        span = max(self.total_steps - self.decay_start, 1)
        frac = tf.clip_by_value((step - self.decay_start) / span, 0.0, 1.0)
        return self.factor * self.initial_learning_rate * (1.0 - frac)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_start": self.decay_start,
            "total_steps": self.total_steps,
        }


def scale_learning_rate(optimizer: keras.optimizers.Optimizer, factor: float) -> None:
    """Multiply an optimizer's learning rate by ``factor`` from now on (a constant rate, or a
    schedule with a ``factor`` variable such as :class:`LinearDecayAfter`)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    schedule = getattr(optimizer, "_learning_rate", None)  # Keras keeps the schedule object here
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        if not hasattr(schedule, "factor"):
            raise ValueError(f"{type(schedule).__name__}: cannot be scaled (no factor variable)")
        schedule.factor.assign(schedule.factor * factor)
    else:
        optimizer.learning_rate.assign(optimizer.learning_rate * factor)
