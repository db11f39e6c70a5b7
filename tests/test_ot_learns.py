"""The OT-cycleGAN must leave the identity: a short fit on a toy MRI problem improves PSNR.

Toy: sparse images (a few Gaussian spots, as in compressed sensing) under x4 random
Cartesian undersampling; clean images and measurements are drawn independently (unpaired).
"""

import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle import metrics
from tf_otcycle.layers import FFTMask
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.models import build_patchgan, build_unet
from tf_otcycle.physics import random_mask
from tf_otcycle.physics.fft import channels_to_complex
from tf_otcycle.training import adam

SIZE = 32

pytestmark = pytest.mark.slow  # a training run


def _domain(n: int, seed: int):
    """n normalised images x ``(n, S, S, 2)``, their zero-filled measurements y and masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    images = np.zeros((n, SIZE, SIZE), np.float32)
    for i in range(n):
        for _ in range(6):
            cy, cx = rng.uniform(4, SIZE - 4, 2)
            images[i] += rng.uniform(0.5, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
    x = np.stack([images, np.zeros_like(images)], -1)
    masks = np.stack([random_mask(SIZE, 4, 0.08, seed=seed + i) for i in range(n)]).astype(np.float32)
    y = FFTMask()(x, masks).numpy()
    scale = y.std(axis=(1, 2, 3), keepdims=True)
    return x / scale, y / scale, masks


def _psnr(x, out):
    gt, rec = np.abs(channels_to_complex(x).numpy()), np.abs(channels_to_complex(out).numpy())
    return metrics.psnr(gt, rec)


def test_short_fit_leaves_the_identity_and_improves_psnr():
    x, _, x_mask = _domain(64, seed=0)
    _, y, y_mask = _domain(64, seed=1000)  # other images: unpaired
    test_x, test_y, _ = _domain(16, seed=2000)
    model = OTCycleGAN(build_unet(2, 2, depth=2, base_filters=8, residual=True), FFTMask(),
                       build_patchgan(2, 2, base_filters=8, n_layers=2), gan_weight=1.0,
                       gan_warmup_steps=100, cycle_warmup_steps=100, seed=0)
    model.compile(adam(1e-3), adam(1e-3))
    ds = tf.data.Dataset.from_tensor_slices({"x": x, "x_params": {"mask": x_mask}, "y": y,
                                             "y_params": {"mask": y_mask}})
    model.fit(ds.shuffle(64, seed=0).repeat().batch(4), epochs=1, steps_per_epoch=300, verbose=0)
    out = model.generator(test_y, training=False).numpy()
    change = np.mean(np.abs(out - test_y)) / np.mean(np.abs(test_y))
    assert change > 0.05, f"G stayed at the identity (relative change {change:.2e})"
    assert _psnr(test_x, out) > _psnr(test_x, test_y) + 1.0
