"""Image quality metrics, matching fastMRI's ``evaluate.py``.

NumPy versions (used for every reported number):

* ``psnr``: over the whole volume with ``data_range = gt.max()``;
* ``ssim``: per 2-D slice (first axis) with the *volume* maximum as data range
  (scikit-image, 7x7 uniform window), averaged over slices;
* ``nmse``: ``||gt - pred||^2 / ||gt||^2``.

TensorFlow versions (``psnr_tf``, ``ssim_tf``) give the same conventions per batch element
for training summaries.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tf_otcycle.physics.noise import affine_match


def _pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt, np.float64)
    pred = np.asarray(pred, np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"pred: shape {pred.shape} does not match gt shape {gt.shape}")
    if gt.ndim < 2:
        raise ValueError(f"gt: expected an image or volume, got shape {gt.shape}")
    return gt, pred


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mean squared error ``||gt - pred||^2 / ||gt||^2``."""
    gt, pred = _pair(gt, pred)
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def psnr(gt: np.ndarray, pred: np.ndarray, data_range: float | None = None) -> float:
    """PSNR in dB over the whole array, ``data_range = gt.max()`` unless given."""
    gt, pred = _pair(gt, pred)
    data_range = float(gt.max()) if data_range is None else float(data_range)
    return float(peak_signal_noise_ratio(gt, pred, data_range=data_range))


def psnr_affine(gt: np.ndarray, pred: np.ndarray, data_range: float | None = None) -> float:
    """PSNR after the least-squares affine intensity fit ``a * pred + b`` to ``gt``: what
    deconvolution benchmarks report when the intensity scale of an output is arbitrary."""
    _pair(gt, pred)  # the shapes checked
    return psnr(gt, affine_match(pred, gt), data_range)


def ssim(gt: np.ndarray, pred: np.ndarray, data_range: float | None = None) -> float:
    """Mean SSIM over 2-D slices (first axis of a volume), volume max as data range.

    Args:
        gt: ``(H, W)`` image or ``(S, H, W)`` volume of slices.
        pred: same shape.
        data_range: defaults to ``gt.max()``.
    """
    gt, pred = _pair(gt, pred)
    data_range = float(gt.max()) if data_range is None else float(data_range)
    if gt.ndim == 2:
        return float(structural_similarity(gt, pred, data_range=data_range))
    flat_gt = gt.reshape((-1,) + gt.shape[-2:])
    flat_pred = pred.reshape((-1,) + gt.shape[-2:])
    values = [
        structural_similarity(g, p, data_range=data_range) for g, p in zip(flat_gt, flat_pred)
    ]
    return float(np.mean(values))


def psnr_tf(gt: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
    """PSNR per batch element of ``(B, H, W[, C])`` tensors with ``data_range = max(gt)``."""
    gt = tf.cast(gt, tf.float32)
    pred = tf.cast(pred, tf.float32)
    axes = list(range(1, gt.shape.rank))
    mse = tf.reduce_mean(tf.square(gt - pred), axis=axes)
    peak = tf.reduce_max(gt, axis=axes)
    return 10.0 * tf.math.log(peak**2 / (mse + 1e-12)) / tf.math.log(10.0)


def ssim_tf(gt: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
    """SSIM per batch element of ``(B, H, W)`` tensors, ``max_val = max(gt)`` per element."""
    gt = tf.cast(gt, tf.float32)[..., None]
    pred = tf.cast(pred, tf.float32)[..., None]
    peak = tf.reduce_max(gt, axis=[1, 2, 3], keepdims=True)
    return tf.image.ssim(gt / peak, pred / peak, max_val=1.0, filter_size=7)
