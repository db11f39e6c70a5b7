"""Can the measured stacks' power spectrum identify the emission wavelength? (issue #25, item 4)

A widefield PSF's transfer function (OTF) passes no lateral frequency above ``2 NA / lambda``:
beyond it the measured spectrum holds only white noise. Two diagnostics, each needing no
trained network:

* **support**: the lateral frequency where the measured spectrum (summed over z
  frequencies, averaged over rings) meets its noise floor (the median of its outer 20 %),
  against the cutoffs ``2 NA / lambda`` of the candidate wavelengths and the Nyquist
  frequency. When the spectrum reaches the floor far below every cutoff, the support cannot
  tell the wavelengths apart.
* **spectral matching** of the two unpaired domains: the mean power spectra obey
  ``P_y ~ a |OTF_lambda|^2 P_x + c`` if the sharp stacks' structures are like the blurred
  stacks'; the misfit (log-spectra, least squares over cylindrical bins ``(|k_z|, |k_r|)``,
  ``a`` and ``c`` fitted per wavelength) per candidate wavelength.

Run on a benchmark set (``benchmarks/microscopy_sets.py``; the optics from its
``optics.flags``, the voxel size from the stacks)::

    .venv/bin/python benchmarks/psf_spectrum.py --set=data/quality/sets/real_nuclei
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
from scipy import optimize

from tf_otcycle.data import tiff
from tf_otcycle.physics.psf import born_wolf_psf, centre_to


def power_spectrum(volumes: list[np.ndarray], shape: tuple[int, int, int]) -> np.ndarray:
    """Mean ``|FFT|^2`` of the volumes' centres ``shape``, each mean-free and Hann-windowed."""
    window = np.einsum("i,j,k->ijk", *[np.hanning(n + 2)[1:-1] for n in shape])
    spectra = [np.abs(np.fft.fftn((c - c.mean()) * window)) ** 2
               for c in (centre_to(np.asarray(v, np.float64), shape) for v in volumes)]
    return np.mean(spectra, axis=0)


def lateral_rings(shape: tuple[int, int, int], voxel_size) -> tuple[np.ndarray, float]:
    """``(ring, step)``: each ``(ky, kx)`` of an FFT of ``shape`` labelled by its ring of
    ``|k_r|`` (rings one lateral frequency step wide, ``step`` cycles per unit length)."""
    fy, fx = np.fft.fftfreq(shape[1], voxel_size[1]), np.fft.fftfreq(shape[2], voxel_size[2])
    step = max(1 / (shape[1] * voxel_size[1]), 1 / (shape[2] * voxel_size[2]))
    return np.round(np.hypot(fy[:, None], fx[None, :]) / step).astype(int), step


def cylinder_bins(shape: tuple[int, int, int], voxel_size) -> np.ndarray:
    """A bin label per frequency: ``(|k_z| index, |k_r| ring)``."""
    ring, _ = lateral_rings(shape, voxel_size)
    kz = np.abs(np.fft.fftfreq(shape[0]) * shape[0]).round().astype(int)
    return kz[:, None, None] * (ring.max() + 1) + ring[None]


def noise_floor_frequency(spectrum: np.ndarray, voxel_size) -> tuple[float, float]:
    """``(frequency, floor)``: the first ring whose z-summed power is within 2x the floor (the
    median of the outer 20 % of rings' power)."""
    ring, step = lateral_rings(spectrum.shape, voxel_size)
    ring = ring.ravel()
    profile = np.bincount(ring, spectrum.sum(0).ravel()) / np.bincount(ring)
    floor = float(np.median(profile[int(0.8 * len(profile)):]))
    low = np.nonzero(profile[1:] <= 2 * floor)[0]
    return (int(low[0]) + 1 if len(low) else len(profile) - 1) * step, floor


def spectral_misfit(p_y: np.ndarray, p_x: np.ndarray, psf: np.ndarray, labels: np.ndarray) -> float:
    """Weighted least squares of ``log P_y - log(a |OTF|^2 P_x + c)`` over the bins (DC left
    out), ``a, c > 0`` fitted; per bin weight its number of frequencies."""
    transfer = np.abs(np.fft.fftn(np.fft.ifftshift(psf.astype(np.float64)))) ** 2
    labels = labels.ravel()
    counts = np.bincount(labels)
    keep = counts > 0
    keep[0] = False
    measured = np.bincount(labels, p_y.ravel())[keep] / counts[keep]
    model = np.bincount(labels, (transfer * p_x).ravel())[keep] / counts[keep]
    weight = np.sqrt(counts[keep])

    def residual(p):
        return weight * (np.log(np.exp(p[0]) * model + np.exp(p[1])) - np.log(measured))

    start = [np.log(measured[:5].mean() / max(model[:5].mean(), 1e-30)), np.log(measured.min())]
    return float(np.sum(optimize.least_squares(residual, start).fun ** 2) / counts[keep].sum())


def read_optics(path: Path) -> dict[str, float]:
    """``--wavelength`` (nm), ``--numerical_aperture``, ``--refractive_index`` of an ``optics.flags``."""
    pairs = (line.strip()[2:].split("=", 1) for line in path.read_text().splitlines() if line.startswith("--"))
    return {k: float(v) for k, v in pairs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", required=True,
                        help="a benchmark set folder (train/blurred, train/sharp, optics.flags)")
    parser.add_argument("--wavelengths", default="400,450,500,550,600,650,700", help="candidates, nm")
    args = parser.parse_args(argv)
    root = Path(args.set)
    blurred = sorted(glob.glob(f"{root}/train/blurred/*_blurred.tif"))
    sharp = sorted(glob.glob(f"{root}/train/sharp/*_sharp.tif"))
    if not blurred or not sharp or not (root / "optics.flags").is_file():
        raise SystemExit(f"{root}: expected train/blurred/*_blurred.tif, train/sharp/*_sharp.tif and optics.flags")
    optics = read_optics(root / "optics.flags")
    voxel = tiff.read_voxel_size(blurred[0])
    if voxel is None:
        raise SystemExit(f"{blurred[0]}: no voxel size in its metadata")
    ys, xs = [tiff.read_stack(f) for f in blurred], [tiff.read_stack(f) for f in sharp]
    shape = tuple(min(v.shape[i] for v in ys + xs) for i in range(3))
    p_y, p_x = power_spectrum(ys, shape), power_spectrum(xs, shape)
    na, n, true_nm = optics["numerical_aperture"], optics["refractive_index"], optics["wavelength"]
    reach, _ = noise_floor_frequency(p_y, voxel)
    nyquist = 0.5 / max(voxel[1], voxel[2])
    print(f"{root.name}: voxel {voxel} um, {len(ys)} blurred + {len(xs)} sharp stacks cropped to {shape}; "
          f"NA {na:g}, n {n:g}, true {true_nm:g} nm")
    print(f"measured spectrum reaches its noise floor at {reach:.2f} cycles/um; lateral Nyquist {nyquist:.2f}; "
          f"true cutoff 2 NA / lambda {2 * na / (true_nm / 1000):.2f}\n")
    labels = cylinder_bins(shape, voxel)
    print("| wavelength (nm) | cutoff 2 NA / lambda (cycles/um) | spectral misfit |")
    print("|---|---|---|")
    for nm in [float(w) for w in args.wavelengths.split(",")]:
        psf = born_wolf_psf(shape, voxel, nm / 1000, na, n)
        print(f"| {nm:g} | {2 * na / (nm / 1000):.2f} | {spectral_misfit(p_y, p_x, psf, labels):.5f} |", flush=True)


if __name__ == "__main__":
    main()
