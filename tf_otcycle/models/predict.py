"""Compiled inference: a network's forward pass as one traced graph per input shape."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(model, fn: Callable | None = None) -> Callable:
    """``fn(model, *args)`` (default: ``model(x, training=False)``) as one ``tf.function`` per
    model and ``fn``, traced once per input shape, generalised after a second shape.

    The cache holds the model weakly (it must not keep its own key alive); the function
    returned holds it strongly, so ``compiled(build_model())(x)`` works after the model's last
    other reference is gone."""
    per_model = _COMPILED.setdefault(model, {})
    if fn not in per_model:
        # a partial, not a closure: TensorFlow keys its retracing warning by the code traced, so
        # closures of one code object over several models would count as one function retracing
        body = functools.partial(_call_weak, weakref.ref(model), fn or _inference)
        per_model[fn] = tf.function(body, reduce_retracing=True)
    return _Bound(per_model[fn], model)


def _inference(model, x):
    return model(x, training=False)


def _call_weak(ref: weakref.ref, fn: Callable, *args):
    return fn(ref(), *args)


class _Bound:
    """A compiled function together with the model it calls, so the model lives as long as it."""

    def __init__(self, traced: Callable, model) -> None:
        self.traced, self.model = traced, model

    def __call__(self, *args):
        return self.traced(*args)


def predictor(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """``model(x, training=False)``, compiled (:func:`compiled`), NumPy in and out.

    Calling a Keras model eagerly dispatches every layer's ops one by one from Python; the
    traced graph runs them as one call (measured in ``benchmarks/RESULTS.md``)."""
    run = compiled(model)
    return lambda x: np.asarray(run(tf.convert_to_tensor(x, tf.float32)))


def input_multiple(model: keras.Model) -> int:
    """The size every spatial input axis of ``model`` must be a multiple of: the product of its
    pooling sizes (``2**depth`` for a U-Net); 1 for a network without pooling."""
    multiple = 1
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.MaxPooling3D)):
            multiple *= int(np.max(layer.pool_size))
    return multiple


def padded(fn: Callable, multiple: int) -> Callable:
    """``fn`` on inputs ``(B, *spatial, C)`` of any size: each spatial axis symmetrically padded
    at its end to a multiple of ``multiple``, the output cropped back to the input's size."""
    if multiple <= 1:
        return fn

    def run(x, training: bool = False):
        x = tf.convert_to_tensor(x)
        sizes = tf.shape(x)[1:-1]
        pads = (-sizes) % multiple
        paddings = tf.concat([[[0, 0]], tf.stack([tf.zeros_like(pads), pads], axis=1), [[0, 0]]], axis=0)
        y = fn(tf.pad(x, paddings, mode="SYMMETRIC"), training=training)
        return tf.slice(y, tf.zeros([tf.rank(x)], tf.int32), tf.concat([tf.shape(x)[:1], sizes, tf.shape(y)[-1:]], 0))

    return run
