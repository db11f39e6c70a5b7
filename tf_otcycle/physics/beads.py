"""Beads in a measured PSF image: which ones to average into one PSF.

A bead image (a field of sub-resolution fluorescent beads, ``(z, y, x)`` or ``(y, x)``)
usually holds several beads. Each bead's window, the region the PSF kernel is taken from,
must hold that bead alone: :func:`bead_centres` finds the beads, leaves out those whose
window overlaps another bead's or leaves the image, and those brighter than twice the
median bead (clusters); the kernel is then the sum of the kept windows
(:func:`tf_otcycle.physics.psf.kernel_from_file`). Pure NumPy/SciPy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

MIN_FRACTION = 0.2  # a local maximum counts as a bead above this fraction of the brightest bead (over the median)
CLUSTER_FACTOR = 2.0  # beads brighter than this times the median bead are clusters (with three or more beads)
# A widefield PSF's median is 0.1-1.3 % of its peak (its defocused light: the benchmark sets' optics on 64^3
# at half their voxels, 0.1-0.3 %; a tight 24^3 crop at NA 1.4, 1.3 %); a camera offset left in a bead image
# lifts it to several per cent (100 gray levels under a 2000 peak: 4.8 %).
OFFSET_FRACTION = 0.02


def median_fraction(image: np.ndarray) -> float:
    """The image's median over its maximum: above :data:`OFFSET_FRACTION`, a camera offset
    (or other constant background) is left in a PSF image."""
    image = np.asarray(image, np.float64)
    return float(np.median(image) / image.max())


def peak_centre(image: np.ndarray) -> tuple[int, ...]:
    """The voxel nearest the centroid of ``image``'s voxels at or above half its maximum: the
    optical axis of a measured PSF, robust to a noisy single brightest voxel."""
    image = np.asarray(image, np.float64)
    bright = np.argwhere(image >= 0.5 * image.max())
    weights = image[tuple(bright.T)]
    return tuple(int(round(c)) for c in (bright * weights[:, None]).sum(0) / weights.sum())


def local_maxima(image: np.ndarray, min_fraction: float = MIN_FRACTION) -> list[tuple[tuple[int, ...], float]]:
    """Bead candidates: the local maxima of ``image`` smoothed by a one-voxel Gaussian, with
    their height over the image's median, keeping those above ``min_fraction`` of the
    highest; ``[(voxel, height)]``, highest first."""
    smooth = ndimage.gaussian_filter(np.asarray(image, np.float32), 1.0)
    smooth -= np.median(smooth)
    top = float(smooth.max())
    if top <= 0:
        return []
    peaks = np.argwhere((smooth == ndimage.maximum_filter(smooth, size=3)) & (smooth > min_fraction * top))
    heights = smooth[tuple(peaks.T)]
    order = np.argsort(-heights, kind="stable")
    return [(tuple(int(c) for c in peaks[i]), float(heights[i])) for i in order]


def _same_bead_merged(found: list, window: Sequence[float]) -> list:
    """``found`` (highest first) without the maxima on a higher one's optical axis: within an
    eighth of the window laterally (at any depth in 3-D: a PSF's axial side lobes; next to
    it: a saturated bead's flat top)."""
    lateral = slice(1, None) if len(window) == 3 else slice(None)
    kept = []
    for p, h in found:
        near = (all(abs(i - j) <= w / 8 for i, j, w in zip(p[lateral], q[lateral], window[lateral])) for q, _ in kept)
        if not any(near):
            kept.append((p, h))
    return kept


def _overlaps(a: Sequence[int], b: Sequence[int], window: Sequence[float]) -> bool:
    """Whether windows of size ``window`` centred on ``a`` and ``b`` overlap."""
    return all(abs(i - j) < w for i, j, w in zip(a, b, window))


def _fits(centre: Sequence[int], window: Sequence[float], shape: Sequence[int]) -> bool:
    """Whether a window of size ``window`` centred on ``centre`` lies inside ``shape``."""
    return all(c - w / 2 >= 0 and c + w / 2 <= n for c, w, n in zip(centre, window, shape))


def bead_centres(image: np.ndarray, window: Sequence[float], path: str = "PSF") -> list[tuple[int, ...]]:
    """The centres of the beads of a PSF image whose ``window`` (in the image's voxels, per
    axis) holds that bead alone.

    Maxima on a higher one's optical axis are the same bead (side lobes). One bead (or
    a computed PSF): its :func:`peak_centre`, whatever the window. Several:
    each bead's :func:`peak_centre` within its window, keeping the beads whose window
    overlaps no other bead's, then those whose window lies inside the image (all of them
    if none does: a stack thinner than the window), then, with three or more, those not
    brighter than ``CLUSTER_FACTOR`` times the median bead.

    Raises:
        ValueError: several beads and none alone; the message names ``path``.
    """
    image = np.asarray(image, np.float64)
    found = _same_bead_merged(local_maxima(image), tuple(window))
    if len(found) <= 1:
        return [peak_centre(image)]
    alone = [(p, h) for p, h in found if not any(_overlaps(p, q, window) for q, _ in found if q != p)]
    if not alone:
        raise ValueError(f"{path}: {len(found)} beads and none alone in a kernel window of "
                         f"{tuple(round(w, 1) for w in window)} voxels: crop the file about one bead or image "
                         "a sparser field of beads")
    inside = [(p, h) for p, h in alone if _fits(p, window, image.shape)] or alone
    if len(inside) >= 3:
        median = float(np.median([h for _, h in inside]))
        inside = [(p, h) for p, h in inside if h <= CLUSTER_FACTOR * median]
    background = float(np.median(image))
    return [_refined(image, p, window, background) for p, _ in inside]


def _refined(image: np.ndarray, centre: Sequence[int], window: Sequence[float],
             background: float) -> tuple[int, ...]:
    """:func:`peak_centre` of the window about ``centre``, over ``background`` (the image's
    median: a camera offset would otherwise pull the centroid to the window's middle)."""
    lo = [max(0, int(c - w // 2)) for c, w in zip(centre, window)]
    box = tuple(slice(a, int(c + w // 2) + 1) for a, c, w in zip(lo, centre, window))
    part = np.clip(image[box] - background, 0, None)
    return tuple(a + c for a, c in zip(lo, peak_centre(part)))
