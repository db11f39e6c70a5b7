"""The OT-cycleGAN must leave the identity: a short fit on a toy MRI problem improves PSNR."""

import numpy as np
import tensorflow as tf

from tf_otcycle import metrics
from tf_otcycle.data.fastmri import normalize_pair
from tf_otcycle.data.synthetic import KneePhantom
from tf_otcycle.layers import FFTMask
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.models import build_patchgan, build_unet
from tf_otcycle.physics import complex_to_channels, random_mask
from tf_otcycle.physics.fft import channels_to_complex
from tf_otcycle.training import adam

SIZE = 32
ACCELERATION = 2


def _domain(subjects, seed):
    """Normalised images x, zero-filled y and masks of 4 slices per subject."""
    xs, ys, masks = [], [], []
    for i, s in enumerate(subjects):
        phantom = KneePhantom(SIZE, seed=s)
        for j, t in enumerate(np.linspace(0.2, 0.8, 4)):
            mask = random_mask(SIZE, ACCELERATION, 0.125, seed=seed + 10 * i + j)
            x, y, _ = normalize_pair(tf.constant(phantom.slice(t)), mask)
            xs.append(complex_to_channels(x).numpy())
            ys.append(complex_to_channels(y).numpy())
            masks.append(mask)
    return np.stack(xs), np.stack(ys), np.stack(masks).astype(np.float32)


def _psnr(x, out):
    gt, rec = np.abs(channels_to_complex(x).numpy()), np.abs(channels_to_complex(out).numpy())
    return metrics.psnr(gt, rec)


def test_short_fit_leaves_the_identity_and_improves_psnr():
    x, _, x_mask = _domain(range(0, 8), seed=0)
    _, y, y_mask = _domain(range(8, 16), seed=1000)
    test_x, test_y, _ = _domain(range(16, 19), seed=2000)
    model = OTCycleGAN(build_unet(2, 2, depth=2, base_filters=8, residual=True), FFTMask(),
                       build_patchgan(2, 2, base_filters=8, n_layers=2), n_critic=5, gan_weight=1.0,
                       gan_warmup_steps=100, cycle_warmup_steps=100, seed=0)
    model.compile(adam(1e-3), adam(1e-3))
    data = {"x": x, "x_mask": x_mask, "y": y, "y_mask": y_mask}
    ds = tf.data.Dataset.from_tensor_slices(data).shuffle(64, seed=0).repeat().batch(2)
    model.fit(ds, epochs=1, steps_per_epoch=400, verbose=0)
    out = model.generator(test_y, training=False).numpy()
    change = np.mean(np.abs(out - test_y)) / np.mean(np.abs(test_y))
    assert change > 0.02, f"G stayed at the identity (relative change {change:.2e})"
    assert _psnr(test_x, out) > _psnr(test_x, test_y) + 0.5
