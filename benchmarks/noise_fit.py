"""How well does the noise estimate fit the true noise of a benchmark set? (issue #25)

The OT-cycleGAN draws Poisson-Gaussian noise, ``Var(y) = a E[y] + b``, estimated from each
blurred stack alone (:func:`tf_otcycle.physics.noise.estimate_poisson_gaussian`), on its
simulated measurements ``Hx``. A benchmark set (``benchmarks/microscopy_sets.py``) has what a
user lacks: each blurred stack's ground truth and the true PSF. The noise-free measurement
is then ``s = c0 + c1 (h * x) + c2 (h * 1)`` (least squares; ``h * 1``: a background of the
sample under the zero boundary) and ``y - s`` is the noise itself. Printed per stack: the
measured variance of ``y - s`` over the estimate's ``a s + b`` in each quartile of ``s``
(and in its top 5 %); 1 is a perfect fit, below 1 an estimate that is too noisy.

    .venv/bin/python benchmarks/noise_fit.py --set=data/quality/sets/real_nuclei
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tf_otcycle.data import tiff
from tf_otcycle.physics.noise import affine_match, estimate_poisson_gaussian
from tf_otcycle.physics.psf import blur

EDGES = (0.0, 0.25, 0.5, 0.75, 0.95, 1.0)  # quantiles of the noise-free signal


def noise_free(y: np.ndarray, gt: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """``c0 + c1 (h * gt) + c2 (h * 1)`` fitted to ``y`` by least squares."""
    return affine_match(blur(gt, psf), y, blur(np.ones_like(gt), psf))


def fit_ratios(y: np.ndarray, signal: np.ndarray, a: float, b: float) -> list[float]:
    """Measured over modelled noise variance in the ``EDGES`` quantile bins of ``signal``."""
    residual2 = (y - signal) ** 2
    model = np.maximum(a * np.maximum(signal, 0.0) + b, 1e-12)
    bounds = np.quantile(signal, EDGES)
    ratios = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        inside = (signal >= lo) & (signal <= hi)
        ratios.append(float(residual2[inside].mean() / model[inside].mean()))
    return ratios


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", required=True, help="a folder written by benchmarks/microscopy_sets.py")
    args = parser.parse_args(argv)
    root = Path(args.set)
    paths = sorted(root.glob("train/blurred/*_blurred.tif")) + sorted(root.glob("val/*_blurred.tif"))
    if not paths:
        raise SystemExit(f"{root}: no train/blurred/*_blurred.tif or val/*_blurred.tif")
    psf = tiff.read_stack(root / "psf.tif").astype(np.float64)
    psf /= psf.sum()
    labels = ", ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(EDGES[:-1], EDGES[1:]))
    print(f"{root.name}: measured / modelled noise variance per quantile bin of the noise-free signal ({labels})")
    for path in paths:
        y = tiff.normalize(tiff.read_stack(path))
        gt = tiff.normalize(tiff.read_stack(tiff.gt_path_for(path)))
        a, b = estimate_poisson_gaussian([y])
        ratios = fit_ratios(y, noise_free(y, gt, psf), a, b)
        print(f"  {path.parent.name}/{path.name}: a={a:.4g} b={b:.3g}  " + " ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
