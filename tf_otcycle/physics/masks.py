"""1-D Cartesian undersampling masks along the phase-encode (width) axis.

The algorithms are those of fastMRI's ``data/subsample.py`` (``RandomMaskFunc`` and
``EquispacedMaskFunc``) with a single acceleration, so a mask drawn here with seed ``s``
equals the one fastMRI draws with ``seed=s``. Each call owns a fresh
``np.random.RandomState(seed)``; fastMRI's ``choose_acceleration`` consumes one
``randint(0, 1)`` draw before the mask draw and so do we, so the streams line up.

Masks are float32 arrays of shape ``(num_cols,)``: 1 = acquired k-space column, 0 = missing.
Columns index the *centred* k-space (zero frequency at ``num_cols // 2``).

The paper samples x4 with 4 % autocalibration (ACS) lines: ``center_fraction=0.04``;
fastMRI's default for x4 is ``0.08``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

Seed = int | Sequence[int] | None


def _check(num_cols: int, acceleration: float, center_fraction: float) -> int:
    if int(num_cols) != num_cols or num_cols < 2:
        raise ValueError(f"num_cols: expected an integer >= 2, got {num_cols!r}")
    if not acceleration >= 1:
        raise ValueError(f"acceleration: expected a value >= 1, got {acceleration!r}")
    if not 0 <= center_fraction <= 1:
        raise ValueError(f"center_fraction: expected a value in [0, 1], got {center_fraction!r}")
    num_low = int(round(num_cols * center_fraction))
    if num_low > num_cols / acceleration:
        raise ValueError(
            f"center_fraction: {center_fraction} gives {num_low} ACS lines, more than the "
            f"{num_cols / acceleration:.1f} lines that acceleration {acceleration} allows "
            f"for num_cols={num_cols}"
        )
    return num_low


def acs_columns(num_cols: int, center_fraction: float) -> tuple[int, int]:
    """``(start, stop)`` of the fully sampled centre (ACS) that :func:`random_mask` and
    :func:`equispaced_mask` keep: ``round(num_cols * center_fraction)`` columns from
    ``(num_cols - num_low + 1) // 2``."""
    num_low = int(round(num_cols * center_fraction))
    pad = (num_cols - num_low + 1) // 2
    return pad, pad + num_low


def random_mask(
    num_cols: int, acceleration: float, center_fraction: float, seed: Seed = None
) -> np.ndarray:
    """fastMRI ``RandomMaskFunc``: a fully sampled centre plus uniformly random lines.

    ``num_low = round(num_cols * center_fraction)`` centre lines starting at
    ``pad = (num_cols - num_low + 1) // 2`` are always sampled; every other line is sampled
    independently with ``prob = (num_cols / acceleration - num_low) / (num_cols - num_low)``
    (drawn with ``RandomState(seed).uniform(size=num_cols) < prob``), so the *expected*
    acceleration is ``acceleration``.

    Args:
        num_cols: number of phase-encode columns W.
        acceleration: undersampling factor R >= 1.
        center_fraction: fraction of columns in the fully sampled centre (ACS).
        seed: seed for ``np.random.RandomState`` (int or sequence of ints, e.g.
            ``tuple(map(ord, fname))`` as fastMRI does per file); None draws fresh entropy.

    Returns:
        float32 array ``(num_cols,)`` of 0/1.
    """
    num_low = _check(num_cols, acceleration, center_fraction)
    rng = np.random.RandomState(seed)
    rng.randint(0, 1)  # fastMRI's choose_acceleration() with a single acceleration
    if num_cols == num_low:
        return np.ones(num_cols, np.float32)
    prob = (num_cols / acceleration - num_low) / (num_cols - num_low)
    mask = rng.uniform(size=num_cols) < prob
    start, stop = acs_columns(num_cols, center_fraction)
    mask[start:stop] = True
    return mask.astype(np.float32)


def equispaced_mask(
    num_cols: int,
    acceleration: float,
    center_fraction: float,
    offset: int | None = None,
    seed: Seed = None,
) -> np.ndarray:
    """fastMRI ``EquispacedMaskFunc``: a fully sampled centre plus equally spaced lines.

    The centre block is as in :func:`random_mask`. The outer lines are spaced by
    ``adjusted = acceleration * (num_low - num_cols) / (num_low * acceleration - num_cols)``
    so that the *total* acceleration is ``acceleration``, starting at ``offset``
    (drawn as ``RandomState(seed).randint(0, round(adjusted))`` when None).

    Args:
        num_cols: number of phase-encode columns W.
        acceleration: undersampling factor R >= 1.
        center_fraction: fraction of columns in the fully sampled centre (ACS).
        offset: index of the first outer line; None draws it from ``seed``.
        seed: seed for ``np.random.RandomState`` when ``offset`` is None.

    Returns:
        float32 array ``(num_cols,)`` of 0/1.
    """
    num_low = _check(num_cols, acceleration, center_fraction)
    rng = np.random.RandomState(seed)
    rng.randint(0, 1)  # fastMRI's choose_acceleration() with a single acceleration
    mask = np.zeros(num_cols, np.float32)
    start, stop = acs_columns(num_cols, center_fraction)
    mask[start:stop] = 1
    if num_low == 0 or num_low * acceleration == num_cols:
        adjusted = float(acceleration)
    else:
        adjusted = acceleration * (num_low - num_cols) / (num_low * acceleration - num_cols)
    if offset is None:
        offset = rng.randint(0, max(1, round(adjusted)))
    if not 0 <= offset < num_cols:
        raise ValueError(f"offset: expected 0 <= offset < {num_cols}, got {offset}")
    samples = np.around(np.arange(offset, num_cols - 1, adjusted)).astype(np.int64)
    mask[samples] = 1
    return mask


