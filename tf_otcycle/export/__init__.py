"""Exports: ``.keras`` models and versioned SavedModels that TF Serving loads.

One module per concept: :mod:`.saved_model` (the formats, settings and digest),
:mod:`.onnx`, :mod:`.precision` (exports compute in float32, also of a network trained in
mixed precision), and the serving signatures of each task family, :mod:`.mri` and
:mod:`.blur`; every public name is importable from ``tf_otcycle.export``.

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

from tf_otcycle.export.blur import blurred_spec, export_microscopy_generator, microscopy_archive
from tf_otcycle.export.mri import (
    compiled_reconstruct_kspace,
    export_mri_generator,
    mri_archive,
    reconstruct_kspace,
)
from tf_otcycle.export.onnx import (
    ONNX_EXPORT_TRIES,
    ONNX_NAME,
    OnnxExportError,
    export_onnx,
    onnx_available,
    onnx_mismatch,
    onnx_probe,
    onnx_reference,
)
from tf_otcycle.export.precision import float32_copy
from tf_otcycle.export.saved_model import (
    CONFIG_NAME,
    export_generator,
    export_keras,
    export_settings,
    next_version,
    read_export_config,
    rest_request,
    weights_digest,
    write_saved_model,
)

__all__ = [
    "CONFIG_NAME", "ONNX_EXPORT_TRIES", "ONNX_NAME", "OnnxExportError", "blurred_spec", "compiled_reconstruct_kspace",
    "export_generator", "export_keras", "export_microscopy_generator", "export_mri_generator", "export_onnx",
    "export_settings", "float32_copy", "mri_archive", "microscopy_archive", "next_version", "onnx_available",
    "onnx_mismatch", "onnx_probe", "onnx_reference", "read_export_config", "reconstruct_kspace", "rest_request",
    "weights_digest", "write_saved_model",
]
