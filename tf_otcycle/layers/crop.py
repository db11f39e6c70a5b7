"""Random spatial crops, used by the multi-scale PatchGAN critic."""

from __future__ import annotations

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_otcycle")
class RandomSpatialCrop(keras.layers.Layer):
    """Crop every spatial axis to ``fraction`` of its size at a random offset.

    The offset is drawn per call from the layer's own ``keras.random.SeedGenerator`` (one
    offset for the whole batch, so the crop is a linear selection of the input). A fraction
    of 1 returns the input.

    Args:
        fraction: kept fraction of each spatial axis, in (0, 1].
        seed: seed of the layer's generator.

    Call args:
        x: ``(B, *spatial, C)``.

    Returns:
        ``(B, *[ceil(fraction * n) for n in spatial], C)``.
    """

    def __init__(self, fraction: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction: expected a value in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def call(self, x):
        if self.fraction == 1.0:
            return x
        x = tf.convert_to_tensor(x)
        rank = x.shape.rank
        shape = tf.shape(x)
        begin, size = [0], [-1]
        for axis in range(1, rank - 1):
            n = shape[axis]
            keep = tf.cast(tf.math.ceil(tf.cast(n, tf.float32) * self.fraction), tf.int32)
            u = keras.random.uniform((), seed=self.seed_generator)
            start = tf.cast(tf.floor(u * tf.cast(n - keep + 1, tf.float32)), tf.int32)
            begin.append(tf.minimum(start, n - keep))
            size.append(keep)
        begin.append(0)
        size.append(-1)
        return tf.slice(x, tf.stack(begin), tf.stack(size))

    def compute_output_shape(self, input_shape):
        out = [input_shape[0]]
        for n in input_shape[1:-1]:
            out.append(None if n is None else math.ceil(n * self.fraction))
        return tuple(out) + (input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update({"fraction": self.fraction, "seed": self.seed})
        return config
