import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import structural_similarity

from tf_otcycle.metrics import nmse, psnr, psnr_tf, ssim, ssim_tf


def test_metrics_follow_fastmri_conventions():
    rng = np.random.default_rng(0)
    gt = rng.random((3, 32, 32))
    pred = gt + 0.05 * rng.standard_normal(gt.shape)
    mse = np.mean((gt - pred) ** 2)
    assert psnr(gt, pred) == pytest.approx(10 * np.log10(gt.max() ** 2 / mse))
    assert nmse(gt, pred) == pytest.approx(np.sum((gt - pred) ** 2) / np.sum(gt**2))
    ref = np.mean([structural_similarity(g, p, data_range=gt.max()) for g, p in zip(gt, pred)])
    assert ssim(gt, pred) == pytest.approx(ref)
    assert ssim(gt, gt) == pytest.approx(1.0)


def test_tf_metrics_agree_with_numpy():
    rng = np.random.default_rng(1)
    gt = rng.random((2, 32, 32)).astype(np.float32)
    pred = (gt + 0.05 * rng.standard_normal(gt.shape)).astype(np.float32)
    got = psnr_tf(gt, pred).numpy()
    for b in range(2):
        assert got[b] == pytest.approx(psnr(gt[b], pred[b]), abs=1e-3)
    s = ssim_tf(tf.constant(gt), tf.constant(pred)).numpy()
    assert s.shape == (2,) and np.all((s > 0.3) & (s < 1))


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_psnr_affine_forgives_an_intensity_offset_and_scale_only():
    from tf_otcycle import metrics

    rng = np.random.default_rng(0)
    gt = rng.random((8, 16, 16)).astype(np.float32)
    assert metrics.psnr_affine(gt, 3 * gt + 1) > 100
    noisy = gt + 0.05 * rng.standard_normal(gt.shape).astype(np.float32)
    assert metrics.psnr_affine(gt, 2 * noisy - 0.5) == pytest.approx(metrics.psnr_affine(gt, noisy), abs=1e-4)
    assert metrics.psnr_affine(gt, noisy) == pytest.approx(metrics.psnr(gt, noisy), abs=0.2)
    assert metrics.psnr_affine(gt, noisy) >= metrics.psnr(gt, noisy)
