"""Classical reconstructions the paper starts from (eq. 3): PLS with TV for MRI,
Richardson-Lucy deconvolution for microscopy."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_otcycle.physics.fft import fft2c, ifft2c
from tf_otcycle.physics.psf import odd_centred


def _grad(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Forward differences with a zero last row/column, ``(B, H, W)`` -> 2 x ``(B, H, W)``."""
    dy = tf.concat([x[:, 1:] - x[:, :-1], tf.zeros_like(x[:, :1])], axis=1)
    dx = tf.concat([x[:, :, 1:] - x[:, :, :-1], tf.zeros_like(x[:, :, :1])], axis=2)
    return dy, dx


def _div(py: tf.Tensor, px: tf.Tensor) -> tf.Tensor:
    """``-∇^T``: the divergence matching :func:`_grad`."""
    dy = tf.concat([py[:, :1], py[:, 1:-1] - py[:, :-2], -py[:, -2:-1]], axis=1)
    dx = tf.concat([px[:, :, :1], px[:, :, 1:-1] - px[:, :, :-2], -px[:, :, -2:-1]], axis=2)
    return dy + dx


def pls_tv_objective(x, y, mask, lam: float, eps: float) -> tf.Tensor:
    """``1/2 ||H x - y||^2 + lam * sum sqrt(|∇x|^2 + eps^2)`` per sample, ``(B,)``."""
    mask = tf.cast(mask, tf.float32)
    r = _h(x, mask[None, None, :] if mask.shape.rank == 1 else mask[:, None, :]) - y
    dy, dx = _grad(x)
    tv = tf.sqrt(tf.abs(dy) ** 2 + tf.abs(dx) ** 2 + eps**2)
    return 0.5 * tf.reduce_sum(tf.abs(r) ** 2, axis=[1, 2]) + lam * tf.reduce_sum(tv, axis=[1, 2])


def pls_tv(
    y: tf.Tensor, mask: tf.Tensor, lam: float = 0.02, iterations: int = 100, eps: float = 0.05
) -> tuple[tf.Tensor, np.ndarray]:
    """PLS with (smoothed, isotropic) TV, ``min_x 1/2 ||Hx - y||^2 + lam TV_eps(x)``, by monotone FISTA.

    ``H = F^H P F`` is the image-domain undersampling (``FFTMask``); ``TV_eps`` replaces
    ``|∇x|`` by ``sqrt(|∇x|^2 + eps^2)`` so the objective is smooth with gradient Lipschitz
    constant ``L = 1 + 8 lam / eps``. MFISTA (Beck & Teboulle 2009) keeps the accelerated
    extrapolation but accepts a step only when it lowers the objective, so the objective is
    non-increasing.

    Args:
        y: complex64 ``(B, H, W)`` zero-filled image ``H x_true`` (+ noise).
        mask: float32 ``(W,)`` or ``(B, W)``.
        lam: TV weight (relative to images normalised to unit std).
        iterations: MFISTA iterations.
        eps: TV smoothing.

    Returns:
        ``(x, objective)``: complex64 ``(B, H, W)`` and the objective per iteration
        ``(iterations + 1, B)``.
    """
    y = tf.cast(y, tf.complex64)
    mask = tf.cast(mask, tf.float32)
    m = mask[None, None, :] if mask.shape.rank == 1 else mask[:, None, :]
    step = 1.0 / (1.0 + 8.0 * lam / eps)

    def grad(x):
        g_data = _h(x, m) - y  # H^T (H x - y), H a self-adjoint projection
        dy, dx = _grad(x)
        norm = tf.cast(tf.sqrt(tf.abs(dy) ** 2 + tf.abs(dx) ** 2 + eps**2), tf.complex64)
        return g_data - lam * _div(dy / norm, dx / norm)

    x = y
    z = y
    t = 1.0
    obj = pls_tv_objective(x, y, mask, lam, eps)
    history = [obj.numpy()]
    for _ in range(iterations):
        u = z - step * grad(z)
        obj_u = pls_tv_objective(u, y, mask, lam, eps)
        accept = obj_u <= obj  # (B,)
        x_new = tf.where(accept[:, None, None], u, x)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = x_new + (t / t_new) * (u - x_new) + ((t - 1) / t_new) * (x_new - x)
        x, t = x_new, t_new
        obj = tf.minimum(obj, obj_u)
        history.append(obj.numpy())
    return x, np.stack(history)


def _h(x: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
    """``F^H P F x`` with ``m`` broadcastable to ``(B, H, W)``."""
    return ifft2c(fft2c(x) * tf.cast(m, tf.complex64))


def richardson_lucy(blurred: np.ndarray, psf: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Richardson-Lucy deconvolution (scikit-image) of a [0, 1] volume; float32 ``(D, H, W)``."""
    from skimage.restoration import richardson_lucy as rl

    psf = odd_centred(np.asarray(psf, np.float64))
    psf = psf / psf.sum()
    return rl(np.clip(np.asarray(blurred, np.float64), 0, None), psf, num_iter=iterations, clip=False).astype(np.float32)
