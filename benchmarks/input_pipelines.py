"""Does the input pipeline keep the training step fed? Batches/s of each unpaired tf.data
pipeline alone vs. steps/s of the OT-cycleGAN train step, measured in one process.

    .venv/bin/python benchmarks/input_pipelines.py            # demo sizes, every HDF5 reader installed
    .venv-tfio/bin/python benchmarks/input_pipelines.py       # the same on the tfio extra's stack
    .venv/bin/python benchmarks/input_pipelines.py --smoke    # tiny sizes, seconds (run by make test)

It writes small synthetic data to a temporary folder and prints one markdown row per
pipeline (and HDF5 reader: ``h5py``, and ``tensorflow_io`` where the ``tfio`` extra
imports). A ratio well above 1 means the step, not the data, sets the pace (the target at
demo size: >= 5).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_otcycle.data import fastmri, tiff
from tf_otcycle.data.synthetic import write_microscopy_dataset, write_mri_dataset
from tf_otcycle.layers import FFTMask, PSFConv3D
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.models import build_multiscale_patchgan, build_patchgan, build_unet
from tf_otcycle.physics.masks import MaskSpec
from tf_otcycle.training import adam

HEADER = "| pipeline | HDF5 reader | TensorFlow | batches/s | train steps/s | ratio |\n|---|---|---|---|---|---|"


def rate(iterator, n: int) -> float:
    """Items per second of ``next(iterator)`` over ``n`` calls, after one warm-up call."""
    next(iterator)  # warm-up (tracing, first reads)
    t = time.perf_counter()
    for _ in range(n):
        next(iterator)
    return n / (time.perf_counter() - t)


def step_rate(model: OTCycleGAN, batch: dict, n: int) -> float:
    """Train steps per second of ``tf.function(model.train_step)`` on one fixed batch."""
    step = tf.function(model.train_step)
    step(batch)
    t = time.perf_counter()
    for _ in range(n):
        out = step(batch)
    float(out["g_loss"])
    return n / (time.perf_counter() - t)


def readers() -> list[str]:
    """The HDF5 readers installed here: h5py always, tensorflow_io with the tfio extra."""
    return [r for r in fastmri.HDF5_READERS if r == "h5py" or importlib.util.find_spec(r) is not None]


def row(name: str, reader: str, data_rate: float, train_rate: float) -> str:
    return (f"| {name} | {reader} | {tf.__version__} | {data_rate:.1f} | {train_rate:.1f} | "
            f"{data_rate / train_rate:.1f} |")


def mri_rows(root: Path, size: int, steps: int, filters: int = 16) -> list[str]:
    """The unpaired MRI pipeline with each reader against the demo network's step (``filters`` 16)."""
    write_mri_dataset(root / "mri", size=size, slices=4, num_clean=8, num_measured=8, num_val=0, num_test=0)
    clean = fastmri.inspect_files(sorted(map(str, (root / "mri" / "clean").glob("*.h5"))), size)
    measured = fastmri.inspect_files(sorted(map(str, (root / "mri" / "measured").glob("*.h5"))), size)
    model = OTCycleGAN(build_unet(2, 2, depth=4 if filters > 2 else 2, base_filters=filters, residual=True), FFTMask(),
                       build_patchgan(2, 2, filters, 3 if filters > 2 else 1))
    model.compile(adam(1e-4), adam(1e-4))
    out, train_rate = [], None
    for reader in readers():
        ds = fastmri.unpaired_mri_dataset(clean, measured, size, MaskSpec("random", 4, 0.04), batch_size=1,
                                          reader=reader)
        data_rate = rate(iter(ds), steps * 3)
        train_rate = train_rate or step_rate(model, next(iter(ds)), steps)
        out.append(row(f"MRI {size}x{size}", reader, data_rate, train_rate))
    return out


def microscopy_row(root: Path, size: int, steps: int, filters: int = 8) -> str:
    """The unpaired TIFF patch pipeline against the demo network's step (``filters`` 8)."""
    write_microscopy_dataset(root / "mic", shape=(size, 3 * size, 3 * size), num_blurred=3, num_sharp=3, num_val=0,
                             num_test=0, test_wavelengths_nm=(), psf_shape=(9, 9, 9))
    blurred = tiff.load_domain(sorted(map(str, (root / "mic" / "train" / "blurred").glob("*_blurred.tif"))), size)
    sharp = tiff.load_domain(sorted(map(str, (root / "mic" / "train" / "sharp").glob("*.tif"))), size)
    ds = tiff.unpaired_volume_dataset(sharp, blurred, size)
    data_rate = rate(iter(ds), steps * 3)
    kernel = min(20, size)  # the demo's 20^3 PSF; smaller for the smoke run's patches
    psf = PSFConv3D(kernel, learn_gain=True)
    psf.set_psf(np.ones((kernel,) * 3))
    model = OTCycleGAN(
        build_unet(3, 1, depth=2, base_filters=filters, bottleneck_convs=1, activation="relu",
                   output_activation="sigmoid"),
        psf, build_multiscale_patchgan(3, 1, filters, 2, spatial_shape=(size,) * 3, seed=0),
        build_multiscale_patchgan(3, 1, filters, 2, spatial_shape=(size,) * 3, seed=1))
    model.compile(adam(1e-4), adam(1e-4))
    train_rate = step_rate(model, next(iter(ds)), max(3, steps // 3))
    return row(f"microscopy {size}^3", "-", data_rate, train_rate)


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per rate")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and 2 steps: checks the script runs")
    args = parser.parse_args(argv)
    mri_size, mic_size, steps = (16, 16, 2) if args.smoke else (128, 32, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:  # tiny networks: the same code paths in seconds
            rows = [*mri_rows(Path(tmp), mri_size, steps, 2), microscopy_row(Path(tmp), mic_size, steps, 2)]
        else:
            rows = [*mri_rows(Path(tmp), mri_size, steps), microscopy_row(Path(tmp), mic_size, steps)]
    print(HEADER, *rows, sep="\n")
    return rows


if __name__ == "__main__":
    main()
