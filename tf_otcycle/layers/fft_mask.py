"""The MRI forward operator as a Keras layer: ``H x = IFFT2(P_mask FFT2(x))``."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tf_otcycle.physics.operators import undersampling

_UNDERSAMPLING = undersampling()


@keras.saving.register_keras_serializable(package="tf_otcycle")
class FFTMask(keras.layers.Layer):
    """Image-domain Cartesian undersampling ``H x = F^H P_Ω F x`` (paper eq. 23).

    ``F`` is the centred orthonormal 2-D FFT and ``P_Ω`` keeps the k-space columns where
    the sampling mask is 1. ``H`` is an orthogonal projection: ``H∘H = H``, ``H^T = H``.

    The layer is the physics operator :func:`tf_otcycle.physics.operators.undersampling`.
    The mask is either given per call, ``layer(x, sampling_mask)`` with shape ``(W,)`` or
    ``(B, W)`` (or the batch's params dict ``{"mask": ...}``), or fixed at construction,
    ``FFTMask(sampling_mask=m)``. A fixed mask is kept as a non-trainable weight (saved with
    the weights, not as a JSON list in the config).

    Args:
        sampling_mask: optional fixed mask, float array ``(W,)`` of 0/1.
        num_cols: width W of a fixed mask; inferred from ``sampling_mask``. Given alone it
            creates a zero mask to be filled by loading weights (used by ``from_config``).

    Call args:
        x: ``(B, H, W, 2)`` float32, real/imag channels.
        sampling_mask: ``(W,)`` or ``(B, W)``; overrides the fixed mask.

    Returns:
        ``(B, H, W, 2)`` float32.
    """

    def __init__(self, sampling_mask=None, num_cols: int | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # the physics (FFTs, the PSF) stays float32 under mixed precision
        super().__init__(**kwargs)
        fixed = None
        if sampling_mask is not None:
            fixed = np.asarray(sampling_mask, np.float32)
            if fixed.ndim != 1:
                raise ValueError(f"sampling_mask: expected shape (W,), got {fixed.shape}")
            if num_cols is not None and num_cols != fixed.shape[0]:
                raise ValueError(
                    f"num_cols: {num_cols} does not match sampling_mask width {fixed.shape[0]}"
                )
            num_cols = fixed.shape[0]
        self.num_cols = None if num_cols is None else int(num_cols)
        self.fixed_mask = None
        if self.num_cols is not None:
            self.fixed_mask = self.add_weight(
                name="sampling_mask", shape=(self.num_cols,), initializer="zeros", trainable=False
            )
            if fixed is not None:
                self.fixed_mask.assign(fixed)
        self.built = True  # no shape-dependent state; fit's symbolic build needs built layers

    param_keys = ("mask",)  # what the model forwards from the batch's per-sample params

    def call(self, x, sampling_mask=None):
        if isinstance(sampling_mask, dict):  # the per-sample params of the batch
            sampling_mask = sampling_mask.get("mask")
        x = tf.convert_to_tensor(x, tf.float32)
        _check_image_shape(x.shape, "x")
        if self.num_cols is not None and x.shape[2] is not None and x.shape[2] != self.num_cols:
            raise ValueError(f"x: width {x.shape[2]} does not match the fixed sampling_mask width {self.num_cols}")
        if sampling_mask is None:
            if self.fixed_mask is None:
                raise ValueError("sampling_mask: none given and the layer has no fixed mask")
            sampling_mask = self.fixed_mask
        broadcastable_mask(sampling_mask, x)  # checks the shapes
        return _UNDERSAMPLING.forward(x, {"mask": sampling_mask})

    def adjoint(self, y, sampling_mask=None):
        """``H^T y = H y``: the undersampling is a self-adjoint projection."""
        return self.call(y, sampling_mask)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_cols": self.num_cols})
        return config


def broadcastable_mask(sampling_mask, x: tf.Tensor) -> tf.Tensor:
    """Check a ``(W,)`` or ``(B, W)`` mask against ``x (B, H, W, 2)``; return ``(B|1, 1, W)``."""
    m = tf.convert_to_tensor(sampling_mask)
    m = tf.cast(m, tf.float32)
    if m.shape.rank not in (1, 2):
        raise ValueError(f"sampling_mask: expected shape (W,) or (B, W), got {m.shape}")
    width = x.shape[2]
    if m.shape[-1] is not None and width is not None and m.shape[-1] != width:
        raise ValueError(
            f"sampling_mask: width {m.shape[-1]} does not match the image width {width} "
            f"(x has shape {x.shape})"
        )
    if m.shape[-1] is None or width is None:
        tf.debugging.assert_equal(
            tf.shape(m)[-1], tf.shape(x)[2], message="sampling_mask: width does not match the image"
        )
    if m.shape.rank == 1:
        return m[None, None, :]
    return m[:, None, :]


def _check_image_shape(shape, name: str) -> None:
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"{name}: expected shape (B, H, W, 2), got {shape}")
    if shape[-1] is not None and shape[-1] != 2:
        raise ValueError(f"{name}: expected 2 channels (real, imag), got shape {shape}")
