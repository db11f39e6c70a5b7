"""The formats every export writes: ``.keras`` models, versioned SavedModels for TF Serving,
the settings inference needs (``config.json``) and a digest that tells an unchanged export.

SavedModel layout (what TF Serving's model server expects):
``<export_dir>/<model_name>/<version>/saved_model.pb`` + ``variables/``, versions being
increasing integers. Each version is written to a temporary folder beside it and renamed
when complete, so a server polling the folder never sees a half-written version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_otcycle.export.onnx import ONNX_NAME, export_onnx, onnx_available
from tf_otcycle.io_utils import atomic_path, atomic_write_text


def export_keras(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model`` as a ``.keras`` file atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


def next_version(model_dir: str | os.PathLike) -> int:
    """1 + the largest integer version folder in ``model_dir`` (1 when none)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return 1
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
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


def export_generator(generator, archive, export_dir: Path, model_name: str, settings: dict | None,
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
    return {"signature_name": signature_name,
            "instances": [{k: v[i].tolist() for k, v in arrays.items()} for i in range(n)]}