def make_mask(
    mask_type: str,
    num_cols: int,
    acceleration: float,
    center_fraction: float,
    seed: Seed = None,
) -> np.ndarray:
    """Dispatch on ``mask_type`` ('random' | 'equispaced'); see those functions."""
    if mask_type == "random":
        return random_mask(num_cols, acceleration, center_fraction, seed=seed)
    if mask_type == "equispaced":
        return equispaced_mask(num_cols, acceleration, center_fraction, seed=seed)
    raise ValueError(f"mask_type: expected 'random' or 'equispaced', got {mask_type!r}")


def crop_mask(mask: np.ndarray, num_cols: int) -> np.ndarray:
    """An acquisition's column mask ``(W,)`` on the centre crop's ``num_cols`` columns.

    Cropping the image keeps its pixel pitch, so crop column ``i`` holds the frequency
    ``(i - num_cols // 2) / num_cols`` cycles per pixel and takes the value of the acquired
    column nearest to it, ``round((i - num_cols // 2) * W / num_cols) + W // 2``. Exact when
    ``W == num_cols`` (then the mask itself); otherwise the crop's k-space mixes neighbouring
    columns within ``1 / num_cols`` and the result is the nearest-frequency approximation
    (fastMRI's knee files: 368 acquired columns, 320 cropped).

    Args:
        mask: ``(W,)``, non-zero where a column was acquired (centred k-space).
        num_cols: the crop's width, ``<= W``.

    Returns:
        float32 ``(num_cols,)`` of 0 and 1.
    """
    mask = np.asarray(mask)
    if mask.ndim != 1 or not 1 <= num_cols <= mask.shape[0]:
        raise ValueError(f"crop_mask: expected a 1-D mask of at least num_cols={num_cols} columns, got {mask.shape}")
    width = mask.shape[0]
    freq = np.arange(num_cols) - num_cols // 2
    cols = np.clip(np.round(freq * width / num_cols).astype(np.int64) + width // 2, 0, width - 1)
    return (mask[cols] != 0).astype(np.float32)


def flip_mask(mask: np.ndarray) -> np.ndarray:
    """The column mask of the left-right flipped image: ``x[..., ::-1]`` has centred k-space column
    ``i`` where ``x`` had ``(2 * (n // 2) - i) mod n`` (frequency ``f -> -f``; for even ``n`` the
    Nyquist column stays)."""
    n = mask.shape[-1]
    return np.take(mask, (2 * (n // 2) - np.arange(n)) % n, axis=-1)


def sampled_acceleration(mask: np.ndarray) -> float:
    """``W / (columns acquired)`` of a mask ``(W,)``: the acceleration it realises."""
    return float(mask.shape[-1] / max(1, np.count_nonzero(mask)))


def mask_problems(mask_type: str, acceleration: float, center_fraction: float) -> list[str]:
    """What is wrong with these mask parameters, each message naming its flag (empty: none)."""
    problems = []
    if mask_type not in ("random", "equispaced"):
        problems.append(f"--mask_type must be random or equispaced, got {mask_type!r}")
    if not acceleration >= 1:
        problems.append(f"--acceleration must be >= 1, got {acceleration}")
    if not 0 <= center_fraction < 1:
        problems.append(f"--center_fraction must be in [0, 1), got {center_fraction}")
    elif acceleration >= 1 and center_fraction * acceleration > 1:
        problems.append("--center_fraction * --acceleration must be <= 1 (more ACS lines than the budget)")
    return problems


@dataclasses.dataclass(frozen=True)
class MaskSpec:
    """A mask family and its parameters, what fastMRI's ``MaskFunc`` holds: ``spec(num_cols, seed)``
    draws one float32 mask ``(num_cols,)`` (:func:`make_mask`). The MRI pipelines, the test
    masks and ``reconstruct`` take one ``MaskSpec`` instead of its three numbers.

    Args:
        mask_type: ``"random"`` or ``"equispaced"`` (fastMRI's two 1-D Cartesian algorithms).
        acceleration: undersampling factor R >= 1.
        center_fraction: fraction of fully sampled centre (ACS) columns, in [0, 1), with
            ``center_fraction * acceleration <= 1``.
    """

    mask_type: str = "random"
    acceleration: float = 4.0
    center_fraction: float = 0.08

    def __post_init__(self):
        problems = mask_problems(self.mask_type, self.acceleration, self.center_fraction)
        if problems:
            raise ValueError("; ".join(problems))

    def __call__(self, num_cols: int, seed: Seed = None) -> np.ndarray:
        return make_mask(self.mask_type, num_cols, self.acceleration, self.center_fraction, seed=seed)


def file_seed(name: str) -> tuple[int, ...]:
    """fastMRI's per-file seed ``tuple(map(ord, fname))`` for reproducible test masks."""
    return tuple(map(ord, name))
