"""The blur forward operator as a Keras layer: ``H x = h * x`` with a learned PSF h (2-D or 3-D)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_otcycle.physics import convolution


@keras.saving.register_keras_serializable(package="tf_otcycle")
class PSFConv(keras.layers.Layer):
    """Learned blur ``y = h * x`` (paper eq. 25): one convolution filter, no bias, 2-D or 3-D
    (the number of sizes in ``kernel_size``; :class:`PSFConv3D` and :class:`PSFConv2D` fix it).

    The kernel has the Conv3D layout ``(kd, kh, kw, 1, 1)``, is kept non-negative by
    ``keras.constraints.NonNeg()`` (applied by the optimizer after each update) and is
    normalised to unit sum in the forward pass, so ``h`` is a PSF that preserves flux. It is
    stored at mean-1 scale (``set_psf`` multiplies the unit-sum PSF by its size) so that
    Adam's per-element steps are relative to the kernel's values.

    With ``learn_gain=True`` the layer computes ``g * (h * x)`` with a trainable scalar gain
    ``g = exp(log_gain)``: the unit-sum PSF stays a PSF while the gain absorbs the different
    intensity normalisation of the two domains (the paper's plain Conv3D kernel has no
    unit-sum constraint and absorbs it implicitly).

    With ``learn_background=True`` it computes ``g * (h * x) + b`` with a trainable
    non-negative scalar background ``b`` (not in the paper): widefield stacks sit on a camera
    offset and out-of-focus haze that min-max normalisation does not remove, and no blur of a
    clean image with a dark background reproduces it. The operator is then affine;
    :meth:`adjoint` is the adjoint of its linear part.
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

    With ``symmetry='lateral'`` (not in the paper) the PSF is the kernel's mean over the
    lateral reflections and quarter turns about the optical axis
    (:func:`tf_otcycle.physics.convolution.lateral_symmetric`), the symmetries of an
    aberration-free widefield PSF: the learned PSF has 4-8 times fewer free values and cannot
    drift into an asymmetric shape, and ``H`` commutes exactly with the flips and rotations the
    training patches are augmented with. ``'none'``: the paper's free kernel.

    Each input channel is blurred by the same kernel. :meth:`adjoint` is the exact adjoint
    (the physics operator :class:`tf_otcycle.physics.operators.Convolution`).

    Args:
        kernel_size: ``(kd, kh, kw)`` or ``(kh, kw)``; paper: 20^3.
        implementation: ``'fft'`` or ``'direct'``.
        symmetry: ``'none'`` or ``'lateral'``.

    Call args:
        x: ``(B, D, H, W, C)`` (or ``(B, H, W, C)`` in 2-D) float32.

    Returns:
        the same shape, float32.
    """

    ndim: int | None = None  # fixed by the 2-D / 3-D subclasses
    param_keys: tuple[str, ...] = ()  # nothing per sample: the PSF is a weight

    def __init__(
        self,
        kernel_size: int | Sequence[int] = 20,
        implementation: str = "fft",
        learn_gain: bool = False,
        learn_background: bool = False,
        symmetry: str = "none",
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")  # the physics (FFTs, the PSF) stays float32 under mixed precision
        super().__init__(**kwargs)
        if isinstance(kernel_size, int):
            if self.ndim is None:
                raise ValueError("kernel_size: give one size per axis (2 or 3), or use PSFConv2D / PSFConv3D")
            kernel_size = (kernel_size,) * self.ndim
        kernel_size = tuple(int(k) for k in kernel_size)
        ndim = self.ndim or len(kernel_size)
        if len(kernel_size) != ndim or ndim not in (2, 3) or min(kernel_size) < 1:
            raise ValueError(f"kernel_size: expected {self.ndim or '2 or 3'} positive sizes, got {kernel_size}")
        if implementation not in ("fft", "direct"):
            raise ValueError(f"implementation: expected 'fft' or 'direct', got {implementation!r}")
        if symmetry not in convolution.SYMMETRIES:
            raise ValueError(f"symmetry: expected one of {convolution.SYMMETRIES}, got {symmetry!r}")
        self.kernel_size = kernel_size
        self.implementation = implementation
        self.symmetry = symmetry
        self.learn_gain = bool(learn_gain)
        self.log_gain = self.add_weight(name="log_gain", shape=(), initializer="zeros", trainable=self.learn_gain)
        self.learn_background = bool(learn_background)
        self._background = None
        if self.learn_background:  # only then: models saved without it keep their weights
            self._background = self.add_weight(name="background", shape=(), initializer="zeros",
                                               constraint=keras.constraints.NonNeg(), trainable=True)
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
        """The PSF ``kernel_size`` float32, non-negative, unit sum (and symmetric with ``symmetry``)."""
        k = tf.nn.relu(tf.convert_to_tensor(self.kernel)[..., 0, 0])
        if self.symmetry == "lateral":
            k = convolution.lateral_symmetric(k)
        return k / (tf.reduce_sum(k) + 1e-12)

    @property
    def psf(self) -> np.ndarray:
        """The current PSF as a NumPy array of shape ``kernel_size``."""
        return np.asarray(self.normalized_kernel())

    def set_psf(self, psf: np.ndarray) -> None:
        """Set the kernel from a non-negative array of shape ``kernel_size`` (normalised here)."""
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

    @property
    def background(self) -> float:
        """The additive background b (0 unless ``learn_background``)."""
        return 0.0 if self._background is None else float(np.asarray(self._background))

    def set_background(self, background: float) -> None:
        if self._background is None:
            raise ValueError("set_background: the layer was built without learn_background=True")
        if not background >= 0:
            raise ValueError(f"background: expected >= 0, got {background!r}")
        self._background.assign(float(background))

    # --- forward ---------------------------------------------------------------------------
    def call(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        nd = len(self.kernel_size)
        if x.shape.rank != nd + 2:
            raise ValueError(f"x: expected shape (B, {'D, ' if nd == 3 else ''}H, W, C), got {x.shape}")
        for axis, k in zip(range(1, nd + 1), self.kernel_size):
            n = x.shape[axis]
            if n is not None and n < k:
                raise ValueError(
                    f"x: spatial size {n} on axis {axis} is smaller than the PSF kernel "
                    f"{self.kernel_size} (input shape {x.shape})"
                )
        y = convolution.convolve(x, self.normalized_kernel(), self.implementation)
        if self.learn_gain:
            y = y * tf.exp(tf.convert_to_tensor(self.log_gain))
        if self._background is not None:
            y = y + tf.nn.relu(tf.convert_to_tensor(self._background))
        return y

    def adjoint(self, y):
        """``H^T y``: correlation with the same PSF (times the gain), exact adjoint of ``call``
        (of its linear part ``g * (h * x)`` with a background)."""
        y = tf.convert_to_tensor(y, tf.float32)
        out = convolution.convolve_adjoint(y, self.normalized_kernel(), self.implementation)
        return out * tf.exp(tf.convert_to_tensor(self.log_gain)) if self.learn_gain else out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": list(self.kernel_size), "implementation": self.implementation, "learn_gain": self.learn_gain,
            "learn_background": self.learn_background, "symmetry": self.symmetry,
        })
        return config


@keras.saving.register_keras_serializable(package="tf_otcycle")
class PSFConv3D(PSFConv):
    """:class:`PSFConv` in 3-D (microscopy volumes ``(B, D, H, W, C)``); an int ``kernel_size`` is cubic."""

    ndim = 3


@keras.saving.register_keras_serializable(package="tf_otcycle")
class PSFConv2D(PSFConv):
    """:class:`PSFConv` in 2-D (images ``(B, H, W, C)``); an int ``kernel_size`` is square."""

    ndim = 2
