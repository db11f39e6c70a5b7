"""The microscopy forward operator as a Keras layer: ``H x = h * x`` with a learned PSF h."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf


def _good_fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes the FFT handles fast)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


@keras.saving.register_keras_serializable(package="tf_otcycle")
class PSFConv3D(keras.layers.Layer):
    """Learned 3-D blur ``y = h * x`` (paper eq. 25): one Conv3D filter, no bias.

    The kernel has the Conv3D layout ``(kd, kh, kw, 1, 1)``, is kept non-negative by
    ``keras.constraints.NonNeg()`` (applied by the optimizer after each update) and is
    normalised to unit sum in the forward pass, so ``h`` is a PSF that preserves flux. It is
    stored at mean-1 scale (``set_psf`` multiplies the unit-sum PSF by its size) so that
    Adam's per-element steps are relative to the kernel's values.

    With ``learn_gain=True`` the layer computes ``g * (h * x)`` with a trainable scalar gain
    ``g = exp(log_gain)``: the unit-sum PSF stays a PSF while the gain absorbs the different
    intensity normalisation of the two domains (the paper's plain Conv3D kernel has no
    unit-sum constraint and absorbs it implicitly).
    ``h * x`` is a true convolution with the PSF's optical axis at voxel ``kernel_size // 2``
    (the convention of :mod:`tf_otcycle.physics.psf` and ``fftshift``): a point source stays
    where it is. It equals Conv3D ``padding='same'`` (a cross-correlation centred at
    ``(k - 1) // 2``) with the flipped kernel; the paper's plain Conv3D learns that flipped
    kernel, which for an even size such as 20 sits one voxel off the PSF's centre.
    Both implementations compute it:

    * ``'direct'``: ``tf.nn.conv3d``. Its backward pass is slow for a 20^3 kernel.
    * ``'fft'`` (default): zero-padded complex ``fft3d`` of ``tf.complex(x, 0)``
      (``irfft3d`` has no gradient in TF), product with the conjugate kernel spectrum,
      ``ifft3d``, real part, crop.

    Each input channel is blurred by the same kernel.

    Args:
        kernel_size: ``(kd, kh, kw)`` or an int; paper: 20.
        implementation: ``'fft'`` or ``'direct'``.

    Call args:
        x: ``(B, D, H, W, C)`` float32.

    Returns:
        ``(B, D, H, W, C)`` float32.
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int] = 20,
        implementation: str = "fft",
        learn_gain: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size,) * 3
        kernel_size = tuple(int(k) for k in kernel_size)
        if len(kernel_size) != 3 or min(kernel_size) < 1:
            raise ValueError(f"kernel_size: expected 3 positive sizes, got {kernel_size}")
        if implementation not in ("fft", "direct"):
            raise ValueError(f"implementation: expected 'fft' or 'direct', got {implementation!r}")
        self.kernel_size = kernel_size
        self.implementation = implementation
        self.learn_gain = bool(learn_gain)
        self.log_gain = self.add_weight(name="log_gain", shape=(), initializer="zeros", trainable=self.learn_gain)
        self.kernel = self.add_weight(
            name="kernel",
            shape=kernel_size + (1, 1),
            initializer="ones",
            constraint=keras.constraints.NonNeg(),
            trainable=True,
        )
        self.built = True  # the kernel does not depend on the input shape

    # --- the PSF ---------------------------------------------------------------------------
    def normalized_kernel(self) -> tf.Tensor:
        """The PSF ``(kd, kh, kw)`` float32, non-negative, unit sum."""
        k = tf.nn.relu(tf.convert_to_tensor(self.kernel)[..., 0, 0])
        return k / (tf.reduce_sum(k) + 1e-12)

    @property
    def psf(self) -> np.ndarray:
        """The current PSF as a NumPy array ``(kd, kh, kw)``."""
        return np.asarray(self.normalized_kernel())

    def set_psf(self, psf: np.ndarray) -> None:
        """Set the kernel from a ``(kd, kh, kw)`` non-negative array (normalised here)."""
        psf = np.asarray(psf, np.float32)
        if psf.shape != self.kernel_size:
            raise ValueError(f"psf: expected shape {self.kernel_size}, got {psf.shape}")
        if not np.all(np.isfinite(psf)) or psf.min() < 0 or psf.sum() <= 0:
            raise ValueError("psf: expected finite non-negative values with a positive sum")
        self.kernel.assign((psf / psf.mean())[..., None, None])

    @property
    def gain(self) -> float:
        """The intensity gain g (1 unless ``learn_gain``)."""
        return float(np.exp(np.asarray(self.log_gain)))

    def set_gain(self, gain: float) -> None:
        if not gain > 0:
            raise ValueError(f"gain: expected > 0, got {gain!r}")
        self.log_gain.assign(float(np.log(gain)))

    # --- forward ---------------------------------------------------------------------------
    def call(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        if x.shape.rank != 5:
            raise ValueError(f"x: expected shape (B, D, H, W, C), got {x.shape}")
        for axis, k in zip((1, 2, 3), self.kernel_size):
            n = x.shape[axis]
            if n is not None and n < k:
                raise ValueError(
                    f"x: spatial size {n} on axis {axis} is smaller than the PSF kernel "
                    f"{self.kernel_size} (input shape {x.shape})"
                )
        # Conv3D computes a cross-correlation centred at (k - 1) // 2; the flipped kernel makes it
        # the convolution h * x centred at k // 2, where the physics module puts the optical axis.
        kernel = tf.reverse(self.normalized_kernel(), axis=[0, 1, 2])
        y = self._direct(x, kernel) if self.implementation == "direct" else self._fft(x, kernel)
        return y * tf.exp(tf.convert_to_tensor(self.log_gain)) if self.learn_gain else y

    def _direct(self, x, kernel):
        shape = tf.shape(x)
        c = shape[4]
        xb = tf.reshape(tf.transpose(x, [0, 4, 1, 2, 3]), [-1, shape[1], shape[2], shape[3], 1])
        y = tf.nn.conv3d(xb, kernel[..., None, None], strides=[1] * 5, padding="SAME")
        y = tf.reshape(y, [shape[0], c, shape[1], shape[2], shape[3]])
        return tf.transpose(y, [0, 2, 3, 4, 1])

    def _fft(self, x, kernel):
        static = x.shape
        dyn = tf.shape(x)
        sizes, lengths, before = [], [], []
        for i, k in enumerate(self.kernel_size):
            n = static[i + 1] if static[i + 1] is not None else dyn[i + 1]
            sizes.append(n)
            lengths.append(_good_fft_size(n + k - 1) if isinstance(n, int) else n + k - 1)
            before.append((k - 1) // 2)  # TF 'SAME' puts the extra pad after
        xt = tf.transpose(x, [0, 4, 1, 2, 3])  # (B, C, D, H, W)
        pads = [[0, 0], [0, 0]] + [[b, ln - n - b] for b, ln, n in zip(before, lengths, sizes)]
        xp = tf.pad(xt, pads)
        kp = tf.pad(kernel, [[0, ln - k] for ln, k in zip(lengths, self.kernel_size)])
        xf = tf.signal.fft3d(tf.complex(xp, tf.zeros_like(xp)))
        kf = tf.signal.fft3d(tf.complex(kp, tf.zeros_like(kp)))
        y = tf.math.real(tf.signal.ifft3d(xf * tf.math.conj(kf)))  # circular correlation
        y = y[:, :, : sizes[0], : sizes[1], : sizes[2]]
        return tf.transpose(y, [0, 2, 3, 4, 1])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": list(self.kernel_size), "implementation": self.implementation, "learn_gain": self.learn_gain,
        })
        return config
