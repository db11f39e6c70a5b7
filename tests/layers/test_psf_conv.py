import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.layers import PSFConv3D
from tf_otcycle.physics import born_wolf_psf


def _pair(kernel_size, psf):
    fft, direct = PSFConv3D(kernel_size, "fft"), PSFConv3D(kernel_size, "direct")
    fft.set_psf(psf)
    direct.set_psf(psf)
    return fft, direct


@pytest.mark.parametrize("kernel_size,shape", [((5, 4, 6), (2, 11, 12, 13, 1)), ((8, 8, 8), (1, 16, 16, 16, 2))])
def test_fft_equals_direct_outputs_and_gradients(kernel_size, shape):
    rng = np.random.default_rng(0)
    psf = rng.random(kernel_size).astype(np.float32)
    fft, direct = _pair(kernel_size, psf)
    x = tf.constant(rng.random(shape).astype(np.float32))
    cot = tf.constant(rng.standard_normal(shape).astype(np.float32))
    results = []
    for layer in (fft, direct):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * cot)
        results.append((y, tape.gradient(loss, x), tape.gradient(loss, layer.kernel)))
    for a, b in zip(*results):
        a, b = a.numpy(), b.numpy()
        assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-4


def test_kernel_stays_non_negative_after_optimizer_step():
    layer = PSFConv3D(4)
    layer.set_psf(np.random.default_rng(1).random((4, 4, 4)) * 1e-3)
    x = tf.random.uniform((1, 8, 8, 8, 1))
    target = tf.random.uniform((1, 8, 8, 8, 1))
    opt = keras.optimizers.Adam(1.0)
    opt.build(layer.trainable_variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(layer(x) - target))
        opt.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables), layer.trainable_variables))

    for _ in range(3):
        step()
    k = layer.kernel.numpy()
    assert k.min() >= 0 and np.count_nonzero(k) > 0
    np.testing.assert_allclose(layer.psf.sum(), 1.0, rtol=1e-5)


