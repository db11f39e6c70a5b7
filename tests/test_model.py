import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.distributed import global_mean
from tf_otcycle.layers import FFTMask, PSFConv3D
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.models import build_multiscale_patchgan, build_patchgan, build_unet
from tf_otcycle.physics import random_mask
from tf_otcycle.training import adam


def _mri_model(n_critic=2, lr=1e-3):
    g = build_unet(2, 2, depth=2, base_filters=4, residual=True)
    c = build_patchgan(2, 2, base_filters=4, n_layers=2)
    model = OTCycleGAN(g, FFTMask(), c, n_critic=n_critic, seed=0)
    model.compile(adam(lr), adam(lr))
    return model


def _mri_data(n=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    x = np.stack([np.sin(2 * np.pi * (k + 1) * xx) * np.cos(2 * np.pi * yy) for k in range(n)])
    x = np.stack([x, 0.3 * x], -1).astype(np.float32)
    masks = np.stack([random_mask(size, 4, 0.08, seed=i) for i in range(n)])
    op = FFTMask()
    y_masks = np.stack([random_mask(size, 4, 0.08, seed=100 + i) for i in range(n)])
    y = op(x[::-1], y_masks).numpy()  # measurements of other images, each under its own mask
    return {"x": x, "x_mask": masks, "y": y + 0.01 * rng.standard_normal(y.shape).astype(np.float32), "y_mask": y_masks}


@pytest.mark.slow
def test_train_step_counts_and_cycle_loss_decreases():
    model = _mri_model(n_critic=3)
    data = _mri_data()
    ds = tf.data.Dataset.from_tensor_slices(data).repeat().batch(2)
    def cycle(logs):
        return logs["cycle_x"] + logs["cycle_y"]

    before = cycle(model.evaluate(ds, steps=2, return_dict=True, verbose=0))
    hist = model.fit(ds, epochs=3, steps_per_epoch=10, verbose=0)
    after = cycle(model.evaluate(ds, steps=2, return_dict=True, verbose=0))
    assert int(model.g_optimizer.iterations) == 30
    assert int(model.d_optimizer.iterations) == 3 * 30
    assert after < before
    for values in hist.history.values():
        assert np.all(np.isfinite(values))


def test_fixed_forward_op_is_not_trained():
    model = _mri_model()
    assert model.generator_variables == model.generator.trainable_variables


def _microscopy_model(n_critic, *optimizers):
    """Tiny 3-D OT-cycleGAN with a learned 4^3 PSF (random start), compiled with ``optimizers``."""
    g = build_unet(3, 1, depth=1, base_filters=2, activation="relu", output_activation="sigmoid")
    psf = PSFConv3D(4)
    cx = build_multiscale_patchgan(3, 1, base_filters=2, n_layers=1, seed=0)
    cy = build_multiscale_patchgan(3, 1, base_filters=2, n_layers=1, seed=1)
    model = OTCycleGAN(g, psf, cx, cy, n_critic=n_critic, seed=0)
    model.compile(*optimizers)
    psf.set_psf(np.random.default_rng(0).random((4, 4, 4)))
    return model


def _volumes():
    rng = np.random.default_rng(0)
    data = {"x": rng.random((2, 8, 8, 8, 1)).astype(np.float32), "y": rng.random((2, 8, 8, 8, 1)).astype(np.float32)}
    return tf.data.Dataset.from_tensor_slices(data).batch(1)


@pytest.mark.slow
def test_trainable_psf_is_updated_with_generator_and_stays_valid():
    model = _microscopy_model(2, adam(1e-2), adam(1e-3))
    psf = model.forward_op
    before = psf.psf.copy()
    hist = model.fit(_volumes(), epochs=2, verbose=0)
    assert all(np.isfinite(v).all() for v in hist.history.values())
    assert psf.kernel.numpy().min() >= 0
    np.testing.assert_allclose(psf.psf.sum(), 1.0, rtol=1e-5)
    assert not np.allclose(psf.psf, before)


@pytest.mark.slow
def test_separate_optimizer_for_the_learned_psf():
    model = _microscopy_model(1, adam(1e-3), adam(1e-3), adam(1e-2))
    g, psf = model.generator, model.forward_op
    before, g_before = psf.psf.copy(), [w.copy() for w in g.get_weights()]
    model.fit(_volumes(), epochs=1, verbose=0)
    assert int(model.h_optimizer.iterations) == int(model.g_optimizer.iterations) == 2
    assert not np.allclose(psf.psf, before)
    assert any(not np.allclose(a, b) for a, b in zip(g.get_weights(), g_before))
    # Adam keeps two slots per variable: G's optimizer holds G's variables only, H's holds H's.
    n_g, n_h = len(g.trainable_variables), len(psf.trainable_variables)
    assert len(model.g_optimizer.variables) - len(model.h_optimizer.variables) == 2 * (n_g - n_h)


@pytest.mark.parametrize("kwargs,match",
                         [(dict(rho=-1), "rho"), (dict(n_critic=0), "n_critic"), (dict(gp_weight=-1), "gp_weight"),
                                          (dict(noise_gain=-0.1), "noise_gain")])
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OTCycleGAN(build_unet(depth=1, base_filters=2), FFTMask(), build_patchgan(base_filters=2, n_layers=1), **kwargs)


def test_bad_batch():
    model = _mri_model()
    with pytest.raises(ValueError, match="'x'"):
        model.train_step({"y": tf.zeros((1, 16, 16, 2))})


@pytest.mark.slow
def test_fit_under_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _mri_model(n_critic=2)
    ds = tf.data.Dataset.from_tensor_slices(_mri_data()).repeat().batch(2)
    model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)
    assert int(model.d_optimizer.iterations.numpy()) == 4
    assert isinstance(model.g_optimizer, keras.optimizers.Adam)


