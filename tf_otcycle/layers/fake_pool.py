"""A history of generated samples for a critic (the authors' ``ImagePool``)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_otcycle")
class FakePool(keras.layers.Layer):
    """The last generated samples, shown to a critic in place of the newest half of the time.

    Shrivastava et al. (2017), as CycleGAN and the authors' code (``ImagePool``, size 50) use
    it: while the pool is filling, each sample is stored and returned; once full, with
    probability 1/2 a random stored sample is returned and the new one takes its place, else
    the new sample is returned. The critic then sees fakes of earlier generators too, which
    damps the oscillation of the two players. Samples of a batch are processed in order.

    The pool (``images``, ``count``) and the layer's random generator are variables: a
    checkpoint that holds the layer resumes it exactly. One replica only (each replica would
    need a pool of its own).

    Args:
        size: samples kept; 0 turns the pool off (the input is returned).
        sample_shape: shape of one sample, e.g. ``(H, W, 2)`` or ``(D, H, W, 1)``.
        seed: seed of the layer's generator.

    Call args:
        fakes: ``(B, *sample_shape)``, float32.

    Returns:
        ``(B, *sample_shape)``: for each sample, itself or a stored earlier one.
    """

    def __init__(self, size: int, sample_shape: Sequence[int], seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if size < 0:
            raise ValueError(f"size: expected >= 0, got {size}")
        self.size = int(size)
        self.sample_shape = tuple(int(n) for n in sample_shape)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.images = self.add_weight(shape=(max(self.size, 1), *self.sample_shape), initializer="zeros",
                                      trainable=False, name="images")
        self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False, name="count")
        self.built = True

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size, "sample_shape": list(self.sample_shape), "seed": self.seed}

    def call(self, fakes):
        if self.size == 0:
            return fakes
        if tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1:
            raise ValueError("FakePool: one replica only (--fake_pool=0 under a multi-replica strategy)")
        out = tf.TensorArray(fakes.dtype, size=tf.shape(fakes)[0], element_shape=self.sample_shape)
        out = tf.while_loop(lambda i, _: i < tf.shape(fakes)[0], lambda i, o: (i + 1, o.write(i, self._one(fakes[i]))),
                            (tf.constant(0), out))[1]
        return out.stack()

    def _one(self, fake: tf.Tensor) -> tf.Tensor:
        """One sample through the pool: store or swap, return the sample the critic sees."""
        count = tf.convert_to_tensor(self.count)
        filling = count < self.size
        coin = keras.random.uniform((), seed=self.seed_generator) < 0.5  # swap when full
        slot = tf.where(filling, count, keras.random.randint((), 0, self.size, seed=self.seed_generator))
        stored = tf.gather(tf.convert_to_tensor(self.images), slot)
        keep = tf.logical_or(filling, coin)  # write the new sample into the slot
        self.images.assign(tf.tensor_scatter_nd_update(self.images, slot[None, None],
                                                       tf.where(keep, fake, stored)[None]))
        self.count.assign(tf.minimum(count + 1, self.size))
        return tf.where(tf.logical_and(tf.logical_not(filling), coin), stored, fake)
