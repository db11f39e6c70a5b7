"""Exact values of the OT-cycleGAN objective for tiny deterministic networks.

G(v) = 2 v (a 1x1 convolution), H = FFTMask, φ(v) = mean over pixels of (v_re - v_im)
(a linear critic): every term has a closed form, computed here with NumPy, so a sign,
weight or scale error in ``generator_losses`` or ``critic_losses`` fails.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.layers import FFTMask
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.training import adam

H, W = 8, 8
N = H * W * 2


def _conv1x1(kernel: np.ndarray, name: str) -> keras.Model:
    inputs = keras.Input((None, None, 2))
    layer = keras.layers.Conv2D(kernel.shape[-1], 1, use_bias=False, name=f"{name}_conv")
    outputs = layer(inputs)
    layer.set_weights([kernel.reshape(1, 1, 2, -1).astype(np.float32)])
    return keras.Model(inputs, outputs, name=name)


def _model(rho=0.5, sigma=0.5, gp_weight=10.0, gan_weight=1.0, gan_warmup_steps=0):
    generator = _conv1x1(2.0 * np.eye(2), "g")
    critic = _conv1x1(np.array([[1.0], [-1.0]]), "phi")
    model = OTCycleGAN(generator, FFTMask(), critic, rho=rho, sigma=sigma, gp_weight=gp_weight,
                       gan_weight=gan_weight, gan_warmup_steps=gan_warmup_steps, seed=0)
    model.compile(adam(1e-3), adam(1e-3))
    return model


def _np_h(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """NumPy H: centred orthonormal FFT, mask the columns, inverse. v: (B, H, W, 2)."""
    c = v[..., 0] + 1j * v[..., 1]
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(c, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    c = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k * mask[:, None, :], axes=(-2, -1)), norm="ortho"),
                        axes=(-2, -1))
    return np.stack([c.real, c.imag], -1)


def _phi(v: np.ndarray) -> np.ndarray:
    return (v[..., 0] - v[..., 1]).mean(axis=(1, 2))


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, H, W, 2)).astype(np.float32)
    y = rng.standard_normal((2, H, W, 2)).astype(np.float32)
    x_mask = (rng.random((2, W)) < 0.5).astype(np.float32)
    y_mask = (rng.random((2, W)) < 0.5).astype(np.float32)
    return x, y, x_mask, y_mask


@pytest.mark.parametrize("rho,sigma,gan_weight", [(0.5, 0.5, 1.0), (0.3, 0.8, 2.5), (1.0, 0.0, 0.0)])
def test_generator_losses_exact(batch, rho, sigma, gan_weight):
    x, y, x_mask, y_mask = batch
    model = _model(rho=rho, sigma=sigma, gan_weight=gan_weight)
    loss, parts = model.generator_losses(x, y, x_mask, y_mask)
    cycle_x = rho * np.abs(x - 2 * _np_h(x, x_mask)).mean(axis=(1, 2, 3))
    cycle_y = sigma * np.abs(y - _np_h(2 * y, y_mask)).mean(axis=(1, 2, 3))
    adversarial = -(1 - sigma) * _phi(2 * y) / np.sqrt(N)
    np.testing.assert_allclose(parts["cycle_x"], cycle_x, rtol=1e-5)
    np.testing.assert_allclose(parts["cycle_y"], cycle_y, rtol=1e-5)
    np.testing.assert_allclose(parts["adversarial"], adversarial, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss, cycle_x + cycle_y + gan_weight * adversarial, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("gp_weight", [0.0, 10.0])
def test_critic_losses_exact(batch, gp_weight):
    x, y, _, _ = batch
    model = _model(gp_weight=gp_weight)
    fake_x = 2 * y
    loss, gap, gp = model.critic_losses(x, fake_x, y, None)
    # The linear critic's gradient is (1, -1) / (H W) at every pixel: ||grad||_2 = sqrt(2 / (H W)).
    expected_gp = (np.sqrt(2.0 / (H * W)) - 1.0) ** 2
    expected_gap = _phi(x) - _phi(fake_x)
    np.testing.assert_allclose(gap, expected_gap, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gp, [expected_gp] * 2, rtol=1e-4)
    np.testing.assert_allclose(loss, -expected_gap / np.sqrt(N) + gp_weight * expected_gp, rtol=1e-4, atol=1e-6)


def test_gan_weight_ramps_over_warmup():
    model = _model(gan_weight=2.0, gan_warmup_steps=10)
    assert float(model.current_gan_weight()) == 0.0
    model.g_optimizer.iterations.assign(5)
    assert float(model.current_gan_weight()) == pytest.approx(1.0)
    model.g_optimizer.iterations.assign(40)
    assert float(model.current_gan_weight()) == pytest.approx(2.0)


def test_train_step_moves_the_generator_along_the_exact_gradient(batch):
    """One G step with plain SGD equals ``w - lr * d(mean loss)/dw`` computed by tape."""
    x, y, x_mask, y_mask = batch
    model = _model()
    model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.0))
    w0 = model.generator.get_weights()[0].copy()
    with tf.GradientTape() as tape:
        loss, _ = model.generator_losses(x, y, x_mask, y_mask)
        total = tf.reduce_mean(loss)
    (grad,) = tape.gradient(total, model.generator.trainable_variables)
    model.train_step({"x": x, "y": y, "x_mask": x_mask, "y_mask": y_mask})
    np.testing.assert_allclose(model.generator.get_weights()[0], w0 - 0.1 * grad.numpy(), rtol=1e-5, atol=1e-6)


def test_sigma_ramps_over_cycle_warmup(batch):
    x, y, x_mask, y_mask = batch
    model = _model(sigma=0.5)
    model.cycle_warmup_steps = 4
    _, parts = model.generator_losses(x, y, x_mask, y_mask)
    np.testing.assert_allclose(parts["cycle_y"], 0.0)
    model.g_optimizer.iterations.assign(2)
    assert float(model.current_sigma()) == pytest.approx(0.25)
    model.g_optimizer.iterations.assign(9)
    assert float(model.current_sigma()) == pytest.approx(0.5)


def _deep_f_model(cycle_gradients: str, rho: float, sigma: float) -> OTCycleGAN:
    """G(v) = 2 v and a trainable F(v) = 0.4 v (1x1 convolutions), no critic term."""
    generator, forward_op = _conv1x1(2.0 * np.eye(2), "g"), _conv1x1(0.4 * np.eye(2), "f")
    critic = _conv1x1(np.array([[1.0], [-1.0]]), "phi")
    model = OTCycleGAN(generator, forward_op, critic, rho=rho, sigma=sigma, gan_weight=0.0,
                       cycle_gradients=cycle_gradients, seed=0)
    model.compile(adam(1e-3), adam(1e-3))
    return model


@pytest.mark.parametrize("rho,sigma", [(1.0, 0.0), (0.0, 1.0)])
def test_split_cycle_gradients_train_each_map_on_its_own_cycle(batch, rho, sigma):
    """``split``: the image cycle |x - G(Hx)| moves G only, the measurement cycle
    |y - H G(y)| moves H only; the loss values are those of ``joint`` (the paper's)."""
    x, y, _, _ = batch
    grads, losses = {}, {}
    for mode in ("joint", "split"):
        model = _deep_f_model(mode, rho, sigma)
        weights = [model.generator.trainable_variables[0], model.forward_op.trainable_variables[0]]
        with tf.GradientTape() as tape:
            loss, _ = model.generator_losses(x, y)
            total = tf.reduce_mean(loss)
        grads[mode] = [np.zeros(w.shape) if d is None else d.numpy()
                       for d, w in zip(tape.gradient(total, weights), weights)]
        losses[mode] = loss.numpy()
    np.testing.assert_allclose(losses["split"], losses["joint"], rtol=1e-6)
    assert min(np.abs(g).max() for g in grads["joint"]) > 1e-3  # the paper's: both maps learn from each cycle
    trained, frozen = (0, 1) if rho else (1, 0)  # image cycle: G; measurement cycle: H
    np.testing.assert_allclose(grads["split"][trained], grads["joint"][trained], rtol=1e-6)
    np.testing.assert_array_equal(grads["split"][frozen], 0.0)


def test_cycle_gradients_is_checked_and_saved():
    with pytest.raises(ValueError, match="cycle_gradients"):
        _deep_f_model("both", 0.5, 0.5)
    assert _deep_f_model("split", 0.5, 0.5).get_config()["cycle_gradients"] == "split"
