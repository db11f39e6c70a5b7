"""Whole-volume inference by overlapping tiles with smooth blending (no seams).

Tiles of ``tile`` voxels start every ``tile - overlap`` voxels, the last one flush with the
volume's end. Per axis each tile gets a weight that is 1 in its interior and, across each
region it shares with a neighbour, falls as ``cos^2`` while the neighbour rises as ``sin^2``
over the same voxels, with a zero margin of ``overlap // 4`` at the tile's inner edges.
The weights of all tiles sum to 1 at every voxel (a partition of unity), so a network
without global normalisation whose receptive radius is within the margin gives exactly its
single-pass output. Volumes smaller than a tile are reflected up to the tile size.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import numpy as np


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start indices covering ``[0, size)`` with tiles of ``tile`` and at least ``overlap`` overlap."""
    if tile >= size:
        return [0]
    step = tile - overlap
    if step < 1:
        raise ValueError(f"overlap: {overlap} must be smaller than the tile {tile}")
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def axis_weights(size: int, tile: int, starts: Sequence[int]) -> list[np.ndarray]:
    """One weight vector ``(tile,)`` per tile along an axis; they sum to 1 over the axis."""
    weights = [np.ones(min(tile, size)) for _ in starts]
    for k in range(len(starts) - 1):
        lo, hi = starts[k + 1], starts[k] + tile  # shared region [lo, hi)
        n = hi - lo
        margin = n // 4
        ramp_len = max(n - 2 * margin, 1)
        t = np.clip((np.arange(n) - margin + 0.5) / ramp_len, 0, 1)
        rise = np.sin(0.5 * np.pi * t) ** 2
        weights[k][lo - starts[k] :] *= 1 - rise
        weights[k + 1][: n] *= rise
    return weights


def predict_tiled(
    fn: Callable[[np.ndarray], np.ndarray],
    volume: np.ndarray,
    tile: int | Sequence[int] = 64,
    overlap: int | Sequence[int] = 16,
    batch_size: int = 1,
) -> np.ndarray:
    """Apply ``fn`` (``(B, *tile, 1) -> (B, *tile, 1)``) to a volume ``(D, H, W)`` or an image
    ``(H, W)`` tile by tile, blending overlapping tiles with smooth weights.

    Args:
        fn: the network, e.g. a Keras generator.
        volume: float32 ``(D, H, W)`` or ``(H, W)``.
        tile: tile size per axis (int or one per axis); axes shorter than the tile are reflected up.
        overlap: overlap per axis between neighbouring tiles.
        batch_size: tiles per call of ``fn``.

    Returns:
        float32, the shape of ``volume``.
    """
    volume = np.asarray(volume, np.float32)
    if volume.ndim not in (2, 3):
        raise ValueError(f"volume: expected (D, H, W) or (H, W), got shape {volume.shape}")
    nd = volume.ndim
    tile = (tile,) * nd if isinstance(tile, int) else tuple(tile)
    overlap = (overlap,) * nd if isinstance(overlap, int) else tuple(overlap)
    orig = volume.shape
    pads = [(0, max(0, t - n)) for t, n in zip(tile, orig)]
    if any(p[1] for p in pads):
        volume = np.pad(volume, pads, mode="symmetric")
    shape = volume.shape
    starts = [tile_starts(n, t, o) for n, t, o in zip(shape, tile, overlap)]
    weights = [axis_weights(n, t, s) for n, t, s in zip(shape, tile, starts)]
    out = np.zeros(shape, np.float32)
    coords = list(itertools.product(*(range(len(s)) for s in starts)))

    def window(idx):
        return tuple(slice(starts[a][i], starts[a][i] + tile[a]) for a, i in enumerate(idx))

    for b in range(0, len(coords), batch_size):
        chunk = coords[b : b + batch_size]
        batch = np.stack([volume[window(idx)] for idx in chunk])[..., None]
        pred = np.asarray(fn(batch), np.float32)[..., 0]
        for idx, p in zip(chunk, pred):
            w = functools.reduce(np.multiply, np.ix_(*(weights[a][i] for a, i in enumerate(idx))))
            out[window(idx)] += w * p
    return out[tuple(slice(0, n) for n in orig)]
