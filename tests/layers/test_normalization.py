import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.layers import InstanceNormalization


def _pair(shape: tuple):
    """Our layer and Keras' instance norm (GroupNormalization, one group per channel), same weights."""
    rng = np.random.default_rng(0)
    ours, ref = InstanceNormalization(), keras.layers.GroupNormalization(groups=-1, epsilon=1e-5)
    channels = shape[-1]
    for layer in (ours, ref):
        layer.build((None,) + tuple(shape[1:]))
    weights = [rng.uniform(0.5, 2, channels).astype("float32"), rng.standard_normal(channels).astype("float32")]
    ours.set_weights(weights)
    ref.set_weights(weights)
    return ours, ref


@pytest.mark.parametrize("shape", [(1, 12, 10, 3), (3, 12, 10, 3), (1, 6, 8, 4, 2), (2, 6, 8, 4, 2)])
def test_equals_group_normalization_and_its_gradients(shape):
    """Fused path (batch 1) and moments path (batch > 1): values and input/weight gradients
    of GroupNormalization(groups=-1) to float32 rounding."""
    x = tf.constant(np.random.default_rng(1).standard_normal(shape).astype("float32") * 3 + 1)
    ours, ref = _pair(shape)
    w = tf.constant(np.random.default_rng(2).standard_normal(shape).astype("float32"))
    results = []
    for layer in (ours, ref):
        @tf.function
        def run(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(w * y)
            return y, tape.gradient(loss, [x] + layer.trainable_variables)
        results.append(run(x))
    (y, grads), (y_ref, grads_ref) = results
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-3, atol=1e-4)


def test_fused_and_moments_paths_agree():
    x = tf.constant(np.random.default_rng(3).standard_normal((1, 16, 16, 4)).astype("float32"))
    layer, _ = _pair(x.shape)
    np.testing.assert_allclose(tf.function(layer)(x), layer.normalize_with_moments(x), rtol=1e-4, atol=1e-5)


def test_volume_with_unknown_sizes_keeps_its_shape():
    """The fused path runs a volume as a 2-D image: the output keeps the input's static shape
    (None where the graph has None) and equals the moments path, traced and eager."""
    layer, _ = _pair((1, 6, 8, 4, 2))
    x = tf.constant(np.random.default_rng(4).standard_normal((1, 6, 8, 4, 2)).astype("float32"))
    traced = tf.function(layer).get_concrete_function(tf.TensorSpec((1, None, None, None, 2)))
    assert traced.structured_outputs.shape.as_list() == [1, None, None, None, 2]
    for y in (traced(x), layer(x)):
        assert y.shape == x.shape
        np.testing.assert_allclose(y, layer.normalize_with_moments(x), rtol=1e-4, atol=1e-5)


def test_half_precision_and_serialisation():
    layer = InstanceNormalization(epsilon=1e-3, dtype="mixed_float16")
    y = layer(tf.random.normal((1, 8, 8, 2)))
    assert y.dtype == tf.float16 and np.isfinite(y.numpy()).all()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, InstanceNormalization) and clone.epsilon == 1e-3
