"""Classical reconstructions the paper starts from (eq. 3): PLS with TV for any linear
operator (:func:`tv_solve`; :func:`pls_tv` is its MRI form) and Richardson-Lucy
deconvolution with any PSF, 2-D or 3-D, with or without a TV prior."""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from tf_otcycle.physics import convolution
from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels
from tf_otcycle.physics.operators import LinearOperator, undersampling
from tf_otcycle.physics.psf import odd_centred


def _grad(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Forward differences over H and W with a zero last row/column, ``(B, H, W, C)`` -> 2 x ``(B, H, W, C)``."""
    return _shift_diff(x, 1), _shift_diff(x, 2)


def _div(py: tf.Tensor, px: tf.Tensor) -> tf.Tensor:
    """``-∇^T``: the divergence matching :func:`_grad`."""
    return _back_diff(py, 1) + _back_diff(px, 2)


def _along(axis: int, part: slice) -> tuple:
    """An index selecting ``part`` of ``axis`` (every other axis whole)."""
    return (slice(None),) * axis + (part,)


def _shift_diff(x: tf.Tensor, axis: int) -> tf.Tensor:
    """Forward difference along ``axis`` with a zero last entry (Neumann boundary)."""
    head = x[_along(axis, slice(1, None))] - x[_along(axis, slice(None, -1))]
    return tf.concat([head, tf.zeros_like(x[_along(axis, slice(None, 1))])], axis=axis)


def _back_diff(p: tf.Tensor, axis: int) -> tf.Tensor:
    """``-D^T p`` along ``axis`` for :func:`_shift_diff`'s ``D`` (the divergence's term)."""
    middle = p[_along(axis, slice(1, -1))] - p[_along(axis, slice(None, -2))]
    return tf.concat([p[_along(axis, slice(None, 1))], middle, -p[_along(axis, slice(-2, -1))]], axis=axis)


def _tv_magnitude(x: tf.Tensor, eps: float) -> tf.Tensor:
    """``sqrt(sum_c |∇x_c|^2 + eps^2)`` per pixel, ``(B, H, W, 1)`` (isotropic over channels)."""
    dy, dx = _grad(x)
    return tf.sqrt(tf.reduce_sum(dy**2 + dx**2, axis=-1, keepdims=True) + eps**2)


def tv_objective(op: LinearOperator, x, b, params, lam: float, eps: float) -> tf.Tensor:
    """``1/2 ||A x - b||^2 + lam * sum TV_eps(x)`` per sample, ``(B,)``; ``x`` ``(B, H, W, C)``."""
    r = op.forward(x, params) - b
    axes = list(range(1, r.shape.rank))
    return 0.5 * tf.reduce_sum(r**2, axis=axes) + lam * tf.reduce_sum(_tv_magnitude(x, eps), axis=[1, 2, 3])


def operator_norm_squared(op: LinearOperator, x0: tf.Tensor, params=None, iterations: int = 30) -> float:
    """``||A^H A||`` (the data term's gradient Lipschitz constant) by power iteration from ``x0``'s shape."""
    v = tf.random.stateless_normal(tf.shape(x0), seed=[0, 1])
    value = 1.0
    for _ in range(iterations):
        v = v / (tf.norm(v) + 1e-20)
        w = op.adjoint(op.forward(v, params), params)
        value = float(tf.reduce_sum(v * w))
        v = w
    return max(value, 1e-12)


def tv_solve(
    op: LinearOperator, b: tf.Tensor, x0: tf.Tensor, params=None, lam: float = 0.02, iterations: int = 100,
    eps: float = 0.05, lipschitz: float | None = None,
) -> tuple[tf.Tensor, np.ndarray]:
    """PLS with smoothed isotropic TV for any linear operator, by monotone FISTA:
    ``min_x 1/2 ||A x - b||^2 + lam TV_eps(x)`` (paper eq. 3 with a TV penalty).

    ``TV_eps`` replaces ``|∇x|`` by ``sqrt(|∇x|^2 + eps^2)`` (channels together, so a complex
    image's real and imaginary parts share one magnitude), so the objective is smooth with
    gradient Lipschitz constant ``L = ||A^H A|| + 8 lam / eps``; ``||A^H A||`` is estimated
    by power iteration unless ``lipschitz`` gives it. MFISTA (Beck & Teboulle 2009) keeps the
    accelerated extrapolation but accepts a step only when it lowers the objective, so the
    objective is non-increasing. The iterations run as one compiled ``tf.function`` loop
    (traced once per operator, settings and input shape), on the whole batch at once.

    Args:
        op: the forward operator ``A`` (:mod:`tf_otcycle.physics.operators`).
        b: measurements, shaped like ``A x``.
        x0: initial image ``(B, H, W, C)`` float32 (e.g. ``A^H b``).
        params: ``op``'s per-sample parameters.

    Returns:
        ``(x, objective)``: ``(B, H, W, C)`` and the objective per iteration ``(iterations + 1, B)``.
    """
    b = tf.convert_to_tensor(b, tf.float32)
    x0 = tf.convert_to_tensor(x0, tf.float32)
    norm = lipschitz if lipschitz is not None else operator_norm_squared(op, x0, params)
    step = tf.constant(1.0 / (norm + 8.0 * lam / eps), tf.float32)
    x, history = _compiled(_mfista, op, lam=float(lam), eps=float(eps), iterations=int(iterations))(b, x0, params, step)
    return x, history.numpy()


_COMPILED: dict = {}


def _compiled(fn, op, **settings):
    """``fn`` with ``op`` and ``settings`` bound, as one ``tf.function`` kept per (op, settings)
    (so repeated calls, e.g. one per test volume, reuse the traced loop)."""
    key = (fn, id(op), tuple(sorted(settings.items())))
    if key not in _COMPILED:
        _COMPILED[key] = (op, tf.function(functools.partial(fn, op, **settings)))
    return _COMPILED[key][1]


def _mfista(op: LinearOperator, b, x0, params, step, lam: float, eps: float, iterations: int):
    """The MFISTA loop of :func:`tv_solve` (graph-friendly: ``tf.range`` loop, TensorArray history)."""

    def grad(x):
        mag = _tv_magnitude(x, eps)
        dy, dx = _grad(x)
        return op.adjoint(op.forward(x, params) - b, params) - lam * _div(dy / mag, dx / mag)

    def objective(x):
        return tv_objective(op, x, b, params, lam, eps)

    x = z = x0
    t = tf.constant(1.0)
    obj = objective(x)
    history = tf.TensorArray(tf.float32, size=iterations + 1).write(0, obj)
    for i in tf.range(iterations):
        u = z - step * grad(z)
        obj_u = objective(u)
        accept = tf.reshape(obj_u <= obj, [-1] + [1] * (x0.shape.rank - 1))  # (B, 1, ...)
        x_new = tf.where(accept, u, x)
        t_new = (1 + tf.sqrt(1 + 4 * t * t)) / 2
        z = x_new + (t / t_new) * (u - x_new) + ((t - 1) / t_new) * (x_new - x)
        x, t = x_new, t_new
        obj = tf.minimum(obj, obj_u)
        history = history.write(i + 1, obj)
    return x, history.stack()


_UNDERSAMPLING = undersampling()  # one operator object: its compiled MFISTA loop is traced once, not per call


def pls_tv_objective(x, y, mask, lam: float, eps: float) -> tf.Tensor:
    """The MRI PLS-TV objective of complex ``(B, H, W)`` images, ``(B,)`` (see :func:`pls_tv`)."""
    return tv_objective(undersampling(), complex_to_channels(x), complex_to_channels(y),
                        {"mask": tf.cast(mask, tf.float32)},
                        lam, eps)


def pls_tv(
    y: tf.Tensor, mask: tf.Tensor, lam: float = 0.02, iterations: int = 100, eps: float = 0.05
) -> tuple[tf.Tensor, np.ndarray]:
    """PLS-TV for accelerated MRI: :func:`tv_solve` with ``H = F^H P F`` (``FFTMask``,
    :func:`tf_otcycle.physics.operators.undersampling`), ``||H^H H|| = 1``, from ``x0 = y``.

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
    b = complex_to_channels(tf.cast(y, tf.complex64))
    x, history = tv_solve(_UNDERSAMPLING, b, b, {"mask": tf.cast(mask, tf.float32)}, lam, iterations, eps,
                          lipschitz=1.0)
    return channels_to_complex(x), history


_RL_EPS = 1e-12  # scikit-image's guard against division by zero


def richardson_lucy(blurred: np.ndarray, psf: np.ndarray, iterations: int = 30, tv_weight: float = 0.0) -> np.ndarray:
    """Richardson-Lucy deconvolution of a non-negative image or volume (or a batch of them)
    with any PSF of the same rank, centred at ``shape // 2`` and normalised to unit sum:

        x_0 = 0.5,   x_{k+1} = x_k * H^T( y / (H x_k + 1e-12) ) / (1 - tv_weight * div(∇x_k / |∇x_k|))

    with ``H`` the same-size zero-boundary convolution of :mod:`tf_otcycle.physics.operators`
    and ``H^T`` its adjoint. With ``tv_weight`` 0 it is scikit-image's
    ``richardson_lucy(..., clip=False)`` (tested to float32 rounding); a positive weight is
    Richardson-Lucy with total variation (Dey et al. 2006, the TV term in voxel units, its
    denominator kept >= 0.1). One compiled TensorFlow loop with the PSF's spectrum computed
    once, in float32.

    Args:
        blurred: ``spatial`` or ``(B, *spatial)`` array, 2 or 3 spatial axes like ``psf``.
        psf: the PSF, 2-D or 3-D.
        iterations: RL iterations.
        tv_weight: weight of the TV prior (0: plain Richardson-Lucy).

    Returns:
        float32, ``blurred``'s shape.
    """
    psf = odd_centred(np.asarray(psf, np.float64))
    psf = (psf / psf.sum()).astype(np.float32)
    y = np.clip(np.asarray(blurred, np.float32), 0, None)
    batched = y.ndim == psf.ndim + 1
    if y.ndim not in (psf.ndim, psf.ndim + 1):
        raise ValueError(f"blurred: expected {psf.ndim} spatial axes (or a batch of them) for a {psf.ndim}-D PSF, "
                         f"got shape {y.shape}")
    batch = y if batched else y[None]
    x = _compiled(_richardson_lucy, None, tv_weight=float(tv_weight))(  # one trace serves every iteration count
        tf.constant(batch[..., None]), tf.constant(psf), tf.constant(int(iterations)))
    x = x.numpy()[..., 0]
    return x if batched else x[0]


def _richardson_lucy(_, y: tf.Tensor, psf: tf.Tensor, iterations: tf.Tensor, tv_weight: float) -> tf.Tensor:
    """The RL loop on ``(B, *spatial, 1)``: the PSF spectrum once, one FFT pair per blur."""
    blur, blur_adjoint = convolution.fixed_kernel(psf, y.shape[1:-1])
    x = tf.fill(tf.shape(y), 0.5)
    for _ in tf.range(iterations):
        estimate = blur(x)
        ratio = y / (tf.maximum(estimate, 0.0) + _RL_EPS)  # FFT round-off can leave -1e-9 where 0 is meant
        update = blur_adjoint(ratio)
        if tv_weight:
            update = update / tf.maximum(1.0 - tv_weight * tv_curvature(x), _RL_TV_FLOOR)
        x = x * update
    return x


_RL_TV_FLOOR = 0.1  # the RL-TV denominator's floor: a large weight slows the update, never flips its sign
_TV_EPS = 1e-3  # |∇x| floor of the curvature, in the units of [0, 1]-normalised data


def tv_curvature(x: tf.Tensor, eps: float = _TV_EPS) -> tf.Tensor:
    """``div(∇x / sqrt(|∇x|^2 + eps^2))`` over the spatial axes of ``(B, *spatial, 1)``, same shape:
    minus the gradient of the smoothed total variation (voxel units)."""
    axes = range(1, x.shape.rank - 1)
    grads = [_shift_diff(x, a) for a in axes]
    norm = tf.sqrt(tf.add_n([g**2 for g in grads]) + eps**2)
    return tf.add_n([_back_diff(g / norm, a) for g, a in zip(grads, axes)])
