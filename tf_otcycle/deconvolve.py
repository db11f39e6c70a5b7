"""Whole-volume deconvolution of TIFF stacks (or 2-D images) with an exported generator.

    python -m tf_otcycle.deconvolve --model=RUN/export/generator.keras --input=in.tif --output=out.tif

The input is normalised to [0, 1] (min-max, as in training), deconvolved tile by tile with
smooth blending (:mod:`tf_otcycle.tiling`) and written as float32 in that normalised range,
or with ``--output_dtype=input`` rescaled to the input's range and dtype. ``--input`` may be
a folder or a glob pattern, then ``--output`` is a folder. An existing output is kept unless
``--overwrite``; ``--skip_existing`` continues a folder run that stopped. A ``--tile`` that
the network cannot pool is rounded up. ``--flagfile=FILE`` reads flags.
The tile size and overlap default to those saved in the model's ``config.json`` (written by
the export beside ``generator.keras``); flags override them. A model of the 2-D deblurring
task (``config.json`` task ``deblur2d``) reads and writes 2-D TIFF or PNG images.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def deconvolve_volume(generator, volume: np.ndarray, tile: int = 64, overlap: int = 16, batch_size: int = 1) -> np.ndarray:
    """Normalise a raw stack ``(D, H, W)`` (or image ``(H, W)``) to [0, 1] and deconvolve it; float32."""
    from tf_otcycle.data.tiff import normalize
    from tf_otcycle.models import predictor
    from tf_otcycle.tiling import predict_tiled

    return predict_tiled(predictor(generator), normalize(volume), tile, overlap, batch_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tf_otcycle.deconvolve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exported generator (.keras)")
    parser.add_argument("--input", required=True, help="TIFF stack (or 2-D image), a folder of them, or a glob")
    parser.add_argument("--output", required=True, help="output TIFF (a folder when --input gives several files)")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile size; default: the model's config.json (the training patch size), else 64")
    parser.add_argument("--overlap", type=int, default=None,
                        help="overlap between tiles; default: the model's config.json, else tile // 4")
    parser.add_argument("--batch_size", type=int, default=1, help="tiles per network call")
    parser.add_argument("--channel", type=int, default=None,
                        help="channel (0-based) of multi-channel stacks (axes ZCYX etc.); single-channel stacks need none")
    parser.add_argument("--output_dtype", choices=["float32", "input"], default="float32",
                        help="float32 in the normalised [0, 1] range, or the input's dtype and range")
    from tf_otcycle.io_utils import add_output_options, parse_command_line, plan_outputs

    add_output_options(parser)
    args = parse_command_line(parser, argv)  # --flagfile=FILE: one --name=value per line, as for training

    from tf_otcycle.export import read_export_config

    try:
        exported = read_export_config(args.model)
    except ValueError as e:
        parser.error(f"--model: {e}")
    task = exported.get("task", "microscopy")
    if task not in ("microscopy", "deblur2d"):
        parser.error(f"--model: {args.model} was exported by the {task!r} task, not microscopy or deblur2d")
    if args.tile is None:
        args.tile = int(exported.get("tile", 64))
        if args.overlap is None and "overlap" in exported:
            args.overlap = int(exported["overlap"])

    try:
        pairs = plan_outputs(args.input, args.output, (".tif", ".tiff", ".png"), args.overwrite, args.skip_existing)
    except ValueError as e:
        parser.error(str(e))
    if not pairs:
        print("Nothing to do: every output exists (--skip_existing).")
        return 0
    if args.overlap is None:
        args.overlap = args.tile // 4
    if args.tile < 4 or not 0 <= args.overlap < args.tile:
        parser.error("--tile must be >= 4 and 0 <= --overlap < --tile")

    import keras

    import tf_otcycle  # noqa: F401  (registers the custom objects)
    from tf_otcycle.data import images, tiff
    from tf_otcycle.data.tiff import TiffFormatError

    # 2-D images (TIFF or PNG) for the deblurring task, stacks otherwise
    if task == "deblur2d":
        read, write = images.read_image, images.write_image
    else:
        read, write = (lambda p: tiff.read_stack(p, args.channel)), tiff.write_stack
    if args.output_dtype == "float32" and any(out.suffix.lower() == ".png" for _, out in pairs):
        parser.error("--output: PNG holds integers; add --output_dtype=input or write .tif")

    try:
        generator = keras.saving.load_model(args.model, safe_mode=True)  # no arbitrary code (Lambda) from a file
    except Exception as e:
        parser.error(f"--model: cannot load {args.model} ({type(e).__name__}: {e})")
    expected = len(generator.input_shape) - 2  # spatial axes the model takes: 3 (stacks) or 2 (images)
    if generator.input_shape[-1] != 1 or expected not in (2, 3):
        parser.error(f"--model: {args.model} takes inputs {generator.input_shape}, not single-channel images or stacks")
    from tf_otcycle.models import input_multiple

    multiple = input_multiple(generator)
    if args.tile % multiple:  # tiles are the network's inputs: round up to a size it can pool
        tile = -(-args.tile // multiple) * multiple
        print(f"--tile {args.tile} is not a multiple of the network's stride {multiple}: using {tile}", flush=True)
        args.tile = tile
    source = "model's config.json" if exported else "defaults"
    print(f"tile {args.tile}, overlap {args.overlap} (flags, else the {source})", flush=True)
    for i, (inp, out) in enumerate(pairs, 1):
        try:
            raw = read(inp)
            if raw.ndim != expected:
                raise TiffFormatError(f"{inp}: a {raw.ndim}-D input, but the model takes {expected}-D inputs")
        except TiffFormatError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        result = deconvolve_volume(generator, raw, args.tile, args.overlap, args.batch_size)
        if args.output_dtype == "input":
            lo, hi = float(raw.min()), float(raw.max())
            result = result * (hi - lo) + lo
            if np.issubdtype(raw.dtype, np.integer):
                info = np.iinfo(raw.dtype)
                result = np.clip(np.round(result), info.min, info.max)
            result = result.astype(raw.dtype)
        if task == "deblur2d":
            write(out, result)
        else:  # the input's voxel size (axes ZYX, spacing, resolution) carried to the output; a plane stays 2-D
            write(out, result[0] if result.shape[0] == 1 else result, tiff.read_voxel_size(inp))
        print(f"[{i}/{len(pairs)}] {inp} {raw.shape} -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
