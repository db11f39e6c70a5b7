"""Semi-blind PSF estimation: the emission wavelength of a widefield PSF that best explains
the measurements, given image estimates (NumPy).

The OT-cycleGAN's measurement cycle fits the PSF by minimising ``|y - H G(y)|``. A free
20^3 kernel learned that way from a blind (Gaussian or flat) start does not find the true PSF
(benchmarks/QUALITY.md, "blind PSF"): the misfit is nearly flat in the core's width and a
20^3 crop of a widefield PSF misses a third of its light. Restricted to the physical family
(a scalar Born & Wolf PSF, :func:`~tf_otcycle.physics.psf.born_wolf_psf`, with the
microscope's known NA and immersion index) on a kernel that covers the PSF, the same misfit
has its minimum at or next to the true emission wavelength, also with the estimates of a
generator trained from a wrong PSF. :func:`fit_wavelength` searches that one parameter; the
microscopy task repeats it as G improves (``--psf_fit_epochs``: a fit made with a G trained
against a wrong PSF can land far off, the later ones converge).

The misfit is ``mean|y - g (h * x_hat)|`` over the voxels (the interior, see
:func:`interior`), ``h * x_hat`` the same-size zero-boundary convolution
(:func:`~tf_otcycle.physics.psf.blur`) and ``g`` the L1-optimal gain (:func:`l1_gain`): the
PSF has unit sum, the gain absorbs the two domains' intensity scales.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import optimize

from tf_otcycle.physics.psf import blur, born_wolf_psf


def l1_gain(target: np.ndarray, prediction: np.ndarray) -> float:
    """The gain ``g >= 0`` minimising ``sum|target - g * prediction|`` for ``prediction >= 0``:
    the median of ``target / prediction`` weighted by ``prediction`` (0 when ``prediction`` is 0)."""
    p, t = np.ravel(prediction).astype(np.float64), np.ravel(target).astype(np.float64)
    keep = p > 0
    if not np.any(keep):
        return 0.0
    ratio, weight = t[keep] / p[keep], p[keep]
    order = np.argsort(ratio)
    cumulative = np.cumsum(weight[order])
    return float(max(ratio[order][np.searchsorted(cumulative, cumulative[-1] / 2)], 0.0))


def interior(shape: Sequence[int], kernel: Sequence[int]) -> tuple[slice, ...]:
    """The voxels whose whole PSF support lies inside the volume, on each axis at least twice
    the kernel's size; the whole of a shorter axis (a thin stack has no such interior).

    Near a border the measurement holds light from outside the stack that the zero-boundary
    ``h * x_hat`` lacks, more for a wider PSF: the margin keeps that bias out of the fit.
    """
    return tuple(slice(k // 2, n - (k - 1 - k // 2)) if n >= 2 * k else slice(None) for n, k in zip(shape, kernel))


def interior_values(measurement: np.ndarray, estimate: np.ndarray, psf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(y, h * x_hat)`` over one volume's interior (:func:`interior`), flattened in C order,
    float32; ``ValueError`` when the two volumes differ in shape."""
    if np.shape(measurement) != np.shape(estimate):
        raise ValueError(f"measurement {np.shape(measurement)} and estimate {np.shape(estimate)} differ in shape")
    inside = interior(np.shape(measurement), psf.shape)
    return np.asarray(measurement, np.float32)[inside].ravel(), blur(np.asarray(estimate), psf)[inside].ravel()


def residuals(measurements: Sequence[np.ndarray], estimates: Sequence[np.ndarray], psf: np.ndarray,
              offset: float = 0.0) -> tuple[np.ndarray, float]:
    """``(|y - b - g (h * x_hat)|, g)``: the absolute residuals over the interiors of all
    volumes, concatenated (each volume's in C order, so contiguous runs are z-slabs), and the
    one L1-optimal gain ``g``; ``b`` = ``offset``, the measurements' additive background (H's
    learned one): without it a wider PSF explains a background by spreading light into it.

    Args:
        measurements: volumes ``y``, each ``(D, H, W)``.
        estimates: image estimates ``x_hat`` (ground truth or ``G(y)``), the same shapes.
        psf: ``(kd, kh, kw)`` non-negative, optical axis at ``shape // 2``.
    """
    if len(measurements) != len(estimates) or not measurements:
        raise ValueError(f"expected as many estimates as measurements (>= 1), got {len(estimates)} and "
                         f"{len(measurements)}")
    pairs = [interior_values(y, x, psf) for y, x in zip(measurements, estimates)]
    target = np.concatenate([y for y, _ in pairs]) - np.float32(offset)
    predicted = np.concatenate([p for _, p in pairs])
    gain = l1_gain(target, predicted)
    return np.abs(target - gain * predicted), gain


