"""Exports compute in float32: a copy of a network trained under a mixed dtype policy."""

from __future__ import annotations

import keras

MIXED = ("mixed_bfloat16", "mixed_float16")
HALF = ("bfloat16", "float16")


def _float32_config(value, key: str | None = None):
    """``value`` (a Keras config) with every ``dtype`` entry that names a mixed policy or a
    16-bit type replaced by ``"float32"``."""
    if key == "dtype":
        if isinstance(value, str) and value in MIXED + HALF:
            return "float32"
        if isinstance(value, dict) and value.get("config", {}).get("name") in MIXED + HALF:
            return "float32"
    if isinstance(value, dict):
        return {k: _float32_config(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    return value


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` itself when every layer computes in float32; else a new model of the same
    architecture computing in float32 throughout, holding the same (float32) weights.

    A network trained under ``--mixed_precision`` (bfloat16 or float16 compute, float32
    weights) is exported this way: the ``.keras`` file, the SavedModel and the ONNX graph then
    compute as they take and return, in float32, on any machine (ONNX has no bfloat16
    convolution, and a CPU without bfloat16 units would run it slowly)."""
    if all(layer.compute_dtype == "float32" for layer in model._flatten_layers()):
        return model
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # the containers' own policy (model, inputs)
    try:
        copy = model.__class__.from_config(_float32_config(model.get_config()))
    finally:
        keras.mixed_precision.set_global_policy(policy)
    copy.set_weights(model.get_weights())
    return copy
