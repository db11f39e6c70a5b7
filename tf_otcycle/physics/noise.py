"""Poisson-Gaussian measurement noise: its estimate from measurements alone, and its simulation.

A fluorescence camera counts photons (Poisson) and adds read noise (Gaussian). In the units
of a measurement ``y`` (any scaling, e.g. normalised to [0, 1]) its variance is affine in
the noise-free signal ``s = E[y] = h * x``::

    Var(y | s) = a * s + b        (a: gain, b: signal-independent variance)

The OT-cycleGAN's simulated measurement ``Hx`` is the noise-free ``s``; drawing this noise
on it makes ``Hx`` a sample of the measurement domain, as the real ``y`` are
(:class:`tf_otcycle.model.OTCycleGAN`, ``noise_gain`` / ``noise_floor``).
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

_MAD_TO_STD = 1.4826  # std of a Gaussian = 1.4826 * its median absolute deviation


def _second_differences(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(residual, local mean)`` over the voxels one from every edge: the separable second
    difference ``[1, -2, 1] / sqrt(6)`` along every axis of length >= 3 (variance ``Var(y)``
    for independent noise; a signal survives it only through its mixed high derivative,
    which a blurred signal lacks) and the mean over the same ``3 x ... x 3`` neighbourhood.

    A wider neighbourhood for the mean (5 or 7 voxels a side) makes the level less noisy but
    averages thin structure: on the benchmark sets it put nuclei's dark variance 1.7-2.5x too
    low and membranes' constant negative (measured against the true noise, 2026-12-04)."""
    residual = mean = volume
    for axis in range(volume.ndim):
        n = volume.shape[axis]
        if n < 3:
            continue
        r = [np.take(residual, range(k, n - 2 + k), axis=axis) for k in range(3)]
        m = [np.take(mean, range(k, n - 2 + k), axis=axis) for k in range(3)]
        residual = (r[0] - 2.0 * r[1] + r[2]) / np.sqrt(6.0)
        mean = (m[0] + m[1] + m[2]) / 3.0
    return residual.ravel(), mean.ravel()


def noise_level_function(volume: np.ndarray, bins: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise variance against signal level, from one measurement (no ground truth needed).

    The separable second difference along all axes of length >= 3 removes the (smooth,
    blurred) signal; in ``bins`` quantile bins of the local mean its variance is estimated
    robustly (MAD). Differences along one axis at a time, as before 2026-12-04, let the
    curvature of blurred structure through: on stacks with a large dark background they
    overestimated the dark regions' variance by 2-3x (``benchmarks/noise_fit.py``,
    ``benchmarks/ABLATION_microscopy.md``).

    Args:
        volume: ``(..., )`` one measurement, float.
        bins: number of signal-level bins.

    Returns:
        ``(levels, variances, counts)``, each ``(bins,)``: the median local mean, the noise
        variance and the number of voxels of each bin (bins with too few voxels dropped).
    """
    volume = np.asarray(volume, np.float64)
    if not any(n >= 3 for n in volume.shape):
        raise ValueError(f"noise_level_function: no axis of length >= 3 in shape {volume.shape}")
    residual, mean = _second_differences(volume)
    edges = np.unique(np.quantile(mean, np.linspace(0.0, 1.0, bins + 1)))
    which = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, len(edges) - 2)
    levels, variances, counts = [], [], []
    for k in range(len(edges) - 1):
        in_bin = which == k
        r = residual[in_bin]
        if r.size < 32:
            continue
        levels.append(np.median(mean[in_bin]))
        variances.append((_MAD_TO_STD * np.median(np.abs(r - np.median(r)))) ** 2)
        counts.append(r.size)
    if not levels:
        raise ValueError(f"noise_level_function: too few voxels in shape {volume.shape}")
    return np.array(levels), np.array(variances), np.array(counts)


def estimate_poisson_gaussian(volumes: Iterable[np.ndarray]) -> tuple[float, float]:
    """``(a, b)`` of ``Var(y) = a * E[y] + b`` fitted to measurements (median over volumes).

    Each volume's :func:`noise_level_function` is fitted by weighted least squares with
    ``a >= 0``. ``b`` may be negative: a camera offset puts the zero of the photon count
    above the zero of ``y`` (min-max normalisation keeps the offset), so ``Var = a (E[y] -
    offset) + read variance``; ``b`` is only kept high enough that the fit at the darkest
    level measured is at least the variance measured there (the read noise).
    """
    fits = []
    for volume in volumes:
        level, variance, count = noise_level_function(volume)
        a, b = _affine_fit(level, variance, count)
        darkest = int(np.argmin(level))
        fits.append((a, max(b, variance[darkest] - a * level[darkest])))
    if not fits:
        raise ValueError("estimate_poisson_gaussian: no volumes")
    a, b = np.median(np.array(fits), axis=0)
    return float(a), float(b)


def estimate_background(volumes: Iterable[np.ndarray], width: int = 5, percentile: float = 0.1) -> float:
    """A measurement's additive background (camera offset, haze) in its own units: the
    ``percentile``-th percentile of the volumes' local means over ``width`` voxels per axis
    (the local mean averages the noise away; a low percentile finds the darkest region).

    It is an upper bound where the sample fills the field (every region carries blurred
    signal), so it starts a learned background rather than fixing it.
    """
    levels = [np.percentile(ndimage.uniform_filter(np.asarray(v, np.float32), width, mode="reflect"), percentile)
              for v in volumes]
    if not levels:
        raise ValueError("estimate_background: no volumes")
    return float(max(np.median(levels), 0.0))


def _affine_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` minimising ``sum w (a x + b - y)^2`` with ``a >= 0``."""
    sw = np.sqrt(w)
    (a, b), *_ = np.linalg.lstsq(np.stack([x * sw, sw], 1), y * sw, rcond=None)
    if a < 0:
        return 0.0, float(max(np.average(y, weights=w), 0.0))
    return float(a), float(b)


