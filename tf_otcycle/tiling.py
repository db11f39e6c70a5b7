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
    """Start indices covering ``[0, size)`` with tiles of ``tile`` and at least ``overlap`` overlap.

    ``overlap`` is at most ``tile // 2``: with more, three tiles share voxels and the blending
    weights (:func:`axis_weights`) no longer sum to one."""
    if not 0 <= overlap <= tile // 2:
        raise ValueError(f"overlap: {overlap} must be in [0, tile // 2 = {tile // 2}] for the tile {tile}")
    if tile >= size:
        return [0]
    step = tile - overlap
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
        overlap: overlap per axis between neighbouring tiles (at most half the tile).
        batch_size: tiles per call of ``fn``.

    Returns:
        float32, the shape of ``volume``.
    """
    volume = np.asarray(volume, np.float32)
    if volume.ndim not in (2, 3):
        raise ValueError(f"volume: expected (D, H, W) or (H, W), got shape {volume.shape}")
    out = np.zeros(volume.shape, np.float32)

    def add(window, values):
        out[window] += values

    predict_blocks(fn, volume.__getitem__, add, volume.shape, tile, overlap, None, batch_size)
    return out


def predict_blocks(
    fn: Callable[[np.ndarray], np.ndarray],
    read: Callable[[tuple[slice, ...]], np.ndarray],
    add: Callable[[tuple[slice, ...], np.ndarray], None],
    shape: Sequence[int],
    tile: int | Sequence[int] = 64,
    overlap: int | Sequence[int] = 16,
    block: int | Sequence[int] | None = 256,
    batch_size: int = 1,
) -> None:
    """:func:`predict_tiled` of a volume held outside memory, a block of tiles at a time.

    The tiles and weights are those of the whole volume; they are taken in groups spanning
    about ``block`` voxels per axis. For each group the window the tiles cover is read, the
    weighted predictions are summed in memory and that sum is added to the output. Adjacent
    groups share their tiles' overlaps, so ``add`` must accumulate (e.g. into an array of
    zeros). The result equals :func:`predict_tiled` (up to the order of float additions);
    memory holds one group's window (about ``block + tile`` voxels per axis) twice.

    Args:
        fn: the network, ``(B, *tile, 1) -> (B, *tile, 1)``.
        read: ``read(window) -> float32 array`` of the input inside ``shape``.
        add: ``add(window, values)`` adds ``values`` to the output's ``window``.
        shape: the volume's ``(D, H, W)`` (or ``(H, W)``).
        tile: as for :func:`predict_tiled`.
        overlap: as for :func:`predict_tiled`.
        block: voxels per axis of a group of tiles; None: the whole volume in one group.
        batch_size: as for :func:`predict_tiled`.
    """
    nd = len(shape)
    tile = (tile,) * nd if isinstance(tile, int) else tuple(tile)
    overlap = (overlap,) * nd if isinstance(overlap, int) else tuple(overlap)
    padded = [max(n, t) for n, t in zip(shape, tile)]  # axes shorter than a tile are reflected up to it
    starts = [tile_starts(n, t, o) for n, t, o in zip(padded, tile, overlap)]
    weights = [axis_weights(n, t, s) for n, t, s in zip(padded, tile, starts)]
    if block is None:
        per_group = [len(s) for s in starts]
    else:
        block = (block,) * nd if isinstance(block, int) else tuple(block)
        per_group = [max(1, b // max(1, t - o)) for b, t, o in zip(block, tile, overlap)]
    groups = [[range(i, min(i + k, len(s))) for i in range(0, len(s), k)] for s, k in zip(starts, per_group)]
    for group in itertools.product(*groups):
        union = tuple(slice(starts[a][g[0]], starts[a][g[-1]] + tile[a]) for a, g in enumerate(group))
        inside = tuple(slice(u.start, min(u.stop, n)) for u, n in zip(union, shape))
        x = read(inside)
        reflect = [(0, u.stop - i.stop) for u, i in zip(union, inside)]
        if any(r[1] for r in reflect):
            x = np.pad(x, reflect, mode="symmetric")
        total = np.zeros(x.shape, np.float32)
        coords = list(itertools.product(*group))
        for b in range(0, len(coords), batch_size):
            chunk = coords[b : b + batch_size]
            local = [tuple(slice(starts[a][i] - union[a].start, starts[a][i] - union[a].start + tile[a])
                           for a, i in enumerate(idx)) for idx in chunk]
            pred = np.asarray(fn(np.stack([x[w] for w in local])[..., None]), np.float32)[..., 0]
            for idx, w, p in zip(chunk, local, pred):
                total[w] += functools.reduce(np.multiply, np.ix_(*(weights[a][i] for a, i in enumerate(idx)))) * p
        add(inside, total[tuple(slice(0, i.stop - i.start) for i in inside)])
