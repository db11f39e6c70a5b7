"""ONNX export of a generator (the optional ``onnx`` extra), each graph checked against Keras by onnxruntime."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_otcycle.export.precision import float32_copy
from tf_otcycle.io_utils import atomic_path

ONNX_NAME = "generator.onnx"

# Keras' ONNX exporter probes ``np.object`` on import, which numpy 2 answers with a FutureWarning
# printed in every run that exports; it concerns Keras' code, not the user's.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"keras\.src\.export\.tf2onnx_lib")


def onnx_available() -> bool:
    """Whether the optional ``onnx`` extra (onnx and tf2onnx, which Keras' exporter uses, and
    onnxruntime, which checks each graph written) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "tf2onnx", "onnxruntime"))


class OnnxExportError(RuntimeError):
    """The ONNX graph written does not compute what the Keras model computes."""


ONNX_EXPORT_TRIES = 3


def export_onnx(model: keras.Model, path: str | os.PathLike, input_spec: tf.TensorSpec,
                tries: int = ONNX_EXPORT_TRIES) -> Path:
    """Save ``model`` as an ONNX graph (Keras' exporter, opset of tf2onnx) atomically, checked.

    ``input_spec``: the input's shape (``None`` for batch and spatial sizes) and name; the
    graph takes any size a ``(B, *spatial, C)`` input the model takes. Each graph written is
    run by onnxruntime on a probe input and must give Keras' output. tf2onnx 1.17 writes, now
    and then (1 export in 3 to 12 here, depending on the order its optimisers meet the nodes),
    a graph whose output has an extra leading axis, ``(1, N, D, H, W, 1)``: it dropped its
    own Squeeze (:func:`restore_dropped_squeeze` puts it back). A graph still wrong is
    exported again, up to ``tries`` times, each time from a fresh copy of the model (its own
    traced functions, the same weights); after that :class:`OnnxExportError` is raised and an
    existing file at ``path`` is kept. Needs the ``onnx`` extra
    (``pip install 'tf_otcycle[onnx]'``)."""
    if not onnx_available():
        raise ImportError("ONNX export needs the optional extra: pip install 'tf_otcycle[onnx]' "
                          "(onnx, tf2onnx, onnxruntime)")
    path = Path(path)
    model = float32_copy(model)  # ONNX has no bfloat16 convolution
    probe, expected = onnx_reference(model, input_spec)
    problems = []
    with atomic_path(path) as tmp:
        for attempt in range(max(1, tries)):
            source = model if attempt == 0 else fresh_copy(model)
            source.export(str(tmp), format="onnx", verbose=False, input_signature=[input_spec])
            restore_dropped_squeeze(tmp, expected.ndim)
            problem = onnx_mismatch(tmp, probe, expected)
            if problem is None:
                return path
            problems.append(problem)
        raise OnnxExportError(f"{path}: {len(problems)} ONNX exports did not reproduce the Keras model: "
                              + " | ".join(problems))


def restore_dropped_squeeze(onnx_path: str | os.PathLike, rank: int) -> bool:
    """Put back the Squeeze tf2onnx's reshape optimiser drops at a graph output; True if it did.

    That optimiser rewrites a ``Reshape`` to one with ``k`` leading axes of size 1 and inserts a
    ``Squeeze`` of them on the Reshape's consumers; when the Reshape itself gives the graph's
    output there is no consumer, the Squeeze is left dangling and removed, and the output has
    rank ``rank + k``. For each output of declared rank ``rank + k`` made by a Reshape whose
    constant shape starts with ``k`` ones, this appends ``Squeeze(axes=0..k-1)`` and rewrites
    the file at ``onnx_path`` (other graphs are left as written)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    changed = False
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        extra = len(dims) - rank
        node = producers.get(output.name)
        if extra <= 0 or node is None or node.op_type != "Reshape" or node.input[1] not in constants:
            continue
        shape = constants[node.input[1]].reshape(-1)
        if len(shape) != len(dims) or not (shape[:extra] == 1).all():
            continue
        unsqueezed = output.name + "__before_squeeze"
        node.output[0] = unsqueezed
        axes = list(range(extra))
        if opset >= 13:  # axes became an input in opset 13
            axes_name = output.name + "__squeeze_axes"
            graph.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), axes_name))
            graph.node.append(helper.make_node("Squeeze", [unsqueezed, axes_name], [output.name]))
        else:
            graph.node.append(helper.make_node("Squeeze", [unsqueezed], [output.name], axes=axes))
        for _ in range(extra):
            dims.pop(0)
        changed = True
    if changed:
        onnx.save(model, str(onnx_path))
    return changed


def fresh_copy(model: keras.Model) -> keras.Model:
    """A new model object of ``model``'s architecture (from its config) holding its weights."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def onnx_probe(model: keras.Model, input_spec: tf.TensorSpec, seed: int = 0) -> np.ndarray:
    """A seeded input of ``input_spec``'s shape: batch 1, each free spatial axis twice the
    size the model's pooling needs (at least 8)."""
    from tf_otcycle.models import input_multiple

    size = max(8, 2 * input_multiple(model))
    shape = [1] + [size if s is None else int(s) for s in list(input_spec.shape)[1:]]
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def onnx_reference(model: keras.Model, input_spec: tf.TensorSpec) -> tuple[np.ndarray, np.ndarray]:
    """The probe input (:func:`onnx_probe`) and the Keras model's output for it, what an ONNX
    graph of the model must reproduce (:func:`onnx_mismatch`)."""
    probe = onnx_probe(model, input_spec)
    return probe, np.asarray(model(probe, training=False))


def onnx_mismatch(onnx_path: str | os.PathLike, x: np.ndarray, expected: np.ndarray,
                  atol: float = 1e-4, rtol: float = 1e-3) -> str | None:
    """Why the ONNX graph at ``onnx_path`` does not give ``expected`` for input ``x``
    (onnxruntime, CPU); None when it does (shape equal, values within ``atol + rtol |expected|``)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])
    if got.shape != expected.shape:
        return f"output shape {got.shape} for an input {x.shape}, Keras gives {expected.shape}"
    error = np.abs(got - expected) - rtol * np.abs(expected)
    if float(error.max(initial=0.0)) > atol:
        return f"outputs differ from Keras' by up to {float(np.abs(got - expected).max()):.3g}"
    return None
