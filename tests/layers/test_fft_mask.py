import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.layers import FFTMask
from tf_otcycle.physics import random_mask


def _x(shape=(2, 12, 10, 2), seed=0):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _mask(w=10, seed=0):
    return random_mask(w, 2, 0.2, seed=seed)


def test_projection_is_idempotent_and_self_adjoint():
    op = FFTMask()
    m = _mask()
    x, y = _x(seed=1), _x(seed=2)
    hx = op(x, m)
    np.testing.assert_allclose(op(hx, m).numpy(), hx.numpy(), atol=1e-5)
    lhs = tf.reduce_sum(hx * y).numpy()
    rhs = tf.reduce_sum(x * op(y, m)).numpy()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)


def test_full_mask_is_identity_and_matches_numpy():
    op = FFTMask()
    x = _x()
    np.testing.assert_allclose(op(x, np.ones(10, np.float32)).numpy(), x.numpy(), atol=1e-5)
    m = _mask()
    xc = x.numpy()[..., 0] + 1j * x.numpy()[..., 1]
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(xc, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    ref = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k * m, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    got = op(x, m).numpy()
    np.testing.assert_allclose(got[..., 0] + 1j * got[..., 1], ref, atol=1e-5)


def test_gradient_is_h_of_cotangent():
    # d/dx <Hx, c> = H^T c = H c.
    op = FFTMask()
    m = _mask()
    x, c = _x(seed=3), _x(seed=4)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(op(x, m) * c)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), op(c, m).numpy(), atol=1e-5)


def test_per_sample_masks():
    op = FFTMask()
    x = _x()
    masks = np.stack([_mask(seed=0), _mask(seed=1)])
    both = op(x, masks).numpy()
    for b in range(2):
        np.testing.assert_allclose(both[b], op(x[b : b + 1], masks[b]).numpy()[0], atol=1e-6)


def test_fixed_mask_and_keras_round_trip(tmp_path):
    m = random_mask(16, 4, 0.25, seed=3)
    inp = keras.Input((8, 16, 2))
    model = keras.Model(inp, FFTMask(sampling_mask=m, name="H")(inp))
    config = model.get_layer("H").get_config()
    assert "sampling_mask" not in config and config["num_cols"] == 16
    path = tmp_path / "h.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _x((1, 8, 16, 2))
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    np.testing.assert_array_equal(loaded.get_layer("H").fixed_mask.numpy(), m)


@pytest.mark.parametrize(
    "shape,mask,match",
    [
        ((2, 12, 10), np.ones(10), "shape"),
        ((2, 12, 10, 3), np.ones(10), "2 channels"),
        ((2, 12, 10, 2), np.ones(9), "width"),
        ((2, 12, 10, 2), np.ones((2, 2, 10)), "sampling_mask"),
    ],
)
def test_bad_input(shape, mask, match):
    with pytest.raises(ValueError, match=match):
        FFTMask()(tf.zeros(shape), mask.astype(np.float32))


def test_no_mask_at_all():
    with pytest.raises(ValueError, match="sampling_mask"):
        FFTMask()(tf.zeros((1, 4, 4, 2)))
