"""A network trained in mixed precision is exported computing in float32 (export.precision)."""

import keras
import numpy as np
import pytest

from tf_otcycle.export import float32_copy
from tf_otcycle.tasks import get


@pytest.fixture
def mixed_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _generator(task_name: str):
    task = get(task_name)
    sizes = {"mri": {"crop_size": 16}, "microscopy": {"patch_size": 8}}[task_name]
    return task.generator(task.default_config(base_filters=4, depth=1, **sizes), None)


@pytest.mark.parametrize("task_name,shape", [("mri", (1, 16, 16, 2)), ("microscopy", (1, 8, 8, 8, 1))])
def test_a_mixed_precision_generator_is_copied_to_float32(mixed_policy, task_name, shape):
    keras.utils.set_random_seed(0)
    mixed = _generator(task_name)
    assert any(layer.compute_dtype == "bfloat16" for layer in mixed._flatten_layers())
    copy = float32_copy(mixed)
    assert all(layer.compute_dtype == "float32" for layer in copy._flatten_layers())
    for a, b in zip(mixed.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    keras.mixed_precision.set_global_policy("float32")
    reference = _generator(task_name)  # the same architecture built in float32, given the same weights
    reference.set_weights(mixed.get_weights())
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    np.testing.assert_allclose(copy(x), reference(x), rtol=1e-5, atol=1e-6)
    assert float32_copy(reference) is reference  # nothing to convert: the model itself