def measurement_misfit(measurements: Sequence[np.ndarray], estimates: Sequence[np.ndarray], psf: np.ndarray,
                       offset: float = 0.0) -> tuple[float, float]:
    """``(mean|y - b - g (h * x_hat)|, g)`` over the interiors of all volumes (:func:`residuals`)."""
    errors, gain = residuals(measurements, estimates, psf, offset)
    return float(np.mean(errors)), gain


def block_means(errors: np.ndarray, blocks: int) -> np.ndarray:
    """Means of ``errors`` over ``blocks`` contiguous, nearly equal runs (fewer for short arrays)."""
    return np.array([b.mean() for b in np.array_split(errors, min(blocks, len(errors))) if len(b)])


def paired_t(worse: np.ndarray, best: np.ndarray) -> float:
    """The paired t statistic of ``worse - best`` (blockwise misfits): how many standard errors
    the mean difference is above 0 (``inf`` when every block differs alike, 0 for one block)."""
    d = np.asarray(worse, np.float64) - np.asarray(best, np.float64)
    if len(d) < 2:
        return 0.0
    spread, mean = float(np.std(d, ddof=1)), float(np.mean(d))
    return mean / (spread / np.sqrt(len(d))) if spread > 0 else (np.inf if mean > 0 else 0.0)


@dataclasses.dataclass(frozen=True)
class WavelengthFit:
    """The fitted emission wavelength, every misfit evaluated (wavelength -> (misfit, gain))
    and whether the fit identifies the wavelength (``reliable``; ``reason`` says why not)."""

    wavelength: float
    misfits: dict[float, tuple[float, float]]
    reliable: bool = True
    reason: str = ""

    def as_dict(self) -> dict:
        return {"wavelength": self.wavelength, "reliable": self.reliable, "reason": self.reason,
                "misfits": [{"wavelength": w, "misfit": m, "gain": g} for w, (m, g) in sorted(self.misfits.items())]}


def minimax_wavelength(low: float, high: float) -> tuple[float, float]:
    """``(wavelength, worst relative error)``: the wavelength in ``[low, high]`` whose Born & Wolf
    FWHMs (each proportional to the wavelength) are off by the least at worst for a true
    wavelength anywhere in that range: the harmonic mean ``2 low high / (low + high)``, off by
    ``(high - low) / (high + low)`` at either end (400-700 nm: 509 nm, 27 %). What a fit that
    does not identify the wavelength falls back to: a prior, not an estimate."""
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got {low}, {high}")
    return 2 * low * high / (low + high), (high - low) / (high + low)


MIN_T = 3.0  # the grid's ends must be this many standard errors worse than the minimum
BLOCKS = 16  # contiguous runs of residuals (z-slabs) the standard errors are taken over


def reliability(grid: Sequence[float], best: float, blocks: dict[float, np.ndarray], tolerance: float,
                min_t: float = MIN_T) -> tuple[bool, str]:
    """Whether a grid fit identifies its minimum: not on the grid's first or last value, and
    each end's blockwise misfit above the minimum's by ``min_t`` standard errors or more
    (:func:`paired_t`); else ``(False, why)``. One candidate: reliable by assumption."""
    if len(grid) < 2:
        return True, ""
    if best <= grid[0] + tolerance or best >= grid[-1] - tolerance:
        return False, f"the minimum lies at the grid's edge ({best:g} of {grid[0]:g}-{grid[-1]:g})"
    for end in (grid[0], grid[-1]):
        t = paired_t(blocks[end], blocks[best])
        if t < min_t:
            return False, (f"the misfit at {end:g} is not significantly above the minimum's at {best:g} "
                           f"(t = {t:.1f} < {min_t:g} over {len(blocks[best])} blocks)")
    return True, ""


