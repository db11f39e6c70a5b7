"""Compiled inference: a network's forward pass as one traced graph per input shape."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def predictor(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """``model(x, training=False)`` as a ``tf.function`` (one per model, kept while the model
    lives; traced once per input shape, and generalised after a second shape), numpy out.

    Calling a Keras model eagerly dispatches every layer's ops one by one from Python; the
    traced graph runs them as one call (measured in ``benchmarks/RESULTS.md``)."""
    if model not in _COMPILED:
        _COMPILED[model] = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    compiled = _COMPILED[model]
    return lambda x: np.asarray(compiled(tf.convert_to_tensor(x, tf.float32)))
