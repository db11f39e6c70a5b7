"""The MRI generator's serving signatures: the normalised zero-filled image, or k-space and
its mask with training's normalisation and optional data consistency inside."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from tf_otcycle.export.precision import float32_copy
from tf_otcycle.export.saved_model import export_generator
from tf_otcycle.physics import fft
from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels
from tf_otcycle.physics.operators import CartesianSampling


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


def export_mri_generator(
    generator: keras.Model, export_dir: str | os.PathLike, model_name: str = "saved_model", settings: dict | None = None
) -> dict[str, Path]:
    """Export the MRI generator as ``<export_dir>/generator.keras`` and a new SavedModel
    version, with ``settings`` (:func:`export_settings`) as ``config.json`` in both."""
    spec = tf.TensorSpec([None, None, None, 2], tf.float32, name="image")
    generator = float32_copy(generator)
    return export_generator(generator, mri_archive(generator), Path(export_dir), model_name, settings,
                             input_spec=spec)
