"""The blur tasks' (microscopy, 2-D deblurring) serving signature and export: G and the learned
PSF as TIFF beside it."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_otcycle.export.precision import float32_copy
from tf_otcycle.export.saved_model import export_generator


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
    generator: keras.Model, psf, export_dir: str | os.PathLike, model_name: str = "saved_model",
    settings: dict | None = None
) -> dict[str, Path]:
    """Export G as ``generator.keras`` and a new SavedModel version (with ``settings`` as
    ``config.json`` in both), the learned PSF (3-D, or 2-D for images) as TIFF beside them."""
    from tf_otcycle.data.tiff import write_stack

    export_dir = Path(export_dir)
    generator = float32_copy(generator)
    archive = microscopy_archive(generator, np.ndim(psf))
    paths = export_generator(generator, archive, export_dir, model_name, settings, extras=(np.asarray(psf),),
                              input_spec=blurred_spec(np.ndim(psf)))
    if paths.get("unchanged"):
        return {**paths, "psf": export_dir / "learned_psf.tif"}
    voxel = (settings or {}).get("voxel_size") if np.ndim(psf) == 3 else None
    write_stack(export_dir / "learned_psf.tif", psf, voxel)  # ImageJ voxel size when known
    return {**paths, "psf": export_dir / "learned_psf.tif"}
