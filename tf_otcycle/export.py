"""Exports: ``.keras`` models and versioned SavedModels that TF Serving loads.

SavedModel layout (what TF Serving's model server expects):
``<export_dir>/<model_name>/<version>/saved_model.pb`` + ``variables/``, versions being
increasing integers. Each version is written to a temporary folder beside it and renamed
when complete, so a server polling the folder never sees a half-written version.

ONNX: with the optional ``onnx`` extra installed, ``generator.onnx`` (the same network, input
``image`` / ``blurred`` of any batch and spatial size) is written beside ``generator.keras``.

Settings: every export carries the run's settings that inference needs (task, crop or patch
size, tile overlap, acceleration, centre fraction, mask type, normalisation rule, voxel
size, package version) as ``config.json`` beside ``generator.keras`` and in each
SavedModel version's ``assets/``; ``reconstruct`` and ``deconvolve`` read them
(:func:`read_export_config`), so a copied model folder needs no flags but input and output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_otcycle.io_utils import atomic_path, atomic_write_text
from tf_otcycle.physics import fft
from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels
from tf_otcycle.physics.operators import CartesianSampling


def export_keras(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model`` as a ``.keras`` file atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


ONNX_NAME = "generator.onnx"


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
    run by onnxruntime on a probe input and must give Keras' output: tf2onnx's optimiser was
    measured here to emit, now and then (1 of 12 exports in one process), a 2-D U-Net whose
    output has an extra leading axis ``(1, 1, H, W, 1)``. Such a graph is exported again, up
    to ``tries`` times; after that :class:`OnnxExportError` is raised and an existing file at
    ``path`` is kept. Needs the ``onnx`` extra (``pip install 'tf_otcycle[onnx]'``)."""
    if not onnx_available():
        raise ImportError("ONNX export needs the optional extra: pip install 'tf_otcycle[onnx]' "
                          "(onnx, tf2onnx, onnxruntime)")
    path = Path(path)
    probe, expected = onnx_reference(model, input_spec)
    problems = []
    with atomic_path(path) as tmp:
        for _ in range(max(1, tries)):
            model.export(str(tmp), format="onnx", verbose=False, input_signature=[input_spec])
            problem = onnx_mismatch(tmp, probe, expected)
            if problem is None:
                return path
            problems.append(problem)
        raise OnnxExportError(f"{path}: {len(problems)} ONNX exports did not reproduce the Keras model: "
                              + " | ".join(problems))


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


def next_version(model_dir: str | os.PathLike) -> int:
    """1 + the largest integer version folder in ``model_dir`` (1 when none)."""
    model_dir = Path(model_dir)
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()] if model_dir.is_dir() else []
    return max(versions, default=0) + 1


CONFIG_NAME = "config.json"


def write_saved_model(
    archive: keras.export.ExportArchive, model_dir: str | os.PathLike, version: int | None = None,
    settings: dict | None = None,
) -> Path:
    """Write an ``ExportArchive`` as ``<model_dir>/<version>/`` atomically; return that folder.

    ``settings`` (JSON-serialisable) go to ``<version>/assets/config.json``, inside the same
    atomic rename.
    """
    model_dir = Path(model_dir)
    version = next_version(model_dir) if version is None else int(version)
    target = model_dir / str(version)
    if target.exists():
        raise FileExistsError(f"{target}: version {version} exists; SavedModel versions are never overwritten")
    with atomic_path(target) as tmp:
        archive.write_out(str(tmp), verbose=False)
        if settings is not None:
            (tmp / "assets").mkdir(exist_ok=True)
            (tmp / "assets" / CONFIG_NAME).write_text(_settings_json(settings))
    return target


def export_settings(task: str, **settings) -> dict:
    """The settings inference needs, tagged with the task and the package version."""
    from tf_otcycle import __version__

    return {"task": task, "package_version": __version__, **settings}


def _settings_json(settings: dict) -> str:
    return json.dumps(settings, indent=2, sort_keys=True) + "\n"


def read_export_config(model_path: str | os.PathLike) -> dict:
    """The settings exported with a model: ``config.json`` beside a ``.keras`` file, or in a
    SavedModel version's ``assets/`` (``{}`` when there is none, e.g. an older export).

    Raises:
        ValueError: naming the file, when it exists but is not a JSON object.
    """
    model_path = Path(model_path)
    candidates = [model_path / "assets" / CONFIG_NAME] if model_path.is_dir() else [model_path.parent / CONFIG_NAME]
    for path in candidates:
        if path.is_file():
            try:
                config = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{path}: not a readable JSON settings file ({e})") from None
            if not isinstance(config, dict):
                raise ValueError(f"{path}: expected a JSON object of settings, got {type(config).__name__}")
            return config
    return {}