def fit_wavelength(
    measurements: Sequence[np.ndarray],
    estimates: Sequence[np.ndarray],
    voxel_size: Sequence[float],
    wavelengths: Sequence[float],
    numerical_aperture: float = 1.4,
    refractive_index: float = 1.5,
    kernel_size: int = 32,
    tolerance: float = 0.005,
    offset: float = 0.0,
) -> WavelengthFit:
    """The emission wavelength whose Born & Wolf PSF minimises :func:`measurement_misfit`.

    A grid search over ``wavelengths``, then a bounded scalar search between the best grid
    point's neighbours (to ``tolerance``), so a smooth misfit is resolved below the grid step.

    Args:
        measurements, estimates: as in :func:`measurement_misfit`.
        voxel_size: ``(dz, dy, dx)``, the unit of ``wavelengths`` (micrometres in the tasks).
        wavelengths: candidate emission wavelengths (>= 1 distinct values).
        numerical_aperture, refractive_index: the microscope's (known) NA and immersion index.
        kernel_size: the PSF cube's size in voxels: large enough to hold the PSF's halo
            (a 20^3 crop of a widefield PSF biases the fit to wider PSFs; QUALITY.md).
        tolerance: the scalar search's absolute tolerance, in wavelength units.
        offset: the measurements' additive background (:func:`residuals`).

    Returns:
        the :class:`WavelengthFit`; ``reliable`` False (:func:`reliability`) when the minimum
        lies on the grid's edge or the misfit is too flat to single it out.
    """
    grid = sorted({float(w) for w in wavelengths})
    shape = (int(kernel_size),) * 3
    misfits: dict[float, tuple[float, float]] = {}
    blocks: dict[float, np.ndarray] = {}

    def score(w: float) -> float:  # called once per wavelength (refined_minimum caches)
        psf = born_wolf_psf(shape, voxel_size, w, numerical_aperture, refractive_index)
        errors, gain = residuals(measurements, estimates, psf, offset)
        misfits[w], blocks[w] = (float(np.mean(errors)), gain), block_means(errors, BLOCKS)
        return misfits[w][0]

    best, _ = refined_minimum(score, grid, tolerance)
    return WavelengthFit(best, misfits, *reliability(grid, best, blocks, tolerance))


def refined_minimum(score, wavelengths: Sequence[float], tolerance: float) -> tuple[float, dict[float, float]]:
    """The grid point (of ``wavelengths``) of least ``score``, then a bounded scalar search
    between its neighbours (to ``tolerance``), so a smooth score is resolved below the grid
    step. ``score`` is called once per point. Returns ``(best point scored, {point: score})``.

    Raises:
        ValueError: no wavelengths, or one that is not positive.
    """
    grid = sorted({float(w) for w in wavelengths})
    if not grid or grid[0] <= 0:
        raise ValueError(f"wavelengths: expected positive values, got {list(wavelengths)}")
    scores: dict[float, float] = {}

    def cached(w: float) -> float:
        if w not in scores:
            scores[w] = float(score(w))
        return scores[w]

    best = min(grid, key=cached)
    i = grid.index(best)
    if len(grid) > 1:
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        optimize.minimize_scalar(cached, bounds=(lo, hi), method="bounded", options={"xatol": tolerance})
    return min(scores, key=scores.get), scores


def fit_bead(bead: np.ndarray, voxel_size: Sequence[float], wavelengths: Sequence[float],
             numerical_aperture: float = 1.4, refractive_index: float = 1.5,
             tolerance: float = 0.002) -> tuple[float, dict[float, float]]:
    """The emission wavelength whose Born & Wolf PSF best matches a measured PSF.

    ``bead``: ``(D, H, W)`` image of a sub-resolution bead, its peak at ``shape // 2``, at
    ``voxel_size`` (the unit of ``wavelengths``); the PSF is scaled and offset by least
    squares (``bead ~ a h_lambda + b``: any exposure, any background left by the user's
    subtraction) and the wavelength searched as in :func:`refined_minimum`. The measured PSF
    identifies the wavelength that the measurement cycle cannot: it is ``h`` itself.

    Returns:
        ``(wavelength, {wavelength: mean squared residual})`` over the points scored.
    """
    target = np.asarray(bead, np.float64).ravel()

    def score(w: float) -> float:
        h = born_wolf_psf(np.shape(bead), voxel_size, w, numerical_aperture, refractive_index).astype(np.float64)
        design = np.stack([h.ravel(), np.ones_like(target)], 1)
        coef = np.linalg.lstsq(design, target, rcond=None)[0]
        return float(np.mean((design @ coef - target) ** 2))

    return refined_minimum(score, wavelengths, tolerance)
