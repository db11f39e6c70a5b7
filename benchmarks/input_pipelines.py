"""Does the input pipeline keep the training step fed? Batches/s of each unpaired tf.data
pipeline alone vs. steps/s of the OT-cycleGAN train step, measured in one process.

Run: ``.venv/bin/python benchmarks/input_pipelines.py`` (writes small synthetic data to a
temporary folder). A ratio well above 1 means the step, not the data, sets the pace.
"""

from __future__ import annotations

import argparse
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
from tf_otcycle.training import adam


def rate(iterator, n: int) -> float:
    next(iterator)  # warm-up (tracing, first reads)
    t = time.perf_counter()
    for _ in range(n):
        next(iterator)
    return n / (time.perf_counter() - t)


def step_rate(model: OTCycleGAN, batch: dict, n: int) -> float:
    step = tf.function(model.train_step)
    step(batch)
    t = time.perf_counter()
    for _ in range(n):
        out = step(batch)
    float(out["g_loss"])
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_mri_dataset(root / "mri", size=64, slices=4, num_clean=8, num_measured=8, num_val=0, num_test=0)
        clean = fastmri.inspect_files(sorted(map(str, (root / "mri" / "clean").glob("*.h5"))), 64)
        measured = fastmri.inspect_files(sorted(map(str, (root / "mri" / "measured").glob("*.h5"))), 64)
        ds = fastmri.unpaired_mri_dataset(clean, measured, 64, 4, 0.04, batch_size=1)
        data_rate = rate(iter(ds), args.steps * 3)
        model = OTCycleGAN(build_unet(2, 2, depth=3, base_filters=16, residual=True), FFTMask(),
                           build_patchgan(2, 2, 16, 3))
        model.compile(adam(1e-4), adam(1e-4))
        train_rate = step_rate(model, next(iter(ds)), args.steps)
        print(f"MRI 64x64 (demo sizes): pipeline {data_rate:7.1f} batches/s, train step {train_rate:6.1f} steps/s, "
              f"ratio {data_rate / train_rate:5.1f}")

        write_microscopy_dataset(root / "mic", shape=(32, 96, 96), num_blurred=3, num_sharp=3, num_val=0, num_test=0,
                                 test_wavelengths_nm=(), psf_shape=(20, 20, 20))
        blurred = tiff.load_domain(sorted(map(str, (root / "mic" / "train" / "blurred").glob("*_blurred.tif"))), 32)
        sharp = tiff.load_domain(sorted(map(str, (root / "mic" / "train" / "sharp").glob("*.tif"))), 32)
        ds = tiff.unpaired_volume_dataset(sharp, blurred, 32)
        data_rate = rate(iter(ds), args.steps * 3)
        psf = PSFConv3D(20, learn_gain=True)
        psf.set_psf(np.ones((20, 20, 20)))
        model = OTCycleGAN(
            build_unet(3, 1, depth=2, base_filters=8, bottleneck_convs=1, activation="relu", output_activation="sigmoid"),
            psf, build_multiscale_patchgan(3, 1, 8, 2, spatial_shape=(32,) * 3, seed=0),
            build_multiscale_patchgan(3, 1, 8, 2, spatial_shape=(32,) * 3, seed=1))
        model.compile(adam(1e-4), adam(1e-4))
        train_rate = step_rate(model, next(iter(ds)), max(5, args.steps // 3))
        print(f"Microscopy 32^3 (demo sizes): pipeline {data_rate:7.1f} batches/s, train step {train_rate:6.1f} steps/s, "
              f"ratio {data_rate / train_rate:5.1f}")


if __name__ == "__main__":
    main()