def weights_digest(model: keras.Model, *extras) -> str:
    """SHA-256 of a model's weights (shapes, dtypes and values, in order) and of ``extras``
    (arrays, e.g. the learned PSF): equal digests, identical exports."""
    import hashlib

    digest = hashlib.sha256()
    for array in [*model.get_weights(), *extras]:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _export_generator(generator, archive, export_dir: Path, model_name: str, settings: dict | None,
                      extras: tuple = (), input_spec: tf.TensorSpec | None = None) -> dict[str, Path]:
    """``generator.keras`` (+ ``config.json`` beside it), a new SavedModel version and, where
    the ``onnx`` extra is installed and ``input_spec`` given, ``generator.onnx``.

    With ``settings``, the export records the weights' digest (``weights_sha256``); when the
    folder already holds an export of identical weights and settings (e.g. ``make demo`` run
    twice, or ``--eval_only``), nothing is written and ``paths["unchanged"]`` is True."""
    if settings is not None:
        settings = {**settings, "weights_sha256": weights_digest(generator, *extras)}
        previous = _unchanged_export(export_dir, model_name, settings)
        if previous is not None:
            return previous
    keras_path = export_keras(generator, export_dir / "generator.keras")
    paths = {"keras": keras_path}
    if input_spec is not None and onnx_available():
        paths["onnx"] = export_onnx(generator, export_dir / ONNX_NAME, input_spec)
    if settings is not None:
        atomic_write_text(export_dir / CONFIG_NAME, _settings_json(settings))
        paths["config"] = export_dir / CONFIG_NAME
    paths["saved_model"] = write_saved_model(archive, export_dir / model_name, settings=settings)
    return paths


def _unchanged_export(export_dir: Path, model_name: str, settings: dict) -> dict | None:
    """The paths of an existing export with exactly these ``settings`` (weights digest
    included) in ``config.json`` and in its latest SavedModel version, else None."""
    keras_path, config_path = export_dir / "generator.keras", export_dir / CONFIG_NAME
    latest = next_version(export_dir / model_name) - 1
    saved = export_dir / model_name / str(latest)
    try:
        same = (keras_path.exists() and json.loads(config_path.read_text()) == settings
                and json.loads((saved / "assets" / CONFIG_NAME).read_text()) == settings)
    except (OSError, ValueError):
        return None
    if not same:
        return None
    paths = {"keras": keras_path, "config": config_path, "saved_model": saved, "unchanged": True}
    return {**paths, "onnx": export_dir / ONNX_NAME} if (export_dir / ONNX_NAME).exists() else paths


def reconstruct_kspace(generator, kspace: tf.Tensor, mask: tf.Tensor, data_consistency: tf.Tensor) -> dict:
    """k-space in, reconstruction out, with training's normalisation inside.

    ``y = ifft2c(mask * kspace)`` is divided by ``s = std(|y|)`` per sample (as in training),
    passed through G and multiplied back by ``s``. Where ``data_consistency`` is true the
    sampled k-space lines of the output are replaced by the measured ones.

    Args:
        kspace: complex64 ``(B, H, W)`` centred k-space of the (cropped) image grid;
            unsampled lines may hold anything (they are masked).
        mask: float32 ``(B, W)`` sampling mask (1 = sampled line).
        data_consistency: bool ``(B,)``.

    Returns:
        ``{"reconstruction": (B, H, W, 2) float32, "magnitude": (B, H, W) float32}``.
    """
    y = channels_to_complex(CartesianSampling().adjoint(complex_to_channels(kspace), {"mask": mask}))  # zero-filled
    scale = tf.math.reduce_std(tf.abs(y), axis=[1, 2]) + 1e-12  # (B,)
    c = tf.cast(scale, tf.complex64)[:, None, None]
    x = channels_to_complex(generator(complex_to_channels(y / c), training=False)) * c
    x_dc = fft.data_consistency(x, kspace, mask)
    x = tf.where(tf.reshape(data_consistency, [-1, 1, 1]), x_dc, x)
    return {"reconstruction": complex_to_channels(x), "magnitude": tf.abs(x)}


def compiled_reconstruct_kspace(generator) -> Callable:
    """:func:`reconstruct_kspace` with ``generator`` bound, compiled once per generator
    (:func:`tf_otcycle.models.predict.compiled`): ``(kspace, mask, data_consistency) -> dict``."""
    from tf_otcycle.models.predict import compiled

    return compiled(generator, reconstruct_kspace)


