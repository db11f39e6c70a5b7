"""Microscopy benchmark sets that are not the training simulator's: other structures (beads,
nuclei, membranes, and real fluorescence nuclei), other optics and other noise.

    .venv/bin/python benchmarks/microscopy_sets.py --out data/quality/sets            # every set
    .venv/bin/python benchmarks/microscopy_sets.py --out data/quality/sets --sets real_nuclei

Each set ``<out>/<name>/`` has the layout of ``python -m tf_otcycle.data.synthetic microscopy``:
``train/blurred/*_blurred.tif`` (ground truth ``*_gt.tif`` beside, for the supervised
reference only), ``train/sharp/*_sharp.tif`` (other samples), ``val/`` and one test folder per
structure, ``test_<structure>/`` (the set's own, then another one: train on one family, test
on others), ``psf.tif`` (the true PSF), ``bead_psf.tif`` (the PSF as a user measures it
from a bead, :func:`bead_psf`, for ``--psf_init=file``), ``bead_slide_psf.tif`` (the same
from a slide of nine beads) and ``optics.flags`` (what a user knows of the
microscope: ``--wavelength``, ``--numerical_aperture``, ``--refractive_index``; the voxel size
is in each stack's ImageJ metadata). The optics and the noise of every set are away from the
training simulator's defaults (500 nm, NA 1.4, n 1.5, voxels 0.2 x 0.1 x 0.1 um, gain 7 gray
levels per photon, read noise 3, peak 255, no camera offset).

``real_nuclei`` is built from a real widefield fluorescence image, the 512 x 512 image of
stained nuclei from the 2018 Data Science Bowl (BBBC038, CC0) that ships in the ``stardist``
wheel on PyPI: the wheel is fetched from the package registry with ``pip download`` into
``--cache`` (once; checked by its SHA-256), the image read from it, cut into 16 disjoint
128 x 128 crops and lifted to 3-D (:func:`tf_otcycle.data.structures.lift_image`); crops are
dealt to the splits, so no two splits share a sample. It holds what a user with one sample
has: one blurred and two sharp stacks.
"""

from __future__ import annotations

import dataclasses
import io
import sys
from pathlib import Path

import numpy as np

from tf_otcycle.data import microscopy_sim, structures
from tf_otcycle.data.tiff import write_stack
from tf_otcycle.physics.psf import born_wolf_psf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: the sibling fetched.py
import fetched  # noqa: E402

REAL_WHEEL = ("stardist", "0.9.2", "stardist-0.9.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl")
REAL_MEMBER = "stardist/data/images/img2d.tif"
REAL_SHA256 = "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750"


@dataclasses.dataclass(frozen=True)
class SetSpec:
    """One benchmark set: its structures, optics (micrometres) and camera."""

    structure: str  # a key of structures.STRUCTURES, or "real_nuclei"
    other: str  # the second test family
    wavelength: float
    numerical_aperture: float
    refractive_index: float
    voxel_size: tuple[float, float, float]
    gain: float  # gray levels per photon
    sigma: float  # read noise, gray levels
    peak: float  # gray levels at the blurred 99.9th percentile
    offset: float  # camera offset, gray levels
    shape: tuple[int, int, int] = (32, 96, 96)
    num_blurred: int = 3
    num_sharp: int = 3
    num_test: int = 2


SETS = {
    "beads": SetSpec("beads", "nuclei", 0.60, 1.30, 1.518, (0.30, 0.10, 0.10), 3.0, 2.0, 1000.0, 100.0),
    "nuclei": SetSpec("nuclei", "membranes", 0.45, 1.20, 1.33, (0.30, 0.12, 0.12), 10.0, 4.0, 200.0, 0.0),
    "membranes": SetSpec("membranes", "beads", 0.55, 1.45, 1.518, (0.15, 0.08, 0.08), 5.0, 6.0, 400.0, 50.0),
    "real_nuclei": SetSpec("real_nuclei", "membranes", 0.52, 1.30, 1.518, (0.25, 0.10, 0.10), 8.0, 4.0, 300.0, 100.0,
                           shape=(32, 128, 128), num_blurred=1, num_sharp=2, num_test=4),
}
PSF_SHAPE = (32, 32, 32)


def real_image(cache: Path) -> np.ndarray:
    """The 512 x 512 uint16 nuclei image of the ``stardist`` wheel, fetched into ``cache``
    from the package registry once; ``RuntimeError`` if it cannot be or its hash differs."""
    import tifffile

    pip_args = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11")
    return tifffile.imread(io.BytesIO(fetched.wheel_member(cache, REAL_WHEEL, REAL_MEMBER, REAL_SHA256, pip_args)))


def real_crops(image: np.ndarray, size: int, seed: int) -> list[np.ndarray]:
    """The disjoint ``size x size`` crops of ``image`` in a seeded random order."""
    h, w = image.shape
    corners = [(i, j) for i in range(0, h - size + 1, size) for j in range(0, w - size + 1, size)]
    crops = [image[i : i + size, j : j + size] for i, j in corners]
    order = np.random.RandomState(seed).permutation(len(crops))
    return [crops[k] for k in order]


def ground_truths(spec: SetSpec, structure: str, count: int, seed: int, crops: list | None = None) -> list[np.ndarray]:
    """``count`` ground truths of ``structure`` (from ``crops`` for the real one)."""
    aspect = spec.voxel_size[0] / spec.voxel_size[2]
    out = []
    for i in range(count):
        rng = np.random.RandomState(seed + i)
        if structure == "real_nuclei":
            out.append(structures.lift_image(crops.pop(), spec.shape[0], rng, aspect))
        else:
            out.append(structures.STRUCTURES[structure](spec.shape, rng, aspect))
    return out


