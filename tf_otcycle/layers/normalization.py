"""Instance normalisation, as one fused kernel where the batch allows it."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_otcycle")
class InstanceNormalization(keras.layers.Layer):
    """Normalise each sample's channels over its spatial axes, then scale and shift per channel.

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta`` with ``mean`` and the biased
    ``var`` over the spatial axes of each sample and channel: the same function (and the
    same weights, ``gamma`` and ``beta``) as ``keras.layers.GroupNormalization(groups=-1)``.

    Speed: with a static batch of one float32 sample (every training step at the paper's
    batch size) instance and batch statistics coincide, and the layer runs TensorFlow's
    fused batch-norm kernel in training mode, one op forward and one backward; otherwise
    (larger or unknown batches, e.g. an exported model, or half precision) it runs
    ``tf.nn.moments``. The fused path makes a U-Net's forward and backward pass about a
    quarter faster on CPU than ``GroupNormalization``; the two paths agree to float32
    rounding (tested).

    Call args:
        x: ``(B, *spatial, C)``, 2 or 3 spatial axes for the fused path.

    Returns:
        a tensor shaped like ``x``.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x):
        if x.shape[0] == 1 and x.shape.rank in (4, 5) and x.dtype == tf.float32:
            return self.normalize_fused(x)
        return self.normalize_with_moments(x)

    def normalize_fused(self, x):
        """The fused path for one float32 sample; a volume ``(1, D, H, W, C)`` runs as the image
        ``(1, D * H, W, C)``, the same statistics per channel, which TensorFlow's 2-D kernel
        computes 1.9-2.4x faster forward and backward than its 3-D one on CPU (measured)."""
        if x.shape.rank == 4:
            return self._fused_image(x)
        shape = tf.shape(x)
        y = tf.reshape(self._fused_image(tf.reshape(x, tf.stack([1, shape[1] * shape[2], shape[3], shape[4]]))),
                       shape)
        y.set_shape(x.shape)  # the reshape by a shape tensor forgets the static sizes
        return y

    def _fused_image(self, x):
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, self.gamma, self.beta, epsilon=self.epsilon, is_training=True,
                                                   data_format="NHWC")
        return y

    def normalize_with_moments(self, x):
        """The general path: moments over the spatial axes (any batch, rank and dtype)."""
        axes = list(range(1, x.shape.rank - 1))
        mean, var = tf.nn.moments(x, axes, keepdims=True)
        gamma, beta = tf.cast(self.gamma, x.dtype), tf.cast(self.beta, x.dtype)
        scale = tf.math.rsqrt(var + tf.cast(self.epsilon, x.dtype)) * gamma
        return x * scale + (beta - mean * scale)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "epsilon": self.epsilon}