def mri_archive(generator: keras.Model) -> keras.export.ExportArchive:
    """Signatures of the MRI generator.

    * ``serving_default``: ``image (B, H, W, 2) float32`` (the normalised zero-filled image,
      as in training) -> ``reconstruction (B, H, W, 2)``, ``magnitude (B, H, W)``;
    * ``reconstruct_kspace``: ``kspace (B, H, W) complex64``, ``mask (B, W) float32``,
      ``data_consistency (B,) bool`` -> the same outputs in k-space units (see
      :func:`reconstruct_kspace`);
    * ``reconstruct_kspace_ri``: the same with ``kspace_real`` / ``kspace_imag`` float32
      inputs, for JSON clients (TF Serving's REST API has no complex type).
    """
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def serve(image):
        recon = generator(image, training=False)
        return {"reconstruction": recon, "magnitude": tf.abs(channels_to_complex(recon))}

    def serve_kspace(kspace, mask, data_consistency):
        return reconstruct_kspace(generator, kspace, mask, data_consistency)

    def serve_kspace_ri(kspace_real, kspace_imag, mask, data_consistency):
        return reconstruct_kspace(generator, tf.complex(kspace_real, kspace_imag), mask, data_consistency)

    hw = [None, None, None]
    archive.add_endpoint(
        "serving_default", serve, input_signature=[tf.TensorSpec([None, None, None, 2], tf.float32, name="image")]
    )
    archive.add_endpoint("reconstruct_kspace", serve_kspace, input_signature=[
        tf.TensorSpec(hw, tf.complex64, name="kspace"), tf.TensorSpec([None, None], tf.float32, name="mask"),
        tf.TensorSpec([None], tf.bool, name="data_consistency"),
    ])
    archive.add_endpoint("reconstruct_kspace_ri", serve_kspace_ri, input_signature=[
        tf.TensorSpec(hw, tf.float32, name="kspace_real"), tf.TensorSpec(hw, tf.float32, name="kspace_imag"),
        tf.TensorSpec([None, None], tf.float32, name="mask"), tf.TensorSpec([None], tf.bool, name="data_consistency"),
    ])
    return archive


def rest_request(signature_name: str, inputs: dict, row_format: bool = False) -> dict:
    """Body of a TF Serving REST ``:predict`` request for ``inputs`` (name -> array).

    Columnar (``{"inputs": {...}}``) by default, row format (``{"instances": [...]}``) with
    ``row_format``. Complex arrays cannot be written as JSON: use ``reconstruct_kspace_ri``.
    """
    for name, value in inputs.items():
        if np.iscomplexobj(value):
            raise ValueError(f"{name}: JSON has no complex type; send real and imaginary parts (reconstruct_kspace_ri)")
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    if not row_format:
        return {"signature_name": signature_name, "inputs": {k: v.tolist() for k, v in arrays.items()}}
    batch = {len(v) for v in arrays.values()}
    if len(batch) != 1:
        raise ValueError(f"inputs: row format needs one batch size, got {sorted(batch)}")
    n = batch.pop()
    return {"signature_name": signature_name, "instances": [{k: v[i].tolist() for k, v in arrays.items()} for i in range(n)]}


def export_mri_generator(
    generator: keras.Model, export_dir: str | os.PathLike, model_name: str = "saved_model", settings: dict | None = None
) -> dict[str, Path]:
    """Export the MRI generator as ``<export_dir>/generator.keras`` and a new SavedModel
    version, with ``settings`` (:func:`export_settings`) as ``config.json`` in both."""
    spec = tf.TensorSpec([None, None, None, 2], tf.float32, name="image")
    return _export_generator(generator, mri_archive(generator), Path(export_dir), model_name, settings,
                             input_spec=spec)


def blurred_spec(ndim: int = 3) -> tf.TensorSpec:
    """The blur tasks' generator input: ``blurred (B, D, H, W, 1)`` float32 (``(B, H, W, 1)``
    with ``ndim=2``), any batch and spatial size."""
    return tf.TensorSpec([None] * (ndim + 1) + [1], tf.float32, name="blurred")


def microscopy_archive(generator: keras.Model, ndim: int = 3) -> keras.export.ExportArchive:
    """``serving_default``: ``blurred (B, D, H, W, 1) float32`` in [0, 1] (``(B, H, W, 1)``
    with ``ndim=2``) -> ``deconvolved``."""
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def serve(blurred):
        return {"deconvolved": generator(blurred, training=False)}

    archive.add_endpoint(
        "serving_default", serve, input_signature=[blurred_spec(ndim)]
    )
    return archive


def export_microscopy_generator(
    generator: keras.Model, psf, export_dir: str | os.PathLike, model_name: str = "saved_model", settings: dict | None = None
) -> dict[str, Path]:
    """Export G as ``generator.keras`` and a new SavedModel version (with ``settings`` as
    ``config.json`` in both), the learned PSF (3-D, or 2-D for images) as TIFF beside them."""
    from tf_otcycle.data.tiff import write_stack

    export_dir = Path(export_dir)
    archive = microscopy_archive(generator, np.ndim(psf))
    paths = _export_generator(generator, archive, export_dir, model_name, settings, extras=(np.asarray(psf),),
                              input_spec=blurred_spec(np.ndim(psf)))
    if paths.get("unchanged"):
        return {**paths, "psf": export_dir / "learned_psf.tif"}
    voxel = (settings or {}).get("voxel_size") if np.ndim(psf) == 3 else None
    write_stack(export_dir / "learned_psf.tif", psf, voxel)  # ImageJ voxel size when known
    return {**paths, "psf": export_dir / "learned_psf.tif"}
