"""Fluorescent structures other than filaments: ground truths for data the training simulator
(:mod:`tf_otcycle.data.microscopy_sim`) did not make.

Each function returns a ground-truth volume ``(D, H, W)`` float32 in ``[0, 1]``, a pure
function of its ``rng``; ``voxel_aspect = dz / dx`` draws round objects round in physical
space. :func:`lift_image` turns a real 2-D fluorescence image into a volume with the image's
lateral structure and a smooth axial extent, so real textures can be blurred in 3-D.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage, special


def _grid(shape: Sequence[int], voxel_aspect: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical coordinates (in lateral voxels) of every voxel: ``z * aspect, y, x``."""
    d, h, w = shape
    return (np.arange(d, dtype=np.float32)[:, None, None] * voxel_aspect,
            np.arange(h, dtype=np.float32)[None, :, None], np.arange(w, dtype=np.float32)[None, None, :])


def _unit(volume: np.ndarray, percentile: float = 99.9) -> np.ndarray:
    scale = float(np.percentile(volume, percentile))
    return np.clip(volume / max(scale, 1e-12), 0, 1).astype(np.float32)


def beads(shape: Sequence[int], rng: np.random.RandomState, voxel_aspect: float = 2.0,
          per_megavoxel: float = 300.0) -> np.ndarray:
    """Sub-resolution beads (Gaussian spots, sigma 0.6 lateral voxels) of random brightness
    over a faint uniform background, and a few larger beads of radius 2-4 voxels."""
    d, h, w = (int(s) for s in shape)
    vol = np.zeros((d, h, w), np.float32)
    count = max(4, int(per_megavoxel * d * h * w / 1e6 * rng.uniform(0.7, 1.3)))
    idx = (rng.randint(0, d, count), rng.randint(0, h, count), rng.randint(0, w, count))
    np.add.at(vol, idx, rng.uniform(0.2, 1.0, count).astype(np.float32))
    vol = ndimage.gaussian_filter(vol, (0.6 / voxel_aspect, 0.6, 0.6)) * 2 * np.pi * 0.36
    z, y, x = _grid((d, h, w), voxel_aspect)
    for _ in range(max(1, count // 20)):
        c = (rng.uniform(0, d) * voxel_aspect, rng.uniform(0, h), rng.uniform(0, w))
        r = rng.uniform(2, 4)
        dist = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        vol += rng.uniform(0.1, 0.4) * special.expit((r - dist) / 0.5)
    return _unit(vol + 0.02)


def nuclei(shape: Sequence[int], rng: np.random.RandomState, voxel_aspect: float = 2.0,
           per_megavoxel: float = 25.0) -> np.ndarray:
    """Ellipsoidal nuclei (lateral radii 5-12 voxels, axial 3-7) with a smooth chromatin
    texture and one or two bright nucleoli each, of random brightness."""
    d, h, w = (int(s) for s in shape)
    vol = np.zeros((d, h, w), np.float32)
    z, y, x = _grid((d, h, w), voxel_aspect)
    texture = ndimage.gaussian_filter(rng.standard_normal((d, h, w)).astype(np.float32), (0.7, 1.5, 1.5))
    texture = 1 + 0.35 * texture / max(float(texture.std()), 1e-6)
    count = max(2, int(per_megavoxel * d * h * w / 1e6 * rng.uniform(0.7, 1.3)))
    for _ in range(count):
        c = np.array([rng.uniform(0.2, 0.8) * d * voxel_aspect, rng.uniform(0, h), rng.uniform(0, w)], np.float32)
        radii = np.array([rng.uniform(3, 7) * voxel_aspect / 2, rng.uniform(5, 12), rng.uniform(5, 12)], np.float32)
        angle = rng.uniform(0, np.pi)
        ca, sa = np.cos(angle), np.sin(angle)
        u, v = (y - c[1]) * ca + (x - c[2]) * sa, -(y - c[1]) * sa + (x - c[2]) * ca
        rho = np.sqrt(((z - c[0]) / radii[0]) ** 2 + (u / radii[1]) ** 2 + (v / radii[2]) ** 2)
        vol += rng.uniform(0.3, 1.0) * special.expit((1 - rho) / 0.08) * texture
        for _ in range(rng.randint(1, 3)):
            n = c + rng.uniform(-0.4, 0.4, 3).astype(np.float32) * radii
            dist = np.sqrt((z - n[0]) ** 2 + (y - n[1]) ** 2 + (x - n[2]) ** 2)
            vol += rng.uniform(0.3, 0.8) * np.exp(-(dist**2) / (2 * 1.5**2)) * (rho < 1)
    return _unit(vol)


def membranes(shape: Sequence[int], rng: np.random.RandomState, voxel_aspect: float = 2.0,
              cell_size: float = 14.0) -> np.ndarray:
    """Cell membranes: the faces of a 3-D Voronoi tessellation (cells about ``cell_size``
    voxels across), thin sheets of width about one voxel whose brightness varies smoothly."""
    d, h, w = (int(s) for s in shape)
    z, y, x = _grid((d, h, w), voxel_aspect)
    extent = np.array([d * voxel_aspect, h, w], np.float32)
    count = max(4, int(np.prod(extent + 2 * cell_size) / cell_size**3 * rng.uniform(0.8, 1.2)))
    seeds = (rng.uniform(0, 1, (count, 3)) * (extent + 2 * cell_size) - cell_size).astype(np.float32)
    first = np.full((d, h, w), np.inf, np.float32)
    second = np.full((d, h, w), np.inf, np.float32)
    for s in seeds:
        dist = np.sqrt((z - s[0]) ** 2 + (y - s[1]) ** 2 + (x - s[2]) ** 2)
        second = np.minimum(second, np.maximum(first, dist))
        first = np.minimum(first, dist)
    sheet = np.exp(-((second - first) ** 2) / (2 * 0.8**2))  # half the gap is the distance to the face
    brightness = ndimage.gaussian_filter(rng.uniform(0, 1, (d, h, w)).astype(np.float32), 4)
    brightness = 0.4 + 0.6 * (brightness - brightness.min()) / max(float(np.ptp(brightness)), 1e-6)
    return _unit(sheet * brightness)


STRUCTURES = {"beads": beads, "nuclei": nuclei, "membranes": membranes}


def lift_image(image: np.ndarray, depth: int, rng: np.random.RandomState, voxel_aspect: float = 2.0,
               thickness: float = 10.0) -> np.ndarray:
    """A volume ``(depth, H, W)`` in [0, 1] whose in-focus structure is a real 2-D image.

    The image (background subtracted at its 5th percentile, scaled by its 99.9th) is the
    brightness of each column; its foreground (above Otsu's threshold) gets an axial extent
    that grows with the distance to the foreground's edge, up to ``thickness`` lateral
    voxels, around a mid-plane that tilts and bends smoothly across the field, so cells are
    domes and the background a faint sheet.

    Args:
        image: ``(H, W)`` real image, any dtype.
        depth: ``D`` z-slices.
        rng: random state (the mid-plane's shape).
        voxel_aspect: ``dz / dx``.
        thickness: the largest half-thickness in lateral voxels.
    """
    from skimage.filters import threshold_otsu

    img = np.asarray(image, np.float32)
    img = np.clip(img - np.percentile(img, 5), 0, None)
    img = img / max(float(np.percentile(img, 99.9)), 1e-12)
    fg = ndimage.gaussian_filter(img, 1.0) > threshold_otsu(ndimage.gaussian_filter(img, 1.0))
    inside = ndimage.distance_transform_edt(fg)
    half = 1.0 + (thickness - 1.0) * np.tanh(inside / thickness)  # lateral voxels, >= 1
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bend = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), max(h, w) / 4)
    bend = bend / max(float(np.abs(bend).max()), 1e-6)
    mid = (depth / 2 + rng.uniform(-0.1, 0.1) * depth * (yy / h - 0.5) + rng.uniform(-0.1, 0.1) * depth * (xx / w - 0.5)
           + 0.1 * depth * bend)
    z = np.arange(depth, dtype=np.float32)[:, None, None]
    dist = np.abs(z - mid[None]) * voxel_aspect  # lateral voxels
    profile = special.expit((half[None] - dist) / 0.7)
    return np.clip(img[None] * profile, 0, 1).astype(np.float32)