def write_set(out: Path, name: str, spec: SetSpec, cache: Path, seed: int = 0) -> dict[str, list[Path]]:
    """Write one set (see the module docstring) under ``out / name``."""
    root = out / name
    psf = born_wolf_psf(PSF_SHAPE, spec.voxel_size, spec.wavelength, spec.numerical_aperture, spec.refractive_index)
    crops = real_crops(real_image(cache), spec.shape[1], seed) if spec.structure == "real_nuclei" else None
    rng = np.random.RandomState(seed + 1000)
    written: dict[str, list[Path]] = {}

    def camera(v):
        return np.clip(np.round(v), 0, 65535).astype(np.uint16)

    def acquire(gt):
        return microscopy_sim.acquire(gt, psf, rng, spec.gain, spec.sigma, spec.peak, spec.offset)

    splits = [("train/blurred", spec.structure, spec.num_blurred), ("train/sharp", spec.structure, spec.num_sharp),
              ("val", spec.structure, 1), (f"test_{spec.structure}", spec.structure, spec.num_test),
              (f"test_{spec.other}", spec.other, spec.num_test)]
    sample = seed * 10_000
    for split, structure, count in splits:
        written[split] = []
        for gt in ground_truths(spec, structure, count, sample, crops):
            sim = acquire(gt)
            stem = root / split / f"s{sample:05d}"
            if split == "train/sharp":
                write_stack(f"{stem}_sharp.tif", sim["gt"], spec.voxel_size)
                written[split].append(Path(f"{stem}_sharp.tif"))
            else:
                write_stack(f"{stem}_blurred.tif", camera(sim["blurred"]), spec.voxel_size)
                write_stack(f"{stem}_gt.tif", sim["gt"], spec.voxel_size)
                written[split].append(Path(f"{stem}_blurred.tif"))
            sample += 1
    write_stack(root / "psf.tif", psf, spec.voxel_size)
    for grid in BEAD_FILES:
        write_bead_psf(root, spec, seed, grid)
    (root / "optics.flags").write_text(
        f"# {name}: the optics a user knows (the voxel size is in each stack's metadata)\n"
        f"--wavelength={spec.wavelength * 1000:g}\n--numerical_aperture={spec.numerical_aperture:g}\n"
        f"--refractive_index={spec.refractive_index:g}\n")
    return written


def bead_psf(spec: SetSpec, rng: np.random.RandomState, peak: float = 2000.0, oversampling: int = 2,
             grid: int = 1) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The set's PSF as a user measures it, for ``--psf_init=file``: one sub-resolution bead
    imaged with the set's optics and camera at ``oversampling`` times finer voxels (over the
    field of :data:`PSF_SHAPE`), ``peak`` gray levels at its brightest, the camera's noise and
    offset drawn (:func:`microscopy_sim.add_noise`), then the offset taken off as a user does:
    the median of the stack's outermost voxels (which also takes off some of the defocused
    light there), clipped at zero. ``grid`` > 1: a bead slide instead, ``grid`` x ``grid``
    beads in one plane, 1.5 fields apart, each bead's light spread over two fields.
    Returns ``(float32 stack, its voxel size)``."""
    size = tuple(n * oversampling for n in PSF_SHAPE)
    voxel = tuple(v / oversampling for v in spec.voxel_size)
    optics = (spec.wavelength, spec.numerical_aperture, spec.refractive_index)
    if grid == 1:
        image = born_wolf_psf(size, voxel, *optics)
    else:
        reach = (size[0], 2 * size[1], 2 * size[2])
        psf, pitch = born_wolf_psf(reach, voxel, *optics), 3 * size[1] // 2
        image = np.zeros((size[0], grid * pitch, grid * pitch), np.float32)
        for i, j in np.ndindex(grid, grid):
            top, left = pitch // 2 + i * pitch - size[1], pitch // 2 + j * pitch - size[2]
            dst = (slice(None), slice(max(top, 0), top + reach[1]), slice(max(left, 0), left + reach[2]))
            image[dst] += psf[:, max(-top, 0):, max(-left, 0):][:, :image[dst].shape[1], :image[dst].shape[2]]
    counts = microscopy_sim.add_noise(image * np.float32(peak / image.max()), rng, spec.gain, spec.sigma) + spec.offset
    border = np.ones(image.shape, bool)
    border[1:-1, 1:-1, 1:-1] = False
    return np.clip(counts - np.median(counts[border]), 0, None).astype(np.float32), voxel


BEAD_FILES = {1: "bead_psf.tif", 3: "bead_slide_psf.tif"}  # beads per side -> file name


def write_bead_psf(root: Path, spec: SetSpec, seed: int = 0, grid: int = 1) -> Path:
    """Write :func:`bead_psf` to ``root / BEAD_FILES[grid]`` with its voxel size (its own seed:
    the set's other files do not change)."""
    volume, voxel = bead_psf(spec, np.random.RandomState(seed + 2000), grid=grid)
    write_stack(root / BEAD_FILES[grid], volume, voxel)
    return root / BEAD_FILES[grid]


def set_flags(root: Path) -> list[str]:
    """``train/compare.py`` data flags of the set written under ``root``."""
    tests = sorted(p.name for p in root.glob("test_*") if p.is_dir())
    return [f"--flagfile={root}/optics.flags", f"--blurred_files={root}/train/blurred/*_blurred.tif",
            f"--sharp_files={root}/train/sharp/*_sharp.tif", f"--val_files={root}/val/*_blurred.tif",
            "--test_files=" + ",".join(f"{root}/{t}/*_blurred.tif" for t in tests), f"--true_psf={root}/psf.tif"]


def main(argv: list[str] | None = None) -> None:
    fetched.sets_main(argv, __doc__, SETS, write_set)


if __name__ == "__main__":
    main()