def test_saved_and_loaded_with_its_networks_and_settings(tmp_path):
    # OTCycleGAN is registered serialisable: a .keras file rebuilds it (networks, weights, settings).
    g = build_unet(2, 2, depth=1, base_filters=2, name="generator")
    c = build_patchgan(2, 2, base_filters=2, n_layers=1, name="critic_x")
    model = OTCycleGAN(g, FFTMask(name="forward_op"), c, rho=0.3, sigma=0.6, n_critic=2, gp_weight=4.0,
                       gan_weight=0.5, gan_warmup_steps=7, cycle_warmup_steps=9, noise_gain=0.02, noise_floor=1e-4,
                       cycle_gradients="split")
    model.compile(adam(1e-4), adam(1e-4))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert isinstance(loaded, OTCycleGAN)
    for name in ("rho", "sigma", "n_critic", "gp_weight", "gan_weight", "gan_warmup_steps", "cycle_warmup_steps",
                 "noise_gain", "noise_floor", "cycle_gradients"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert loaded.critic_y is None and isinstance(loaded.forward_op, FFTMask)
    y = np.random.default_rng(0).random((1, 16, 16, 2)).astype(np.float32)
    np.testing.assert_allclose(loaded.generator(y).numpy(), model.generator(y).numpy(), atol=1e-6)


class _RecomputingOTCycleGAN(OTCycleGAN):
    """The step written plainly: critics on G(y) and Hx computed outside any tape, then the
    generator loss with G(y) and Hx computed again (the reference for the shared fakes)."""

    def train_step(self, data):
        real_x, real_y, x_params, y_params = self.unpack(data)
        fake_x, fake_y = self.fakes(real_x, real_y, x_params)
        self.critic_updates(real_x, fake_x, real_y, fake_y)
        with tf.GradientTape(persistent=True) as tape:
            g_loss, _ = self.generator_losses(real_x, real_y, x_params, y_params)
            g_total = global_mean(g_loss)
        if self.h_optimizer is None:
            grads = tape.gradient(g_total, self.generator_variables)
            self.g_optimizer.apply_gradients(zip(grads, self.generator_variables))
        else:
            for opt, variables in ((self.g_optimizer, self.generator.trainable_variables),
                                   (self.h_optimizer, self.forward_op.trainable_variables)):
                opt.apply_gradients(zip(tape.gradient(g_total, variables), variables))
        return {}


def _twin_models(build, seed=0):
    """The same tiny model twice (same initial weights): ours and the plain reference."""
    models = []
    for cls in (OTCycleGAN, _RecomputingOTCycleGAN):
        keras.utils.set_random_seed(seed)
        model = build()
        models.append(cls.from_config(model.get_config()))
        models[-1].set_weights(model.get_weights())
    return models


@pytest.mark.slow
@pytest.mark.parametrize("application", ["mri", "microscopy"])
def test_shared_fakes_step_equals_the_plain_step(application):
    """G(y) and Hx computed once per step (train_step) give the same updates as recomputing
    them after the critic updates: weights equal to float32 rounding after three steps."""
    if application == "mri":
        data = {k: v[:2] for k, v in _mri_data(n=2).items()}
        optimizers = lambda: (adam(1e-3), adam(1e-3))  # noqa: E731
        build = lambda: _mri_model(n_critic=2)  # noqa: E731
    else:
        data = {k: v[:1] for k, v in next(iter(_volumes().batch(1))).items()}
        data = {k: v[0] for k, v in data.items()}
        optimizers = lambda: (adam(1e-3), adam(1e-3), adam(1e-2))  # noqa: E731
        build = lambda: _microscopy_model(2, *optimizers())  # noqa: E731
    ours, plain = _twin_models(build)
    initial = ours.generator.get_weights()
    for model in (ours, plain):
        model.compile(*optimizers())
        model.seed_generator = keras.random.SeedGenerator(0)
        step = tf.function(model.train_step)
        for _ in range(3):
            step(data)
    for a, b in zip(ours.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert not np.allclose(ours.generator.get_weights()[0], initial[0])  # the steps did train


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_measurement_noise_is_drawn_on_hx_only():
    """``fakes``: G(y) untouched, Hx + n with Var(n) = a Hx + b; no noise without the settings."""
    model = _microscopy_model(1, adam(1e-3), adam(1e-3))
    x = tf.constant(np.full((2, 8, 8, 8, 1), 0.5, np.float32))
    y = tf.constant(np.random.default_rng(1).random((2, 8, 8, 8, 1)).astype(np.float32))
    clean_gy, clean_hx = model.fakes(x, y)
    noisy = OTCycleGAN.from_config(dict(model.get_config(), noise_gain=0.05, noise_floor=0.01))
    noisy.set_weights(model.get_weights())
    gy, hx = noisy.fakes(x, y)
    np.testing.assert_allclose(gy.numpy(), clean_gy.numpy(), atol=1e-6)
    residual = (hx - clean_hx).numpy()
    expected = 0.05 * np.clip(clean_hx.numpy(), 0, None) + 0.01
    assert np.mean(residual**2 / expected) == pytest.approx(1.0, abs=0.15)
    np.testing.assert_array_equal(model.fakes(x, y)[1].numpy(), clean_hx.numpy())
