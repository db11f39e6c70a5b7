"""Exports: ``.keras`` models and versioned SavedModels that TF Serving loads.

SavedModel layout (what TF Serving's model server expects):
``<export_dir>/<model_name>/<version>/saved_model.pb`` + ``variables/``, versions being
increasing integers. Each version is written to a temporary folder beside it and renamed
when complete, so a server polling the folder never sees a half-written version.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import tensorflow as tf

from tf_otcycle.io_utils import atomic_path
from tf_otcycle.physics.fft import channels_to_complex


def export_keras(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model`` as a ``.keras`` file atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


def next_version(model_dir: str | os.PathLike) -> int:
    """1 + the largest integer version folder in ``model_dir`` (1 when none)."""
    model_dir = Path(model_dir)
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()] if model_dir.is_dir() else []
    return max(versions, default=0) + 1


def write_saved_model(archive: keras.export.ExportArchive, model_dir: str | os.PathLike, version: int | None = None) -> Path:
    """Write an ``ExportArchive`` as ``<model_dir>/<version>/`` atomically; return that folder."""
    model_dir = Path(model_dir)
    version = next_version(model_dir) if version is None else int(version)
    target = model_dir / str(version)
    if target.exists():
        raise FileExistsError(f"{target}: version {version} exists; SavedModel versions are never overwritten")
    with atomic_path(target) as tmp:
        archive.write_out(str(tmp), verbose=False)
    return target


def mri_archive(generator: keras.Model) -> keras.export.ExportArchive:
    """``serving_default``: ``image (B, H, W, 2) float32`` (normalised zero-filled image) ->
    ``reconstruction (B, H, W, 2)`` and ``magnitude (B, H, W)``."""
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def serve(image):
        recon = generator(image, training=False)
        return {"reconstruction": recon, "magnitude": tf.abs(channels_to_complex(recon))}

    archive.add_endpoint(
        "serving_default", serve, input_signature=[tf.TensorSpec([None, None, None, 2], tf.float32, name="image")]
    )
    return archive


def export_mri_generator(generator: keras.Model, export_dir: str | os.PathLike, model_name: str = "saved_model") -> dict[str, Path]:
    """Export the MRI generator as ``<export_dir>/generator.keras`` and a new SavedModel version."""
    export_dir = Path(export_dir)
    keras_path = export_keras(generator, export_dir / "generator.keras")
    saved = write_saved_model(mri_archive(generator), export_dir / model_name)
    return {"keras": keras_path, "saved_model": saved}


def microscopy_archive(generator: keras.Model) -> keras.export.ExportArchive:
    """``serving_default``: ``blurred (B, D, H, W, 1) float32`` in [0, 1] -> ``deconvolved``."""
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def serve(blurred):
        return {"deconvolved": generator(blurred, training=False)}

    archive.add_endpoint(
        "serving_default", serve, input_signature=[tf.TensorSpec([None, None, None, None, 1], tf.float32, name="blurred")]
    )
    return archive


def export_microscopy_generator(
    generator: keras.Model, psf, export_dir: str | os.PathLike, model_name: str = "saved_model"
) -> dict[str, Path]:
    """Export G as ``generator.keras`` and a new SavedModel version, the learned PSF as TIFF beside them."""
    from tf_otcycle.data.tiff import write_stack

    export_dir = Path(export_dir)
    keras_path = export_keras(generator, export_dir / "generator.keras")
    saved = write_saved_model(microscopy_archive(generator), export_dir / model_name)
    write_stack(export_dir / "learned_psf.tif", psf)
    return {"keras": keras_path, "saved_model": saved, "psf": export_dir / "learned_psf.tif"}
