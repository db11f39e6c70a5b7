"""The pool of past fakes (the authors' ImagePool): fill, then swap half the time; resumable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.layers import FakePool
from tf_otcycle.layers.fft_mask import FFTMask
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.models import build_patchgan, build_unet
from tf_otcycle.physics.masks import random_mask
from tf_otcycle.training import TrainState, adam


def _stream(pool, n):
    return [float(pool(tf.constant([[k, k]], tf.float32)).numpy()[0, 0]) for k in range(n)]


@pytest.mark.slow
def test_fills_then_returns_the_new_sample_or_a_stored_one_half_the_time():
    pool = FakePool(4, (2,), seed=0)
    seen = _stream(pool, 400)
    assert seen[:4] == [0.0, 1.0, 2.0, 3.0]  # filling: each sample is stored and returned
    later = np.array(seen[4:])
    fresh = later == np.arange(4, 400)
    assert 0.4 < fresh.mean() < 0.6  # once full: the new sample half the time ...
    assert np.all(later[~fresh] < np.arange(4, 400)[~fresh])  # ... else an earlier one
    stored = pool.images.numpy()[:, 0]
    assert int(pool.count.numpy()) == 4 and len(set(stored)) == 4 and set(stored) <= set(range(400))
    assert _stream(FakePool(4, (2,), seed=0), 400) == seen  # seeded


def test_batches_go_through_in_order_and_size_0_is_off():
    pool = FakePool(3, (2,), seed=1)
    out = pool(tf.constant([[0, 0], [1, 1], [2, 2], [3, 3]], tf.float32)).numpy()[:, 0]
    assert list(out[:3]) == [0, 1, 2] and out[3] in (0, 1, 2, 3)
    x = tf.ones((2, 2))
    assert FakePool(0, (2,))(x) is x
    with pytest.raises(ValueError, match="size"):
        FakePool(-1, (2,))
    again = FakePool.from_config(pool.get_config())
    assert again.size == 3 and again.sample_shape == (2,)


@pytest.mark.slow
def test_model_with_pools_trains_and_checkpoints_them(tmp_path):
    def build():
        keras.utils.set_random_seed(0)
        g = build_unet(2, 2, depth=1, base_filters=2)
        model = OTCycleGAN(g, FFTMask(), build_patchgan(2, 2, base_filters=2, n_layers=1), n_critic=2, seed=0,
                           pool_x=FakePool(3, (16, 16, 2), seed=5))
        model.compile(adam(1e-3), adam(1e-3))
        return model

    rng = np.random.default_rng(0)
    masks = np.stack([random_mask(16, 4, 0.125, seed=i) for i in range(4)])
    data = {"x": rng.random((4, 16, 16, 2), np.float32), "y": rng.random((4, 16, 16, 2), np.float32),
            "x_mask": masks, "y_mask": masks[::-1]}
    model = build()
    model.fit(tf.data.Dataset.from_tensor_slices(data).batch(1), epochs=1, steps_per_epoch=4, verbose=0)
    assert int(model.pool_x.count.numpy()) == 3 and np.abs(model.pool_x.images.numpy()).sum() > 0
    state = TrainState(model, tmp_path / "ckpt")
    state.save(1)
    restored = build()
    TrainState(restored, tmp_path / "ckpt").restore(log=lambda _: None)
    np.testing.assert_array_equal(restored.pool_x.images.numpy(), model.pool_x.images.numpy())
    assert int(restored.pool_x.count.numpy()) == 3
    np.testing.assert_array_equal(restored.pool_x.seed_generator.state.numpy(),
                                  model.pool_x.seed_generator.state.numpy())