def affine_match(signal: np.ndarray, y: np.ndarray, *extra: np.ndarray) -> np.ndarray:
    """``c0 + c1 * signal (+ sum_k c_k * extra_k)`` with the ``c`` fitted to ``y`` by least
    squares: a prediction of ``y`` in ``y``'s units when ``signal``'s offset and scale are
    unknown (e.g. both normalised by their own minimum and maximum).

    ``extra``: further regressors of ``y``'s shape, e.g. ``h * 1`` when ``signal`` is
    ``h * x`` under a zero boundary: an unknown offset ``c`` of ``x`` then blurs to
    ``c * (h * 1)``, which falls off at the edges and no constant absorbs.
    """
    columns = [np.asarray(a, np.float64).ravel() for a in (signal, *extra)]
    design = np.stack([*columns, np.ones_like(columns[0])], 1)
    coefficients, *_ = np.linalg.lstsq(design, np.asarray(y, np.float64).ravel(), rcond=None)
    return (design @ coefficients).reshape(np.shape(signal)).astype(np.float32)


def chi_square(y: np.ndarray, signal: np.ndarray, gain: float, floor: float) -> float:
    """Mean squared residual of ``y`` against a noise-free ``signal`` in units of the noise
    variance ``gain * signal + floor``: about 1 when ``signal`` is the truth, above 1 when it
    misses structure (too smooth, or wrong), below 1 when it has fitted the noise (the
    discrepancy principle). The variance is kept above 1e-3 of its mean (``floor`` may be 0)."""
    y, signal = np.asarray(y, np.float64), np.asarray(signal, np.float64)
    variance = gain * np.maximum(signal, 0) + floor
    variance = np.maximum(variance, 1e-3 * float(np.mean(variance)) + 1e-20)
    return float(np.mean((y - signal) ** 2 / variance))


def parse_noise(value: str) -> tuple[float, float] | None:
    """``--measurement_noise``: ``"auto"`` -> None (estimate), ``"none"`` -> (0, 0), ``"A,B"`` -> (A, B)."""
    text = str(value).strip().lower()
    if text == "auto":
        return None
    if text == "none":
        return 0.0, 0.0
    parts = text.split(",")
    try:
        a, b = (float(p) for p in parts)
    except ValueError:
        raise ValueError("--measurement_noise: expected auto, none or GAIN,VARIANCE (two numbers >= 0), "
                         f"got {value!r}") from None
    if a < 0 or b < 0 or not np.isfinite(a + b):
        raise ValueError(f"--measurement_noise: GAIN and VARIANCE must be finite and >= 0, got {value!r}")
    return a, b


def poisson_gaussian(signal: tf.Tensor, gain: float, floor: float,
                     seed: keras.random.SeedGenerator | int | None = None) -> tf.Tensor:
    """``signal + sqrt(max(gain * max(signal, 0) + floor, 0)) * N(0, 1)``: a noisy measurement
    of ``signal`` (``floor`` < 0: a camera offset, see :func:`estimate_poisson_gaussian`).

    The Gaussian approximation of Poisson-Gaussian noise; its standard deviation is held out
    of the gradient, so gradients flow to ``signal`` (e.g. a learned PSF) as through the
    identity. Returns ``signal`` itself when ``gain`` and ``floor`` are 0.
    """
    if gain == 0 and floor == 0:
        return signal
    std = tf.stop_gradient(tf.sqrt(tf.nn.relu(gain * tf.nn.relu(signal) + floor)))
    return signal + std * keras.random.normal(tf.shape(signal), dtype=signal.dtype, seed=seed)
