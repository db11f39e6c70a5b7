import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle import metrics
from tf_otcycle.classical import pls_tv, pls_tv_objective, richardson_lucy
from tf_otcycle.data import microscopy_sim, tiff
from tf_otcycle.data.fastmri import undersample
from tf_otcycle.physics import born_wolf_psf, random_mask


def _phantom(n=32):
    x = np.zeros((2, n, n), np.complex64)
    x[:, 8:24, 10:20] = 1.0
    x[1, 4:12, 4:12] = 0.5j
    return x


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_pls_tv_objective_decreases_monotonically_and_improves_the_input():
    x = _phantom()
    mask = random_mask(32, 4, 0.08, seed=0)
    y = undersample(tf.constant(x), mask)
    rec, history = pls_tv(y, mask, lam=0.02, iterations=60)
    assert history.shape == (61, 2)
    assert np.all(np.diff(history, axis=0) <= 1e-6 * np.abs(history[:-1]))
    assert np.all(history[-1] < history[0])
    err_in = np.linalg.norm(np.abs(y.numpy()) - np.abs(x))
    err_out = np.linalg.norm(np.abs(rec.numpy()) - np.abs(x))
    assert err_out < err_in
    np.testing.assert_allclose(pls_tv_objective(rec, y, mask, 0.02, 0.05).numpy(), history[-1], rtol=1e-5)


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_pls_tv_returns_a_fully_sampled_noiseless_input():
    x = _phantom()
    ones = np.ones(32, np.float32)
    rec, _ = pls_tv(tf.constant(x), ones, lam=0.0, iterations=10)
    np.testing.assert_allclose(rec.numpy(), x, atol=1e-5)
    rec, _ = pls_tv(tf.constant(x), np.stack([ones, ones]), lam=1e-4, iterations=30)
    np.testing.assert_allclose(rec.numpy(), x, atol=1e-2)


def test_richardson_lucy_with_the_true_psf_improves_psnr():
    sim = microscopy_sim.simulate((16, 48, 48), seed=2, psf_shape=(16, 16, 16))
    gt = tiff.normalize(sim["gt"])
    blurred = tiff.normalize(sim["blurred"])
    psf = born_wolf_psf((16, 16, 16), (0.2, 0.1, 0.1), 0.5)
    out = tiff.normalize(richardson_lucy(blurred, psf, iterations=15))
    assert metrics.psnr(gt, out, 1.0) > metrics.psnr(gt, blurred, 1.0) + 1.0


def test_richardson_lucy_with_an_even_psf_does_not_shift():
    from tf_otcycle.physics import gaussian_psf

    psf = gaussian_psf((8, 8, 8), (1.5, 1.0, 1.0))
    x = np.zeros((16, 20, 20), np.float32)
    x[8, 9, 11] = 1.0
    out = richardson_lucy(microscopy_sim.blur(x, psf) + 1e-6, psf, iterations=50)
    assert np.unravel_index(np.argmax(out), out.shape) == (8, 9, 11)


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_tv_solve_deblurs_with_any_linear_operator():
    from tf_otcycle.classical import operator_norm_squared, tv_solve
    from tf_otcycle.physics import gaussian_psf
    from tf_otcycle.physics.operators import Convolution, undersampling

    x = np.zeros((1, 32, 32, 1), np.float32)
    x[0, 8:24, 10:20] = 1.0
    x[0, 4:10, 22:28] = 0.5
    psf = gaussian_psf((9, 9, 1), (2.0, 2.0, 1.0))
    blur = Convolution(psf[..., 0] / psf.sum())
    b = blur(tf.constant(x)) + 0.01 * tf.random.stateless_normal(x.shape, seed=[1, 2])
    rec, history = tv_solve(blur, b, b, lam=0.01, iterations=80, eps=0.01)
    assert np.all(np.diff(history, axis=0) <= 1e-6 * np.abs(history[:-1]))
    assert metrics.psnr(x, rec.numpy(), 1.0) > metrics.psnr(x, b.numpy(), 1.0) + 1.0
    assert abs(operator_norm_squared(undersampling(), tf.zeros((2, 8, 8, 2)), {"mask": tf.ones((2, 8))}) - 1) < 1e-3
    assert operator_norm_squared(blur, tf.zeros((1, 32, 32, 1))) <= 1.0 + 1e-4  # a unit-sum PSF does not amplify


