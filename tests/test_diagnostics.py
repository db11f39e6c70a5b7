"""Warnings a user can act on, and the data-consistency evaluation variant."""

import numpy as np
import tensorflow as tf

from tf_otcycle.physics import complex_to_channels, fft2c, random_mask
from tf_otcycle.physics.fft import channels_to_complex
from tf_otcycle.tasks.mri import with_data_consistency
from tf_otcycle.training import TrainingDiagnostics, relative_change


class _Model:
    def __init__(self, step):
        self.g_optimizer = type("Opt", (), {"iterations": tf.Variable(step)})()


def _diagnostics(step, **kwargs):
    messages = []
    cb = TrainingDiagnostics(warn=messages.append, **kwargs)
    cb.set_model(_Model(step))
    return cb, messages


def test_warns_when_the_critic_loses_its_lipschitz_bound():
    cb, messages = _diagnostics(10)
    cb.on_epoch_end(0, {"gp": 0.02})
    assert not messages
    cb.on_epoch_end(1, {"gp": 3.5})
    assert len(messages) == 1 and "1-Lipschitz" in messages[0] and "epoch 2" in messages[0]


def test_warns_when_the_generator_stays_at_the_identity_after_the_warmup():
    cb, messages = _diagnostics(50, after_step=100)
    cb.on_epoch_end(0, {"val_change": 1e-5})
    assert not messages  # still warming up
    cb, messages = _diagnostics(200, after_step=100)
    cb.on_epoch_end(0, {"val_change": 1e-5})
    cb.on_epoch_end(1, {"val_change": 0.2})
    assert len(messages) == 1 and "identity" in messages[0]


def test_relative_change():
    x = np.ones((2, 4))
    assert relative_change(x, x) == 0
    assert np.isclose(relative_change(2 * x, x), 1.0)


def test_data_consistency_variant_puts_the_measured_lines_back():
    rng = np.random.default_rng(0)
    size = 16
    mask = np.stack([random_mask(size, 4, 0.125, seed=s) for s in range(2)]).astype(np.float32)
    y = rng.standard_normal((2, size, size, 2)).astype(np.float32)
    other = rng.standard_normal((2, size, size, 2)).astype(np.float32)
    out = with_data_consistency(lambda y_, m_: other)(y, mask)
    k_out = fft2c(channels_to_complex(tf.constant(out))).numpy()
    k_y = fft2c(channels_to_complex(tf.constant(y))).numpy()
    k_other = fft2c(channels_to_complex(tf.constant(other))).numpy()
    sampled = mask[:, None, :].astype(bool) & np.ones((1, size, 1), bool)
    np.testing.assert_allclose(k_out[sampled], k_y[sampled], atol=1e-4)
    np.testing.assert_allclose(k_out[~sampled], k_other[~sampled], atol=1e-4)
    assert complex_to_channels(channels_to_complex(tf.constant(out))).shape == out.shape


def test_a_penalty_above_the_threshold_at_every_step_is_reported_as_diverging():
    def epoch(per_step):
        cb, messages = _diagnostics(10)
        cb.on_epoch_begin(0)
        total = 0.0
        for k, value in enumerate(per_step, 1):  # Keras logs the running mean
            total += value
            cb.on_train_batch_end(k - 1, {"gp": total / k})
        cb.on_epoch_end(0, {"gp": total / len(per_step)})
        return messages

    messages = epoch([3.0, 2.5, 4.0, 1.5])
    assert len(messages) == 1 and "diverging" in messages[0] and "every one of 4 steps" in messages[0]
    assert "lowest 1.5" in messages[0]
    messages = epoch([3.0, 0.1, 6.0, 2.0])  # the mean is above, one step is not: drifting, not diverging
    assert len(messages) == 1 and "far from 1-Lipschitz" in messages[0]
    assert not epoch([0.1, 0.2, 0.05])
