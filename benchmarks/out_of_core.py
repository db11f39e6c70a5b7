"""Out-of-core deconvolution: peak memory and throughput of ``python -m tf_otcycle.deconvolve``
on an OME-Zarr volume larger than the memory it is allowed.

    .venv/bin/python benchmarks/out_of_core.py --gib=4          # a 4 GiB float32 volume (~20 min on 2 cores)
    .venv/bin/python benchmarks/out_of_core.py --smoke          # 4 MiB, seconds (run by make test)

It writes a synthetic float32 OME-Zarr volume of ``--gib`` GiB chunk by chunk (never whole
in memory), exports an untrained generator of the microscopy demo's architecture
(``train/configs/microscopy_demo.flags``: 3-D U-Net, 8 filters, depth 2; speed does not depend
on the weights), runs the deconvolution command in a child process and reports the child's
peak resident memory (``ru_maxrss``) and voxels per second, as a markdown row.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("| volume (z, y, x) | GiB float32 | tile / overlap / block | seconds | Mvoxels/s | peak RSS (GiB) |\n"
          "|---|---|---|---|---|---|")


def volume_shape(gib: float) -> tuple[int, int, int]:
    """The smallest ``(D, H, W)`` with H = W = 4 D (a wide field of view) of at least ``gib`` GiB of float32."""
    d = max(8, int(np.ceil((gib * 2**30 / 4 / 16) ** (1 / 3))))
    return (d, 4 * d, 4 * d)


def write_volume(path: Path, shape: tuple[int, ...], chunk: int = 64) -> None:
    """Blurred random point sources, written one chunk at a time as an OME-Zarr image."""
    from scipy.ndimage import gaussian_filter

    from tf_otcycle.data import ome_zarr

    rng = np.random.default_rng(0)
    with ome_zarr.writer(path, shape, (0.2, 0.1, 0.1), (chunk,) * 3) as sink:
        for window in ome_zarr.blocks(shape, (chunk,) * 3):
            size = [s.stop - s.start for s in window]
            points = (rng.random(size) > 0.999).astype(np.float32)
            sink[window] = gaussian_filter(points, (2.0, 1.0, 1.0)) + 0.01 * rng.random(size, np.float32)


def export_demo_generator(export_dir: Path, tile: int, overlap: int) -> Path:
    """An untrained generator of the microscopy demo's architecture, exported as training exports it."""
    import keras

    from tf_otcycle.export import export_microscopy_generator, export_settings
    from tf_otcycle.models import build_unet

    keras.utils.set_random_seed(0)
    generator = build_unet(3, 1, depth=2, base_filters=8, bottleneck_convs=1, activation="relu",
                           output_activation="sigmoid", name="generator")
    settings = export_settings("microscopy", tile=tile, overlap=overlap, voxel_size=[0.2, 0.1, 0.1])
    return export_microscopy_generator(generator, np.full((3, 3, 3), 1 / 27, np.float32), export_dir,
                                       settings=settings)["keras"]


def run(gib: float, tile: int, overlap: int, block: int, batch_size: int) -> str:
    """Write the volume, deconvolve it in a child process; the markdown row."""
    shape = volume_shape(gib)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tmp = Path(tmp)
        write_volume(tmp / "in.zarr", shape)
        model = export_demo_generator(tmp / "export", tile, overlap)
        command = [sys.executable, "-m", "tf_otcycle.deconvolve", f"--model={model}", f"--input={tmp / 'in.zarr'}",
                   f"--output={tmp / 'out.zarr'}", f"--block={block}", f"--batch_size={batch_size}"]
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                       stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    voxels = float(np.prod(shape))
    return (f"| {shape} | {voxels * 4 / 2**30:.3f} | {tile} / {overlap} / {block} | {seconds:.0f} | "
            f"{voxels / seconds / 1e6:.2f} | {peak:.2f} |")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=4.0, help="size of the float32 volume in GiB")
    parser.add_argument("--tile", type=int, default=32, help="tile (the demo's patch size)")
    parser.add_argument("--overlap", type=int, default=8, help="tile overlap (the demo's patch_size // 4)")
    parser.add_argument("--block", type=int, default=256, help="--block of the command")
    parser.add_argument("--batch_size", type=int, default=8, help="tiles per network call")
    parser.add_argument("--smoke", action="store_true", help="a 4 MiB volume: checks the script runs")
    args = parser.parse_args(argv)
    gib = 4 / 1024 if args.smoke else args.gib
    result = run(gib, args.tile, args.overlap, 64 if args.smoke else args.block, args.batch_size)
    print(HEADER, result, sep="\n")
    return result


if __name__ == "__main__":
    main()
