"""Compiled inference keeps the model it needs alive."""

import gc
import logging
import weakref

import keras
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


def test_compiling_many_models_is_not_reported_as_retracing(caplog):
    """Each model's function is its own: tracing the sixth model is not "retracing" of the first
    five (TensorFlow keys its warning by the Python code traced; ``--eval_only`` loads every
    method's generator and used to print it)."""
    x = np.ones((1, 4, 4, 1), np.float32)
    models = [keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Dense(1)]) for _ in range(7)]
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        outs = [np.asarray(compiled(m)(x)) for m in models]
        outs += [np.asarray(compiled(m, lambda model, v: model(v) * 2.0)(x)) for m in models]
    assert all(np.all(np.isfinite(o)) for o in outs)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
