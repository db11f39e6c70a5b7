"""Which PSF does the measurement cycle prefer? The blind-PSF diagnostic of benchmarks/QUALITY.md.

With G held fixed (``--cycle_gradients=split``), the measurement cycle fits the PSF by
minimising ``mean|y - g (h * x_hat)|`` with ``x_hat = G(y)``. This script evaluates that
misfit (``g`` the L1-optimal gain) for candidate PSFs: Born & Wolf PSFs at several emission
wavelengths (NA and n fixed), cropped to each ``--kernel_sizes`` cube, and Gaussians. With
``x_hat`` the ground truth (``NAME_gt`` beside each blurred file, where every file has one)
it shows what the data can identify at best; with ``--generator`` (a trained
``generator.keras``) what the cycle sees in training, on any blurred stacks. If the
smallest misfit is not at the true PSF, the measurement cycle pulls the learned PSF away
from it. ``--misfit=l2`` scores the mean squared residual after a least-squares gain *and*
background (``y ~ g h * x_hat + b``): with the ground truth, whether a noise-level misfit
identifies the wavelength at all when the camera adds an offset (ABLATION_microscopy.md).

Run (after ``python benchmarks/quality.py --application=microscopy``, which writes the data
and the trained generators)::

    .venv/bin/python benchmarks/psf_identifiability.py \
        --blurred_files='data/quality/microscopy/train/blurred/*_blurred.tif' \
        [--generator=runs/quality/microscopy/seed0/ot_cyclegan/generator.keras]
"""

from __future__ import annotations

import argparse
import glob

import numpy as np

from tf_otcycle.data import tiff
from tf_otcycle.io_utils import exists
from tf_otcycle.physics.psf import born_wolf_psf, gaussian_psf
from tf_otcycle.physics.psf_fit import interior_values, measurement_misfit
from tf_otcycle.tasks.microscopy import DEFAULT_VOXEL_SIZE, triple


def candidates(sizes, wavelengths_nm, voxel_size, numerical_aperture, refractive_index) -> dict[str, np.ndarray]:
    out = {}
    for size in sizes:
        for w in wavelengths_nm:
            out[f"Born & Wolf {w:g} nm, {size}^3"] = born_wolf_psf((size,) * 3, voxel_size, w / 1000,
                                                                 numerical_aperture, refractive_index)
        out[f"Gaussian sigma 2,1,1 voxels (--psf_init=gaussian), {size}^3"] = gaussian_psf((size,) * 3, (2, 1, 1))
    return out


def least_squares_misfit(measurements, estimates, psf) -> tuple[float, float, float]:
    """``(mean (y - g h * x_hat - b)^2, g, b)`` over the volumes' interiors, with each volume's own
    least-squares gain ``g`` and background ``b`` (the stacks are normalised one by one); the
    returned ``g`` and ``b`` are their means over the volumes."""
    squares, gains, backgrounds = [], [], []
    for y, x in zip(measurements, estimates):
        target, p = (v.astype(np.float64) for v in interior_values(y, x, psf))
        design = np.stack([p, np.ones_like(p)], axis=1)
        (gain, background), *_ = np.linalg.lstsq(design, target, rcond=None)
        squares.append((target - design @ (gain, background)) ** 2)
        gains.append(gain)
        backgrounds.append(background)
    return float(np.mean(np.concatenate(squares))), float(np.mean(gains)), float(np.mean(backgrounds))


def misfit_cell(misfit: str, measurements, estimates, psf) -> tuple[float, str]:
    """The misfit ``--misfit`` names and its table cell."""
    if misfit == "l2":
        mse, gain, background = least_squares_misfit(measurements, estimates, psf)
        return mse, f"{mse:.6g} (g {gain:.2f}, b {background:.3f})"
    value, gain = measurement_misfit(measurements, estimates, psf)
    return value, f"{value:.5f} (g {gain:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blurred_files", required=True,
                        help="glob of blurred stacks (NAME_gt.tif beside each: one more column)")
    parser.add_argument("--channel", type=int, help="channel (0-based) of multi-channel stacks")
    parser.add_argument("--generator", help="a trained generator.keras: x_hat = G(y) as well as the ground truth")
    parser.add_argument("--num_files", type=int, default=3)
    parser.add_argument("--kernel_sizes", default="20,32")
    parser.add_argument("--wavelengths", default="400,450,500,550,600", help="emission wavelengths in nm")
    parser.add_argument("--voxel_size", default=DEFAULT_VOXEL_SIZE, help="dz,dy,dx in micrometres")
    parser.add_argument("--numerical_aperture", type=float, default=1.4)
    parser.add_argument("--refractive_index", type=float, default=1.5)
    parser.add_argument("--patch_size", type=int, default=32, help="tile size of G's inference")
    parser.add_argument("--misfit", choices=("l1", "l2"), default="l1",
                        help="l1: the measurement cycle's mean|y - g h * x_hat| (L1-optimal gain); l2: the mean "
                             "squared residual after a least-squares gain and background")
    args = parser.parse_args()

    files = sorted(glob.glob(args.blurred_files))[: args.num_files]
    if not files:
        raise SystemExit(f"--blurred_files={args.blurred_files!r} matches no file")
    measurements = [tiff.normalize(tiff.read_stack(f, args.channel)) for f in files]
    estimates = {}
    if all(exists(tiff.gt_path_for(f)) for f in files):
        estimates["ground truth"] = [tiff.normalize(tiff.read_stack(tiff.gt_path_for(f), args.channel)) for f in files]
    if args.generator:
        import keras

        from tf_otcycle.models import predictor
        from tf_otcycle.tiling import predict_tiled

        generator = keras.saving.load_model(args.generator, compile=False)
        estimates["G(y)"] = [predict_tiled(predictor(generator), y, args.patch_size, args.patch_size // 4)
                             for y in measurements]
    if not estimates:
        raise SystemExit(f"{files[0]}: no ground truth {tiff.gt_path_for(files[0])} beside it; give --generator")
    psfs = candidates([int(s) for s in args.kernel_sizes.split(",")], [float(w) for w in args.wavelengths.split(",")],
                      triple(args.voxel_size, "voxel_size"), args.numerical_aperture, args.refractive_index)
    names = list(estimates)
    what = ("mean (y - g h * x_hat - b)^2 (g, b: least squares per volume)" if args.misfit == "l2"
            else "mean|y - g h * x_hat| (g: L1-optimal gain)")
    print(f"{len(files)} files ({files[0]} ...); {what}\n")
    print("| candidate PSF | " + " | ".join(f"x_hat = {n}" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    values: dict[str, list[float]] = {}
    for label, psf in psfs.items():
        cells = [misfit_cell(args.misfit, measurements, estimates[n], psf) for n in names]
        values[label] = [v for v, _ in cells]
        print(f"| {label} | " + " | ".join(text for _, text in cells) + " |", flush=True)
    for i, n in enumerate(names):
        print(f"\nsmallest with x_hat = {n}: {min(values, key=lambda label: values[label][i])}")


if __name__ == "__main__":
    main()