def test_keras_round_trip(tmp_path):
    inp = keras.Input((12, 12, 12, 1))
    layer = PSFConv3D(6, name="psf")
    model = keras.Model(inp, layer(inp))
    layer.set_psf(born_wolf_psf((6, 6, 6), (0.2, 0.1, 0.1), 0.5))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.get_layer("psf").psf, layer.psf, atol=1e-7)
    assert loaded.get_layer("psf").implementation == "fft"
    x = tf.random.uniform((1, 12, 12, 12, 1))
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_unit_sum_preserves_flux_and_delta_gives_psf():
    psf = born_wolf_psf((5, 5, 5), (0.2, 0.1, 0.1), 0.5)
    layer = PSFConv3D(5)
    layer.set_psf(psf * 7.0)  # normalised on the way in
    x = np.zeros((1, 11, 11, 11, 1), np.float32)
    x[0, 5, 5, 5, 0] = 1.0
    y = layer(x).numpy()[0, ..., 0]
    np.testing.assert_allclose(y.sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(y[3:8, 3:8, 3:8], psf, atol=1e-6)


@pytest.mark.parametrize("implementation", ["fft", "direct"])
@pytest.mark.parametrize("kernel_size", [(6, 4, 5), (20, 20, 20)])
def test_a_point_stays_in_place_and_images_the_unflipped_psf(implementation, kernel_size):
    # An asymmetric PSF with even sizes: the layer is the convolution h * x centred at k // 2,
    # so a point source at p images as the PSF placed with its optical axis on p.
    rng = np.random.default_rng(3)
    psf = rng.random(kernel_size).astype(np.float32)
    layer = PSFConv3D(kernel_size, implementation)
    layer.set_psf(psf)
    p = (13, 12, 14)
    x = np.zeros((1, 26, 25, 27, 1), np.float32)
    x[(0, *p, 0)] = 1.0
    y = layer(x).numpy()[0, ..., 0]
    window = tuple(slice(c - k // 2, c - k // 2 + k) for c, k in zip(p, kernel_size))
    np.testing.assert_allclose(y[window], psf / psf.sum(), atol=1e-6)
    np.testing.assert_allclose(y.sum(), 1.0, rtol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="smaller than the PSF"):
        PSFConv3D(8)(tf.zeros((1, 6, 16, 16, 1)))
    with pytest.raises(ValueError, match="shape"):
        PSFConv3D(4)(tf.zeros((1, 16, 16, 1)))
    with pytest.raises(ValueError, match="implementation"):
        PSFConv3D(4, implementation="fast")
    with pytest.raises(ValueError, match="psf"):
        PSFConv3D(4).set_psf(-np.ones((4, 4, 4)))


def test_learned_background_adds_a_non_negative_offset_and_round_trips(tmp_path):
    """``learn_background``: H x = g (h * x) + b, b >= 0 after any update, saved and loaded;
    without it the layer has exactly its old weights (models saved before load unchanged)."""
    psf = born_wolf_psf((6, 6, 6), (0.2, 0.1, 0.1), 0.5)
    plain, offset = PSFConv3D(6, learn_gain=True), PSFConv3D(6, learn_gain=True, learn_background=True, name="psf")
    for layer in (plain, offset):
        layer.set_psf(psf)
        layer.set_gain(2.0)
    offset.set_background(0.25)
    x = tf.random.uniform((1, 12, 12, 12, 1), seed=1)
    np.testing.assert_allclose(offset(x).numpy(), plain(x).numpy() + 0.25, atol=1e-6)
    assert [w.name for w in plain.weights] == ["log_gain", "kernel"] and plain.background == 0.0
    with pytest.raises(ValueError, match="learn_background"):
        plain.set_background(0.1)
    with pytest.raises(ValueError, match=">= 0"):
        offset.set_background(-0.1)
    opt = keras.optimizers.SGD(10.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(offset(x))  # pushes b down, far below 0 without the constraint
    opt.apply_gradients(zip(tape.gradient(loss, offset.trainable_variables), offset.trainable_variables))
    assert offset.background == 0.0
    offset.set_background(0.25)
    inp = keras.Input((12, 12, 12, 1))
    model = keras.Model(inp, offset(inp))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras").get_layer("psf")
    assert loaded.learn_background and loaded.background == pytest.approx(0.25)
    np.testing.assert_allclose(loaded(x).numpy(), offset(x).numpy(), atol=1e-6)


@pytest.mark.parametrize("kernel_size", [(5, 6, 6), (4, 7, 7), (3, 5, 6)])
def test_lateral_symmetry_makes_h_commute_with_the_lateral_flips_and_quarter_turns(kernel_size):
    """``symmetry='lateral'``: H (flip x) = flip (H x) exactly for both lateral flips (and the
    lateral transpose on a square kernel), on even and odd kernels; without it, not."""
    rng = np.random.default_rng(5)
    psf = rng.random(kernel_size).astype(np.float32)
    layer, free = PSFConv3D(kernel_size, symmetry="lateral"), PSFConv3D(kernel_size)
    layer.set_psf(psf)
    free.set_psf(psf)
    x = tf.constant(rng.random((1, 9, 12, 12, 1)).astype(np.float32))
    moves = [lambda v: tf.reverse(v, [2]), lambda v: tf.reverse(v, [3])]
    if kernel_size[1] == kernel_size[2]:
        moves.append(lambda v: tf.transpose(v, [0, 1, 3, 2, 4]))
    for move in moves:
        np.testing.assert_allclose(layer(move(x)).numpy(), move(layer(x)).numpy(), atol=1e-6)
        assert np.abs(free(move(x)).numpy() - move(free(x)).numpy()).max() > 1e-3
    h = layer.psf
    np.testing.assert_allclose(h.sum(), 1.0, rtol=1e-5)
    assert h.min() >= 0
    for axis in (1, 2):  # an even axis's unpaired first plane is zero
        if kernel_size[axis] % 2 == 0:
            assert np.all(np.take(h, 0, axis=axis) == 0)


def test_lateral_symmetry_keeps_a_symmetric_psf_and_trains_and_round_trips(tmp_path):
    """A Born & Wolf PSF on an odd grid is already symmetric: unchanged. The gradient reaches
    the kernel; the setting is saved with the model."""
    psf = born_wolf_psf((5, 7, 7), (0.2, 0.1, 0.1), 0.5)
    layer = PSFConv3D((5, 7, 7), symmetry="lateral", name="psf")
    layer.set_psf(psf)
    np.testing.assert_allclose(layer.psf, psf / psf.sum(), atol=1e-7)
    x = tf.random.uniform((1, 9, 11, 11, 1), seed=2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * tf.random.uniform((1, 9, 11, 11, 1), seed=3))
    grad = tape.gradient(loss, layer.kernel).numpy()[..., 0, 0]
    assert np.abs(grad).max() > 0
    np.testing.assert_allclose(grad, grad[:, ::-1, :], rtol=1e-4, atol=1e-7)  # symmetric, as the PSF
    inp = keras.Input((9, 11, 11, 1))
    model = keras.Model(inp, layer(inp))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras").get_layer("psf")
    assert loaded.symmetry == "lateral"
    np.testing.assert_allclose(loaded(x).numpy(), layer(x).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="symmetry"):
        PSFConv3D(4, symmetry="radial")
