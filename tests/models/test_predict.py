"""Compiled inference keeps the model it needs alive."""

import gc
import weakref

import numpy as np
import pytest

from tf_otcycle.models import build_unet, predictor
from tf_otcycle.models.predict import compiled


@pytest.mark.slow  # several seconds of work: make test, not test-fast
def test_predictor_of_a_model_built_inline_survives_collection():
    predict = predictor(build_unet(ndim=2, in_channels=2, depth=1, base_filters=4))
    gc.collect()
    out = predict(np.ones((1, 8, 8, 2), np.float32))
    assert out.shape == (1, 8, 8, 2) and np.all(np.isfinite(out))


@pytest.mark.slow  # several seconds of work: make test, not test-fast
def test_the_cache_does_not_keep_a_dropped_model_alive():
    model = build_unet(ndim=2, in_channels=2, depth=1, base_filters=4)
    run = compiled(model)
    x = np.ones((1, 8, 8, 2), np.float32)
    np.testing.assert_allclose(np.asarray(run(x)), np.asarray(model(x, training=False)), atol=1e-6)
    ref = weakref.ref(model)
    del model, run
    gc.collect()
    assert ref() is None