@pytest.mark.parametrize("shape,kernel", [((12, 16, 14), (5, 4, 3)), ((24, 20), (7, 6))])
def test_richardson_lucy_equals_scikit_image(shape, kernel):
    """The compiled TensorFlow loop is scikit-image's algorithm (clip=False) to float32 rounding,
    for odd and even PSFs, 2-D and 3-D, one image or a batch."""
    from skimage.restoration import richardson_lucy as skimage_rl

    from tf_otcycle.physics.psf import odd_centred

    rng = np.random.default_rng(0)
    psf = rng.random(kernel) + 0.1
    images = rng.random((2, *shape)) + 0.05
    expected = [skimage_rl(im, odd_centred(psf) / psf.sum(), num_iter=10, clip=False) for im in images]
    np.testing.assert_allclose(richardson_lucy(images[0], psf, 10), expected[0], rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(richardson_lucy(images, psf, 10), np.stack(expected), rtol=2e-3, atol=1e-4)
    with pytest.raises(ValueError, match="spatial axes"):
        richardson_lucy(images[0, 0], psf, 10) if len(shape) == 3 else richardson_lucy(images[None, None], psf, 10)


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_compiled_mfista_equals_the_python_loop():
    """tv_solve's compiled loop gives the iterates of the same MFISTA written as a plain loop."""
    from tf_otcycle.classical import _div, _grad, _tv_magnitude, tv_objective, tv_solve
    from tf_otcycle.physics.operators import undersampling

    rng = np.random.default_rng(1)
    b = tf.constant(rng.standard_normal((2, 16, 16, 2)).astype(np.float32))
    params = {"mask": tf.constant((rng.random((2, 16)) < 0.4).astype(np.float32))}
    op, lam, eps, step = undersampling(), 0.05, 0.05, 1.0 / (1.0 + 8 * 0.05 / 0.05)
    x = z = b
    t, obj = 1.0, tv_objective(op, b, b, params, lam, eps)
    for _ in range(15):
        mag = _tv_magnitude(z, eps)
        dy, dx = _grad(z)
        u = z - step * (op.adjoint(op.forward(z, params) - b, params) - lam * _div(dy / mag, dx / mag))
        obj_u = tv_objective(op, u, b, params, lam, eps)
        x_new = tf.where(tf.reshape(obj_u <= obj, [-1, 1, 1, 1]), u, x)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = x_new + (t / t_new) * (u - x_new) + ((t - 1) / t_new) * (x_new - x)
        x, t, obj = x_new, t_new, tf.minimum(obj, obj_u)
    out, history = tv_solve(op, b, b, params, lam, 15, eps, lipschitz=1.0)
    np.testing.assert_allclose(out, x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(history[-1], obj, rtol=1e-5)


def test_tv_curvature_is_minus_the_gradient_of_smoothed_tv():
    from tf_otcycle.classical import tv_curvature

    x = tf.constant(np.random.default_rng(0).random((1, 5, 6, 7, 1)), tf.float32)
    eps = 0.1
    with tf.GradientTape() as tape:
        tape.watch(x)
        grads = []
        for axis in (1, 2, 3):
            n = x.shape[axis]
            d = tf.gather(x, tf.range(1, n), axis=axis) - tf.gather(x, tf.range(0, n - 1), axis=axis)
            pad = [[0, 0]] * 5
            pad[axis] = [0, 1]
            grads.append(tf.pad(d, pad))
        tv = tf.reduce_sum(tf.sqrt(tf.add_n([g**2 for g in grads]) + eps**2))
    np.testing.assert_allclose(tv_curvature(x, eps).numpy(), -tape.gradient(tv, x).numpy(), atol=1e-5)


def test_richardson_lucy_tv_smooths_noise_and_zero_weight_is_plain_rl():
    sim = microscopy_sim.simulate((16, 48, 48), seed=2, psf_shape=(16, 16, 16), gain=20.0)
    blurred = tiff.normalize(sim["blurred"])
    psf = born_wolf_psf((16, 16, 16), (0.2, 0.1, 0.1), 0.5)
    plain = richardson_lucy(blurred, psf, iterations=30)
    np.testing.assert_array_equal(richardson_lucy(blurred, psf, iterations=30, tv_weight=0.0), plain)
    smooth = richardson_lucy(blurred, psf, iterations=30, tv_weight=0.01)

    def tv(v):
        return sum(np.abs(np.diff(v, axis=a)).sum() for a in range(3))

    assert tv(smooth) < 0.9 * tv(plain)
    assert np.all(np.isfinite(smooth)) and smooth.min() >= 0
