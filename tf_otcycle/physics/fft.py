"""Centred, orthonormal 2-D Fourier transforms and the complex <-> 2-channel layout.

Conventions (as fastMRI's ``fftc.py``):

* The transforms act on the last two axes of a complex tensor ``(..., H, W)``.
* They are *centred*: the zero frequency sits at index ``(H // 2, W // 2)``, i.e.
  ``fft2c(x) = fftshift(fft2(ifftshift(x)))``.
* They are *orthonormal*: ``||fft2c(x)|| = ||x||`` (Parseval), ``ifft2c = fft2c^H``.

Networks see complex images as two real channels, last axis: ``(..., H, W, 2)`` float32
with ``[..., 0]`` the real and ``[..., 1]`` the imaginary part.
"""

from __future__ import annotations

import tensorflow as tf


def _shift(x: tf.Tensor, inverse: bool) -> tf.Tensor:
    """``fftshift`` (or ``ifftshift``) over the last two axes."""
    shape = tf.shape(x)
    h, w = shape[-2], shape[-1]
    if inverse:
        shifts = [-(h // 2), -(w // 2)]
    else:
        shifts = [h // 2, w // 2]
    return tf.roll(x, shift=shifts, axis=[-2, -1])


def _norm(x: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(x)
    n = tf.cast(shape[-2] * shape[-1], tf.float32)
    return tf.cast(tf.sqrt(n), x.dtype)


def fft2c(x: tf.Tensor) -> tf.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes.

    Args:
        x: complex64 tensor ``(..., H, W)`` (image domain).

    Returns:
        complex64 tensor ``(..., H, W)`` (k-space, zero frequency at ``(H//2, W//2)``).
    """
    x = _as_complex(x, "x")
    return _shift(tf.signal.fft2d(_shift(x, inverse=True)), inverse=False) / _norm(x)


def ifft2c(k: tf.Tensor) -> tf.Tensor:
    """Centred orthonormal 2-D inverse FFT over the last two axes.

    Args:
        k: complex64 tensor ``(..., H, W)`` (centred k-space).

    Returns:
        complex64 tensor ``(..., H, W)`` (image domain).
    """
    k = _as_complex(k, "k")
    return _shift(tf.signal.ifft2d(_shift(k, inverse=True)), inverse=False) * _norm(k)


def data_consistency(x: tf.Tensor, measured_kspace: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Put the measured k-space lines back into an image: ``ifft2c(m k + (1 - m) fft2c(x))``.

    Args:
        x: complex64 ``(B, H, W)`` reconstruction.
        measured_kspace: complex64 ``(B, H, W)`` centred k-space; only sampled lines are used.
        mask: float ``(B, W)`` 1-D Cartesian mask (1 = sampled column).

    Returns:
        complex64 ``(B, H, W)``, equal to ``x`` on the unsampled lines.
    """
    m = tf.cast(mask, tf.complex64)[:, None, :]  # (B, 1, W)
    return ifft2c(m * measured_kspace + (1 - m) * fft2c(x))


def complex_to_channels(x: tf.Tensor) -> tf.Tensor:
    """``(..., H, W)`` complex64 -> ``(..., H, W, 2)`` float32 (real, imag)."""
    x = _as_complex(x, "x")
    return tf.stack([tf.math.real(x), tf.math.imag(x)], axis=-1)


def channels_to_complex(x: tf.Tensor) -> tf.Tensor:
    """``(..., H, W, 2)`` float32 (real, imag) -> ``(..., H, W)`` complex64."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank is not None and x.shape.rank < 3:
        raise ValueError(f"x: expected shape (..., H, W, 2), got rank {x.shape.rank}")
    if x.shape[-1] is not None and x.shape[-1] != 2:
        raise ValueError(f"x: expected 2 channels (real, imag) in the last axis, got shape {x.shape}")
    x = tf.cast(x, tf.float32)
    return tf.complex(x[..., 0], x[..., 1])


def fft2c_channels(x: tf.Tensor) -> tf.Tensor:
    """:func:`fft2c` on the 2-channel layout: ``(..., H, W, 2)`` -> ``(..., H, W, 2)``."""
    return complex_to_channels(fft2c(channels_to_complex(x)))


def ifft2c_channels(k: tf.Tensor) -> tf.Tensor:
    """:func:`ifft2c` on the 2-channel layout: ``(..., H, W, 2)`` -> ``(..., H, W, 2)``."""
    return complex_to_channels(ifft2c(channels_to_complex(k)))


def _as_complex(x: tf.Tensor, name: str) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if x.shape.rank is not None and x.shape.rank < 2:
        raise ValueError(f"{name}: expected shape (..., H, W), got rank {x.shape.rank}")
    if not x.dtype.is_complex:
        x = tf.complex(tf.cast(x, tf.float32), tf.zeros_like(tf.cast(x, tf.float32)))
    return tf.cast(x, tf.complex64)
