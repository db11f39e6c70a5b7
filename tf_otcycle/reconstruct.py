"""Reconstruct fastMRI files with an exported MRI generator.

    python -m tf_otcycle.reconstruct --model=RUN/export/generator.keras --input=file.h5 --output=out.h5

Single- or multi-coil files. A file with a ``mask`` dataset holds an undersampled
acquisition: its zero-filled image is reconstructed under its own mask on the crop (exact
when its k-space is ``--crop_size`` columns wide, the nearest-frequency approximation
otherwise). A fully sampled file is undersampled retrospectively on the crop with the
per-file mask of the evaluation (``--mask_type``, ``--acceleration``, ``--center_fraction``,
seed from the file name). ``--data_consistency`` then puts the measured k-space lines back
into the output.
The output is a fastMRI-style file: ``reconstruction`` float32 ``(slices, crop, crop)``
(magnitude, file units) with the input's attributes. ``--input`` may be a folder or a glob
pattern, then ``--output`` is a folder. Existing outputs are kept unless ``--overwrite``;
``--skip_existing`` continues a folder run that stopped. ``--flagfile=FILE`` reads flags.
Crop size, mask type, acceleration and centre fraction default to those saved in the model's
``config.json`` (written by the export beside ``generator.keras``); flags override them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from tf_otcycle.io_utils import atomic_path


def reconstruct_file(generator, path: str, crop_size: int, sampling, data_consistency: bool, batch_size: int = 8,
                     progress=None) -> dict:
    """Reconstruct every slice of one file; returns ``{"reconstruction", "attrs", "retrospective"}``.

    ``sampling`` (:class:`tf_otcycle.physics.masks.MaskSpec`): the masks of a fully sampled
    file's retrospective undersampling, drawn with its file seed; a file holding its own
    ``mask`` is reconstructed from its zero-filled image under that mask on the crop
    (:func:`tf_otcycle.data.fastmri.acquired_mask`, as in training)."""
    import tensorflow as tf

    from tf_otcycle.data import fastmri
    from tf_otcycle.export import compiled_reconstruct_kspace
    from tf_otcycle.physics.fft import fft2c

    info = fastmri.inspect_file(path, crop_size)
    images, _ = fastmri.read_volume(info, crop_size)  # zero-filled when the file holds a mask
    mask = fastmri.measurement_mask(info, sampling, crop_size)  # applied in the graph
    out = []
    reconstruct = compiled_reconstruct_kspace(generator)
    for i in range(0, len(images), batch_size):
        k = fft2c(tf.constant(images[i : i + batch_size]))
        n = int(k.shape[0])
        result = reconstruct(k, tf.constant(np.repeat(mask[None], n, 0)), tf.fill([n], data_consistency))
        out.append(result["magnitude"].numpy())
        if progress is not None:
            progress(n)
    return {"reconstruction": np.concatenate(out).astype(np.float32), "attrs": info.attrs,
            "retrospective": not info.has_mask, "mask": mask}


def write_reconstruction(path: Path, result: dict, source: str, settings: dict) -> None:
    """Write a fastMRI-style reconstruction file atomically."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("reconstruction", data=result["reconstruction"])
        for key, value in result["attrs"].items():
            f.attrs[key] = value
        f.attrs["source_file"] = os.path.basename(source)
        f.attrs["retrospective_undersampling"] = bool(result["retrospective"])
        for key, value in settings.items():
            f.attrs[key] = value
        if result["retrospective"]:
            f.create_dataset("mask", data=result["mask"])


# Used when neither the command line nor the model's config.json gives a setting.
DEFAULTS = {"crop_size": 320, "mask_type": "random", "acceleration": 4.0, "center_fraction": 0.04}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tf_otcycle.reconstruct", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exported MRI generator (.keras)")
    parser.add_argument("--input", required=True, help="fastMRI .h5 file, a folder of them, or a glob ('scans/*.h5')")
    parser.add_argument("--output", required=True, help="output .h5 file (a folder when --input gives several files)")
    parser.add_argument("--crop_size", type=int, default=None,
                        help="centre crop; default: the model's config.json, else 320")
    parser.add_argument("--mask_type", choices=["random", "equispaced"], default=None,
                        help="retrospective mask; default: the model's config.json, else random")
    parser.add_argument("--acceleration", type=float, default=None, help="default: the model's config.json, else 4")
    parser.add_argument("--center_fraction", type=float, default=None,
                        help="default: the model's config.json, else 0.04")
    parser.add_argument("--data_consistency", action="store_true", help="put measured k-space lines back")
    from tf_otcycle.io_utils import add_output_options, parse_command_line, plan_outputs

    add_output_options(parser)
    args = parse_command_line(parser, argv)  # --flagfile=FILE: one --name=value per line, as for training

    from tf_otcycle.export import read_export_config

    try:
        exported = read_export_config(args.model)
    except ValueError as e:
        parser.error(f"--model: {e}")
    if exported and exported.get("task", "mri") != "mri":
        parser.error(f"--model: {args.model} was exported by the {exported['task']!r} task, not MRI")
    for name, fallback in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, exported.get(name, fallback))

    try:
        pairs = plan_outputs(args.input, args.output, (".h5",), args.overwrite, args.skip_existing)
    except ValueError as e:
        parser.error(str(e))
    if not pairs:
        print("Nothing to do: every output exists (--skip_existing).")
        return 0

    import keras

    from tf_otcycle.physics.masks import MaskSpec

    try:
        sampling = MaskSpec(args.mask_type, args.acceleration, args.center_fraction)
    except ValueError as e:
        parser.error(f"--{e}")

    import tf_otcycle  # noqa: F401  (registers the custom objects)
    from tf_otcycle.data.fastmri import FastMRIFormatError, inspect_file

    try:
        generator = keras.saving.load_model(args.model, safe_mode=True)  # no arbitrary code (Lambda) from a file
    except Exception as e:
        parser.error(f"--model: cannot load {args.model} ({type(e).__name__}: {e})")
    if len(generator.input_shape) != 4 or generator.input_shape[-1] != 2:
        parser.error(f"--model: {args.model} takes inputs {generator.input_shape}, not (batch, H, W, 2) MRI images")
    try:
        infos = [inspect_file(p, args.crop_size) for p, _ in pairs]
    except FastMRIFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from tf_otcycle.models import input_multiple, padded

    multiple = input_multiple(generator)
    if args.crop_size % multiple:  # the network pools: pad its input, crop its output back
        print(f"crop {args.crop_size} is not a multiple of the network's stride {multiple}: each slice is padded to "
              f"{-(-args.crop_size // multiple) * multiple} for the network and cropped back", flush=True)
        generator = padded(generator, multiple)
    source = "model's config.json" if exported else "defaults"
    print(f"crop {args.crop_size}, x{args.acceleration:g}, {args.center_fraction:g} centre, {args.mask_type} masks "
          f"(flags, else the {source})", flush=True)
    total = sum(i.num_slices for i in infos)
    bar = keras.utils.Progbar(total, unit_name="slice")
    settings = {"acceleration": args.acceleration, "center_fraction": args.center_fraction,
                "mask_type": args.mask_type, "data_consistency": args.data_consistency, "crop_size": args.crop_size}
    for i, (inp, out) in enumerate(pairs, 1):
        result = reconstruct_file(generator, str(inp), args.crop_size, sampling, args.data_consistency,
                                  progress=lambda n: bar.add(n))
        write_reconstruction(out, result, str(inp), settings)
        print(f"\n[{i}/{len(pairs)}] {inp} -> {out} {result['reconstruction'].shape}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
