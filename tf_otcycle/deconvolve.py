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

Out of core: an ``--input`` that is an OME-Zarr image (NGFF 0.4/0.5), or any ``--output``
ending in ``.zarr``, is deconvolved block by block (``--block`` voxels per axis) with
bounded memory: the input (OME-Zarr or OME-TIFF) is read lazily, its min and max found in
one streaming pass, and the output written as an NGFF 0.5 image with the input's voxel
size (``tf_otcycle.data.ome_zarr``; the optional ``omezarr`` extra).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def deconvolve_volume(generator, volume: np.ndarray, tile: int = 64, overlap: int = 16,
                      batch_size: int = 1) -> np.ndarray:
    """Normalise a raw stack ``(D, H, W)`` (or image ``(H, W)``) to [0, 1] and deconvolve it; float32."""
    from tf_otcycle.data.tiff import normalize
    from tf_otcycle.models import predictor
    from tf_otcycle.tiling import predict_tiled

    return predict_tiled(predictor(generator), normalize(volume), tile, overlap, batch_size)


def deconvolve_lazy(generator, source, output, tile: int = 64, overlap: int = 16, batch_size: int = 1,
                    block: int = 256, output_dtype: str = "float32") -> tuple[int, ...]:
    """Deconvolve a :class:`~tf_otcycle.data.ome_zarr.LazyStack` into a new OME-Zarr image
    ``output``, one block at a time (:func:`tf_otcycle.tiling.predict_blocks`); returns its shape.

    ``output_dtype``: ``"float32"`` (the normalised [0, 1] range) or ``"input"`` (rescaled to
    the input's range, float32 since the stored dtype is not kept lazily)."""
    from tf_otcycle.data import ome_zarr
    from tf_otcycle.models import predictor
    from tf_otcycle.tiling import predict_blocks

    lo, hi = source.min_max()
    span = hi - lo if hi > lo else 1.0
    shape = source.shape
    chunks = tuple(min(n, 64) for n in shape)
    with ome_zarr.writer(output, shape, source.voxel_size, chunks) as sink:
        def add(window, values):  # groups of tiles share their overlaps: accumulate (the image starts at 0)
            sink[window] = sink[window] + (values * span if output_dtype == "input" else values)

        predict_blocks(predictor(generator), lambda w: (source[w] - lo) / span, add, shape, tile, overlap,
                       block, batch_size)
        if output_dtype == "input":  # the offset once, after every tile's weighted sum is complete
            for window in ome_zarr.blocks(shape, chunks):
                sink[window] = sink[window] + lo
    return shape


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
                        help="channel (0-based) of multi-channel stacks (axes ZCYX etc.); single-channel stacks need "
                             "none")
    parser.add_argument("--output_dtype", choices=["float32", "input"], default="float32",
                        help="float32 in the normalised [0, 1] range, or the input's dtype and range")
    parser.add_argument("--block", type=int, default=256,
                        help="out of core (OME-Zarr): output block size per axis held in memory at a time")
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

    from tf_otcycle.data import ome_zarr

    lazy = ome_zarr.is_ome_zarr(args.input) or args.output.rstrip("/").endswith(".zarr")
    if lazy:
        if not args.output.rstrip("/").endswith(".zarr"):
            parser.error(f"--output: {args.output}: an OME-Zarr input is written as OME-Zarr (a path ending in .zarr)")
        if not os.path.exists(args.input):
            parser.error(f"--input: {args.input} does not exist")
        if os.path.exists(args.output) and not args.overwrite:
            if args.skip_existing:
                print("Nothing to do: the output exists (--skip_existing).")
                return 0
            parser.error(f"--output: {args.output} exists (add --overwrite to replace it)")
        if task != "microscopy":
            parser.error("--input: OME-Zarr (out of core) is for 3-D microscopy models")
        if args.block < 1:
            parser.error("--block must be >= 1")
        pairs = []
    else:
        try:
            pairs = plan_outputs(args.input, args.output, (".tif", ".tiff", ".png"), args.overwrite,
                                 args.skip_existing)
        except ValueError as e:
            parser.error(str(e))
        if not pairs:
            print("Nothing to do: every output exists (--skip_existing).")
            return 0
    if args.overlap is None:
        args.overlap = args.tile // 4
    if args.tile < 4 or not 0 <= args.overlap <= args.tile // 2:
        parser.error("--tile must be >= 4 and 0 <= --overlap <= --tile // 2")

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
    if lazy:
        try:
            stack = ome_zarr.open_stack(args.input, args.channel)
            shape = deconvolve_lazy(generator, stack, args.output, args.tile, args.overlap, args.batch_size,
                                    args.block, args.output_dtype)
        except (ome_zarr.OmeZarrFormatError, ImportError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"[1/1] {args.input} {shape} -> {args.output} (OME-Zarr, blocks of {args.block})", flush=True)
        return 0
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
