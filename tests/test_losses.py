import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle import losses


def _linear_critic(w: np.ndarray) -> keras.Model:
    inp = keras.Input(w.shape)
    flat = keras.layers.Flatten()(inp)
    dense = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inp, dense(flat))
    dense.set_weights([w.reshape(-1, 1)])
    return model


@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0])
def test_gradient_penalty_of_linear_critic_is_analytic(scale):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 4, 2)).astype(np.float32)
    w *= scale / np.linalg.norm(w)  # ||grad|| = scale everywhere
    critic = _linear_critic(w)
    real = tf.constant(rng.standard_normal((3, 4, 4, 2)), tf.float32)
    fake = tf.constant(rng.standard_normal((3, 4, 4, 2)), tf.float32)
    alpha = tf.random.uniform((3, 1, 1, 1))
    gp = losses.gradient_penalty(critic, real, fake, alpha).numpy()
    np.testing.assert_allclose(gp, np.full(3, (scale - 1) ** 2), rtol=1e-4, atol=1e-6)


def test_gradient_penalty_is_finite_at_zero_gradient():
    critic = _linear_critic(np.zeros((2, 2, 1), np.float32))
    x = tf.zeros((1, 2, 2, 1))
    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(critic, x, x, tf.ones((1, 1, 1, 1)))
    grads = tape.gradient(gp, critic.trainable_variables)
    assert np.isfinite(gp.numpy()).all() and all(np.isfinite(g.numpy()).all() for g in grads)


def test_multiscale_penalty_sums_each_scale():
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((4, 4, 1)).astype(np.float32)
    w2 = rng.standard_normal((4, 4, 1)).astype(np.float32)
    c1, c2 = _linear_critic(w1), _linear_critic(w2)

    def both(x, training=True):
        return [c1(x), c2(x)]

    x = tf.constant(rng.standard_normal((1, 4, 4, 1)), tf.float32)
    gp = losses.gradient_penalty(both, x, x, tf.ones((1, 1, 1, 1))).numpy()
    expected = (np.linalg.norm(w1) - 1) ** 2 + (np.linalg.norm(w2) - 1) ** 2
    np.testing.assert_allclose(gp, [expected], rtol=1e-4)


def test_cycle_l1_weights():
    x = tf.ones((2, 3, 3, 1))
    cx, cy = losses.cycle_l1(x, 0 * x, x, 3 * x, rho=0.5, sigma=0.25)
    np.testing.assert_allclose(cx.numpy(), [0.5, 0.5])
    np.testing.assert_allclose(cy.numpy(), [0.5, 0.5])
