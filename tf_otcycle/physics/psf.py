"""Point spread functions for widefield fluorescence microscopy.

Axis order is ``(z, y, x)`` as in TIFF stacks and Conv3D ``(D, H, W)``. All lengths
(``voxel_size``, ``wavelength``) are in one unit of the caller's choice; the docs use
micrometres. The optical axis passes through voxel ``shape // 2`` (the centre voxel for odd
sizes, the one just after the centre for even sizes, as ``fftshift`` puts it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage, signal, special

from tf_otcycle.physics.beads import bead_centres, peak_centre  # noqa: F401 (peak_centre: re-exported)


def _check_shape(shape: Sequence[int], name: str = "shape") -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name}: expected 3 positive sizes (z, y, x), got {shape}")
    return shape  # type: ignore[return-value]


def born_wolf_intensity(
    r: np.ndarray,
    z: np.ndarray,
    wavelength: float,
    numerical_aperture: float = 1.4,
    refractive_index: float = 1.5,
    num_nodes: int | None = None,
) -> np.ndarray:
    """Unnormalised scalar Born & Wolf intensity (paper eq. 28).

    ``I(r, z) = |∫_0^1 J0(k NA r ρ) exp(-i k NA^2 z ρ^2 / (2 n)) ρ dρ|^2``, ``k = 2π/λ``,
    evaluated by Gauss-Legendre quadrature with enough nodes to resolve the oscillations
    of both factors (at least 16 nodes per radian of the largest argument).

    Args:
        r: radial distances from the optical axis, any shape (broadcast with ``z``).
        z: defocus distances along the optical axis.
        wavelength: emission wavelength λ > 0.
        numerical_aperture: NA, 0 < NA < refractive_index.
        refractive_index: refractive index n of the immersion medium.
        num_nodes: quadrature nodes; None chooses from the arguments' range.

    Returns:
        float64 array of the broadcast shape of ``r`` and ``z``.
    """
    _check_optics(wavelength, numerical_aperture, refractive_index)
    r, z = np.broadcast_arrays(np.asarray(r, np.float64), np.asarray(z, np.float64))
    k = 2 * np.pi / wavelength
    a = k * numerical_aperture * np.abs(r)  # Bessel argument scale
    b = k * numerical_aperture**2 * z / (2 * refractive_index)  # defocus phase scale
    if num_nodes is None:
        span = float(np.max(a, initial=0.0) + np.max(np.abs(b), initial=0.0))
        num_nodes = int(min(20000, max(64, 16 * span)))
    nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
    rho = 0.5 * (nodes + 1)  # [0, 1]
    w = 0.5 * weights * rho
    flat_a, flat_b = a.reshape(-1, 1), b.reshape(-1, 1)
    out = np.empty(flat_a.shape[0])
    chunk = max(1, 4_000_000 // num_nodes)
    for s in range(0, flat_a.shape[0], chunk):
        j0 = special.j0(flat_a[s : s + chunk] * rho)
        phase = flat_b[s : s + chunk] * rho**2
        re = (j0 * np.cos(phase)) @ w
        im = (j0 * np.sin(phase)) @ w
        out[s : s + chunk] = re**2 + im**2
    return out.reshape(r.shape)


def born_wolf_psf(
    shape: Sequence[int],
    voxel_size: Sequence[float],
    wavelength: float,
    numerical_aperture: float = 1.4,
    refractive_index: float = 1.5,
) -> np.ndarray:
    """Scalar Born & Wolf widefield PSF on a voxel grid, normalised to unit sum.

    The intensity (see :func:`born_wolf_intensity`) is computed for each z plane on a fine
    radial grid (spacing a quarter of the finer lateral voxel size) and interpolated
    linearly to each voxel's distance from the optical axis.

    Args:
        shape: ``(D, H, W)`` voxels.
        voxel_size: ``(dz, dy, dx)``, same unit as ``wavelength``.
        wavelength: emission wavelength λ > 0.
        numerical_aperture: NA, 0 < NA < refractive_index (paper: 1.4).
        refractive_index: immersion refractive index n (paper: 1.5).

    Returns:
        float32 array ``(D, H, W)``, non-negative, sum 1, optical axis at ``shape // 2``.

    Raises:
        ValueError: bad shape, voxel size, wavelength or NA.
    """
    d, h, w = _check_shape(shape)
    voxel_size = tuple(float(v) for v in voxel_size)
    if len(voxel_size) != 3 or min(voxel_size) <= 0:
        raise ValueError(f"voxel_size: expected 3 positive lengths (dz, dy, dx), got {voxel_size}")
    _check_optics(wavelength, numerical_aperture, refractive_index)
    dz, dy, dx = voxel_size
    z = (np.arange(d) - d // 2) * dz
    y = (np.arange(h) - h // 2) * dy
    x = (np.arange(w) - w // 2) * dx
    r_vox = np.hypot(y[:, None], x[None, :])  # (H, W)
    step = min(dx, dy) / 4
    r_grid = np.arange(0, r_vox.max() + 2 * step, step)
    profile = born_wolf_intensity(
        r_grid[None, :], z[:, None], wavelength, numerical_aperture, refractive_index
    )  # (D, R)
    psf = np.stack([np.interp(r_vox, r_grid, profile[i]) for i in range(d)])  # (D, H, W)
    psf = np.clip(psf, 0, None)
    return (psf / psf.sum()).astype(np.float32)


def gaussian_psf(shape: Sequence[int], sigma: Sequence[float]) -> np.ndarray:
    """Separable Gaussian PSF ``(D, H, W)`` with per-axis ``sigma`` in voxels, unit sum."""
    d, h, w = _check_shape(shape)
    sigma = tuple(float(s) for s in sigma)
    if len(sigma) != 3 or min(sigma) <= 0:
        raise ValueError(f"sigma: expected 3 positive widths in voxels (z, y, x), got {sigma}")
    axes = [np.exp(-0.5 * ((np.arange(n) - n // 2) / s) ** 2) for n, s in zip((d, h, w), sigma)]
    psf = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (psf / psf.sum()).astype(np.float32)


def flat_psf(shape: Sequence[int]) -> np.ndarray:
    """Uniform PSF ``(D, H, W)`` with unit sum."""
    d, h, w = _check_shape(shape)
    return np.full((d, h, w), 1.0 / (d * h * w), np.float32)


def odd_centred(psf: np.ndarray) -> np.ndarray:
    """The same PSF with a zero plane appended on each even axis: odd sizes, axis unchanged.

    Libraries that centre a kernel at ``(k - 1) // 2`` (``scipy.signal`` ``mode="same"``,
    scikit-image's Richardson-Lucy) then agree with this module's ``shape // 2`` centre.
    """
    psf = np.asarray(psf)
    return np.pad(psf, [(0, 1 - n % 2) for n in psf.shape])


def fwhm(psf: np.ndarray, voxel_size: Sequence[float] | None = None) -> tuple[float, ...]:
    """Full width at half maximum of a 3-D (z, y, x) or 2-D (y, x) PSF along each axis
    through its peak. Linear interpolation between samples; in the units of ``voxel_size``
    (default 1 per axis).
    """
    psf = np.asarray(psf, np.float64)
    if psf.ndim not in (2, 3):
        raise ValueError(f"psf: expected a 3-D (z, y, x) or 2-D (y, x) array, got shape {psf.shape}")
    voxel_size = (1.0,) * psf.ndim if voxel_size is None else tuple(voxel_size)
    if len(voxel_size) != psf.ndim:
        raise ValueError(f"voxel_size: expected {psf.ndim} sizes for a {psf.ndim}-D PSF, got {voxel_size}")
    peak = np.unravel_index(np.argmax(psf), psf.shape)
    out = []
    for axis, size in enumerate(voxel_size):
        idx = list(peak)
        idx[axis] = slice(None)
        line = psf[tuple(idx)]
        half = line.max() / 2
        c = peak[axis]
        left = c
        while left > 0 and line[left - 1] > half:
            left -= 1
        right = c
        while right < len(line) - 1 and line[right + 1] > half:
            right += 1
        lpos = left - 1 + (half - line[left - 1]) / (line[left] - line[left - 1]) if left > 0 else 0.0
        rpos = (
            right + (line[right] - half) / (line[right] - line[right + 1])
            if right < len(line) - 1
            else float(len(line) - 1)
        )
        out.append(float((rpos - lpos) * size))
    return tuple(out)


def blur(volume: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """``h * x`` in NumPy: linear convolution with the PSF, same size, zero boundary (float32;
    the simulator's blur, and the reference of :func:`tf_otcycle.physics.convolution.convolve`).

    The PSF's optical axis is voxel ``psf.shape // 2`` (this module's convention), so a point
    stays where it is. (``fftconvolve(..., mode="same")`` would move it by one voxel along
    every even-sized PSF axis.)
    """
    full = signal.fftconvolve(volume.astype(np.float64), psf.astype(np.float64), mode="full")
    start = [k // 2 for k in psf.shape]
    crop = tuple(slice(c, c + n) for c, n in zip(start, volume.shape))
    return full[crop].clip(0).astype(np.float32)


def _check_optics(wavelength: float, numerical_aperture: float, refractive_index: float) -> None:
    if not wavelength > 0:
        raise ValueError(f"wavelength: expected a positive length, got {wavelength!r}")
    if not refractive_index > 0:
        raise ValueError(f"refractive_index: expected a positive value, got {refractive_index!r}")
    if not 0 < numerical_aperture < refractive_index:
        raise ValueError(
            f"numerical_aperture: expected 0 < NA < refractive_index={refractive_index}, "
            f"got {numerical_aperture!r}"
        )


def psf_similarity(learned: np.ndarray, reference: np.ndarray, voxel_size: Sequence[float] | None = None) -> dict:
    """Normalised cross-correlation (centred at ``shape // 2``, cropped or padded to the
    reference's size) and FWHM per axis of a learned and a reference PSF (2-D or 3-D)."""
    a, b = centre_to(learned, reference.shape), reference
    a0, b0 = a - a.mean(), b - b.mean()
    ncc = float(np.sum(a0 * b0) / (np.linalg.norm(a0) * np.linalg.norm(b0) + 1e-20))
    fl, fr = fwhm(a, voxel_size), fwhm(b, voxel_size)
    axes = "zyx"[-a.ndim:]
    return {"ncc": ncc, **{f"fwhm_{ax}_learned": v for ax, v in zip(axes, fl)},
            **{f"fwhm_{ax}_true": v for ax, v in zip(axes, fr)}}


def centre_to(psf: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Crop or zero-pad ``psf`` (or any array, e.g. a stack) around its ``shape // 2`` centre
    to ``shape`` (float64)."""
    out = np.zeros(shape, np.float64)
    src_c = [n // 2 for n in psf.shape]
    dst_c = [n // 2 for n in shape]
    src, dst = [], []
    for sn, dn, sc, dc in zip(psf.shape, shape, src_c, dst_c):
        lo = min(sc, dc)
        hi = min(sn - sc, dn - dc)
        src.append(slice(sc - lo, sc + hi))
        dst.append(slice(dc - lo, dc + hi))
    out[tuple(dst)] = psf[tuple(src)]
    return out


def sampling_step(ndim: int, spacing: Sequence[float] | None = None,
                  target_spacing: Sequence[float] | None = None) -> np.ndarray:
    """File voxels per kernel voxel along each of ``ndim`` axes: ``target_spacing / spacing``
    where both are given and differ by more than 1 %, else 1 (the file's voxels as they are)."""
    if spacing is not None and target_spacing is not None:
        ratio = np.asarray(target_spacing, np.float64) / np.asarray(spacing, np.float64)
        if np.any(np.abs(ratio - 1) > 0.01):
            return ratio
    return np.ones(ndim)


def kernel_from_file(psf: np.ndarray, shape: Sequence[int], spacing: Sequence[float] | None = None,
                     target_spacing: Sequence[float] | None = None, path: str = "PSF") -> np.ndarray:
    """The kernel of :func:`file_kernel`, without its bead count."""
    return file_kernel(psf, shape, spacing, target_spacing, path)[0]


def file_kernel(psf: np.ndarray, shape: Sequence[int], spacing: Sequence[float] | None = None,
                target_spacing: Sequence[float] | None = None, path: str = "PSF") -> tuple[np.ndarray, int]:
    """A PSF read from a file (measured from beads, or computed elsewhere) as a learnable
    kernel of ``shape``: its peak (:func:`peak_centre`) at ``shape // 2``, cropped or
    zero-padded to ``shape``, resampled by linear interpolation about that peak from its
    ``spacing`` to ``target_spacing`` (voxel sizes, same unit and axis order) where both are
    given and differ by more than 1 %, negative values clipped, unit sum (float32).

    A file with several beads gives the sum of the kernels about each bead that is alone in
    the kernel's window (:func:`tf_otcycle.physics.beads.bead_centres`): averaging beads
    lowers the noise of the measured PSF.

    The file's constant background (a camera offset under a bead) is not removed: subtract
    it before, or it becomes a flat part of the kernel.

    Returns:
        ``(kernel, number of beads summed into it)``.

    Raises:
        ValueError: ``psf``'s rank is not ``len(shape)``, it has a negative or non-finite
            value, no light in the kernel, or several beads and none alone; the message
            names ``path``.
    """
    psf = np.asarray(psf, np.float64)
    if psf.ndim != len(shape):
        raise ValueError(f"{path}: expected a {len(shape)}-D PSF, got shape {psf.shape}")
    if not np.all(np.isfinite(psf)) or psf.min() < 0 or psf.max() <= 0:
        raise ValueError(f"{path}: a PSF must be finite and non-negative with a positive maximum")
    step = sampling_step(len(shape), spacing, target_spacing)
    per_axis = (-1,) + (1,) * len(shape)  # one value per axis, broadcast over the kernel's voxels
    offsets = np.indices(shape, np.float64) - np.reshape([n // 2 for n in shape], per_axis)
    kernel = np.zeros(shape, np.float64)
    centres = bead_centres(psf, np.asarray(shape) * step, path)
    for centre in centres:
        coords = np.reshape(centre, per_axis) + offsets * step.reshape(per_axis)
        kernel += np.clip(ndimage.map_coordinates(psf, coords, order=1, cval=0.0), 0, None)  # zero outside the file
    if kernel.sum() <= 0:
        raise ValueError(f"{path}: no light of the PSF is left in the {tuple(shape)} kernel")
    return (kernel / kernel.sum()).astype(np.float32), len(centres)
