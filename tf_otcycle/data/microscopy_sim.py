"""Simulated widefield microscopy of microtubule networks (paper appendix D.2.2).

Ground truth: thin, smooth random 3-D curves (a persistent random walk per filament, drawn
with sub-voxel Gaussian splats), random density and brightness. Both the ground truth and
its blurred version are scaled so that the blurred volume peaks (99.9th percentile) at
``peak`` gray levels (default 255), as an 8-bit camera would see it. Measurement:

    y = m * Poisson((h * x) / m) + N(0, sigma^2)

with h the Born & Wolf PSF (NA 1.4, n 1.5 by default). ``m`` is the gain in gray levels per
detected photon, so the Poisson term has mean ``h * x`` and variance ``m (h * x)``; the paper's
m = 7 with a 255 peak means about 36 photons at the brightest voxel. ``sigma`` (paper: 3) is
the read noise in gray levels. Noise never changes the mean: ``E[y] = h * x``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tf_otcycle.physics.psf import blur, born_wolf_psf


def microtubules(
    shape: Sequence[int],
    rng: np.random.RandomState,
    num_filaments: int | None = None,
    peak: float = 255.0,
    voxel_aspect: float = 2.0,
) -> np.ndarray:
    """Ground-truth volume ``(D, H, W)`` float32 in ``[0, peak]`` of random thin filaments.

    Args:
        shape: ``(D, H, W)``.
        rng: random state (the volume is a pure function of it).
        num_filaments: filament count; default random, proportional to the lateral area.
        peak: brightest value.
        voxel_aspect: ``dz / dx``; filaments are drawn isotropic in physical space.
    """
    d, h, w = (int(s) for s in shape)
    if num_filaments is None:
        num_filaments = int(rng.uniform(0.7, 1.3) * h * w / 120) + 4
    vol = np.zeros((d, h, w), np.float64)
    grid = np.mgrid[-2:3, -2:3, -2:3].reshape(3, -1).T  # 5^3 splat neighbourhood
    for _ in range(num_filaments):
        pos = np.array([rng.uniform(0, d), rng.uniform(0, h), rng.uniform(0, w)])
        direction = rng.standard_normal(3)
        direction[0] *= 0.3  # mostly lateral, as microtubules near a coverslip
        direction /= np.linalg.norm(direction)
        brightness = rng.uniform(0.3, 1.0)
        length = int(rng.uniform(0.5, 1.5) * max(h, w))
        for _ in range(length * 2):
            direction += 0.08 * rng.standard_normal(3) * np.array([0.3, 1, 1])
            direction /= np.linalg.norm(direction)
            pos = pos + 0.5 * direction * np.array([1 / voxel_aspect, 1, 1])
            if not (0 <= pos[0] < d and 0 <= pos[1] < h and 0 <= pos[2] < w):
                break
            base = np.floor(pos).astype(int)
            idx = base + grid
            ok = np.all((idx >= 0) & (idx < (d, h, w)), axis=1)
            idx = idx[ok]
            diff = (idx - pos) * np.array([voxel_aspect, 1, 1])
            weight = np.exp(-np.sum(diff**2, axis=1) / (2 * 0.7**2))
            np.add.at(vol, tuple(idx.T), brightness * weight)
    vol = np.clip(vol, 0, None)
    scale = np.percentile(vol[vol > 0], 99.5) if np.any(vol > 0) else 1.0
    return (np.clip(vol / scale, 0, 1) * peak).astype(np.float32)


def add_noise(blurred: np.ndarray, rng: np.random.RandomState, gain: float = 7.0, sigma: float = 3.0) -> np.ndarray:
    """``m * Poisson(b / m) + N(0, sigma^2)``; ``gain`` = m (gray levels per photon)."""
    if gain <= 0 or sigma < 0:
        raise ValueError(f"gain/sigma: expected > 0 / >= 0, got {gain}/{sigma}")
    photons = rng.poisson(np.clip(blurred, 0, None) / gain)
    return (gain * photons + sigma * rng.standard_normal(blurred.shape)).astype(np.float32)


def simulate(
    shape: Sequence[int],
    seed: int,
    wavelength: float = 0.5,
    voxel_size: Sequence[float] = (0.2, 0.1, 0.1),
    numerical_aperture: float = 1.4,
    refractive_index: float = 1.5,
    psf_shape: Sequence[int] = (32, 32, 32),
    gain: float = 7.0,
    sigma: float = 3.0,
    peak: float = 255.0,
) -> dict[str, np.ndarray]:
    """One simulated acquisition: ``{"gt", "blurred_clean", "blurred", "psf"}``.

    Lengths in micrometres; ``voxel_size`` is ``(dz, dy, dx)``.
    """
    rng = np.random.RandomState(seed)
    gt = microtubules(shape, rng, voxel_aspect=voxel_size[0] / voxel_size[2])
    psf = born_wolf_psf(psf_shape, voxel_size, wavelength, numerical_aperture, refractive_index)
    return acquire(gt, psf, rng, gain, sigma, peak)


def acquire(
    gt: np.ndarray,
    psf: np.ndarray,
    rng: np.random.RandomState,
    gain: float = 7.0,
    sigma: float = 3.0,
    peak: float = 255.0,
    offset: float = 0.0,
) -> dict[str, np.ndarray]:
    """A widefield acquisition of any ground truth: ``{"gt", "blurred_clean", "blurred", "psf"}``.

    ``gt`` (any rank of ``psf``) is blurred by ``psf``, both scaled so the blurred volume's
    99.9th percentile is ``peak`` gray levels, then ``m Poisson(b / m) + N(0, sigma^2)``
    (:func:`add_noise`) plus a camera ``offset`` is drawn.
    """
    clean = blur(gt, psf)
    scale = peak / max(float(np.percentile(clean, 99.9)), 1e-12)
    gt, clean = gt * np.float32(scale), clean * np.float32(scale)
    noisy = add_noise(clean, rng, gain, sigma) + np.float32(offset)
    return {"gt": gt, "blurred_clean": clean, "blurred": noisy, "psf": psf}


def simulate_widefield_2d(
    shape: Sequence[int],
    seed: int,
    wavelength: float = 0.5,
    pixel_size: float = 0.1,
    numerical_aperture: float = 1.4,
    refractive_index: float = 1.5,
    psf_size: int = 31,
    gain: float = 7.0,
    sigma: float = 3.0,
    peak: float = 255.0,
) -> dict[str, np.ndarray]:
    """One simulated 2-D widefield image: ``{"gt", "blurred_clean", "blurred", "psf"}``.

    Ground truth: the maximum projection of a thin (6-slice) microtubule volume, ``(H, W)``;
    PSF: the in-focus plane of the Born & Wolf PSF (``psf_size^2``, unit sum); then the same
    blur, scaling and noise as :func:`simulate`. Lengths in micrometres.
    """
    h, w = (int(v) for v in shape)
    rng = np.random.RandomState(seed)
    gt = microtubules((6, h, w), rng, voxel_aspect=2.0).max(axis=0)
    psf = born_wolf_psf((1, psf_size, psf_size), (0.2, pixel_size, pixel_size), wavelength, numerical_aperture,
                        refractive_index)[0]
    return acquire(gt, (psf / psf.sum()).astype(np.float32), rng, gain, sigma, peak)
