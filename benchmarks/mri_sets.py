"""MRI benchmark sets that are not the training simulator's: real anatomy, other noise.

    .venv/bin/python benchmarks/mri_sets.py --out data/quality/mri_sets

``real_brain`` is built from a real T1-weighted brain MRI: the ICBM 2009a nonlinear symmetric
template (MNI152: 1 mm isotropic, skull-stripped, the average of 152 adults' scans after
nonlinear registration) that ships in the ``nilearn`` wheel on PyPI. The wheel is fetched
from the package registry with ``pip download`` into ``--cache`` (once; the member checked
by its SHA-256) and the NIfTI-1 volume read from it (:func:`read_nifti`). Nothing of the
knee simulator (:mod:`tf_otcycle.data.synthetic`) is used but its fastMRI writer.

Its axial slices are cut into slabs of ``slices`` slices ``step`` planes apart, ``gap``
planes between slabs, and the slabs dealt to ``clean/``, ``measured/``, ``val/`` and
``test/`` (:data:`SPLITS`): no two splits share a slice. Each file (a "subject") is one
slab seen with its own in-plane rotation and scale, a smooth multiplicative bias field
(coil shading), a smooth phase and complex Gaussian k-space noise (three times the
simulator's, relative to the image's scale), written as a fastMRI single-coil file
(``kspace`` ``(slices, 2S, W)`` with read-out oversampling, ``reconstruction_esc``,
acquisition ``AXT1``); the training slabs are seen several times (``copies``), each time
as another subject. The same ``train/compare.py`` flags as the demo data read it
(:func:`set_flags`).
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from tf_otcycle.data.synthetic import fft2c, write_kspace_file

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: the sibling fetched.py
import fetched  # noqa: E402

REAL_WHEEL = ("nilearn", "0.14.1", "nilearn-0.14.1-py3-none-any.whl")
REAL_MEMBER = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
REAL_SHA256 = "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6"

# Slab k of the brain's axial range goes to SPLITS[k % len(SPLITS)]: every split spans the brain.
SPLITS = ("clean", "measured", "test", "clean", "measured", "val", "clean", "measured", "test", "clean",
          "measured", "val", "test")

# A voxel above this fraction of the volume's (or image's) maximum is brain, not background.
BRAIN_LEVEL = 0.05

# NIfTI-1 datatype codes -> numpy dtypes (little-endian; the header's byte order is checked)
_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}


@dataclasses.dataclass(frozen=True)
class MRISetSpec:
    """One benchmark set: its slabs, the subjects drawn from them and the acquisition."""

    size: int = 128  # crop size S; k-space (2S, W), W = S + 2 (S // 16) as the simulator's
    zoom: float = 0.62  # in-plane resampling of the 1 mm slices (1.6 mm pixels: the brain fits the crop)
    slices: int = 4  # per file
    step: int = 2  # planes between a file's slices
    gap: int = 2  # planes left out between slabs
    min_brain: float = 0.1  # slices whose brain covers less of the plane are left out
    copies: int = 4  # subjects per training slab (val, test: 1)
    rotation: float = 8.0  # degrees, uniform in +-
    scale: float = 0.08  # relative, uniform in +-
    bias: float = 0.2  # amplitude of the smooth multiplicative field
    phase: float = 1.5  # radians, amplitude of the smooth phase
    noise: float = 0.03  # complex k-space noise std relative to the image's 99th percentile (simulator: 0.01)


SETS = {"real_brain": MRISetSpec()}


def read_nifti(data: bytes, name: str = "volume") -> np.ndarray:
    """A NIfTI-1 single-file volume (``.nii``, or gzipped ``.nii.gz``) as float32, scaled by
    its ``scl_slope``/``scl_inter``; ``ValueError`` naming ``name`` and the problem otherwise."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 352 or struct.unpack("<i", data[:4])[0] != 348 or data[344:348] != b"n+1\x00":
        raise ValueError(f"{name}: not a little-endian single-file NIfTI-1 volume (header size 348, magic n+1)")
    dim = struct.unpack("<8h", data[40:56])
    datatype = struct.unpack("<h", data[70:72])[0]
    offset, slope, inter = struct.unpack("<3f", data[108:120])
    if not 1 <= dim[0] <= 7 or datatype not in _NIFTI_DTYPES:
        raise ValueError(f"{name}: unsupported NIfTI dims {dim[0]} or datatype {datatype}")
    shape = tuple(int(d) for d in dim[1 : dim[0] + 1])
    dtype = np.dtype(_NIFTI_DTYPES[datatype]).newbyteorder("<")
    count = int(np.prod(shape))
    if int(offset) + count * dtype.itemsize > len(data):
        raise ValueError(f"{name}: {len(data)} bytes, too few for {shape} of {dtype}")
    volume = np.frombuffer(data, dtype, count=count, offset=int(offset)).reshape(shape, order="F")
    volume = volume.astype(np.float32)
    if slope != 0.0 and (slope != 1.0 or inter != 0.0):  # scl_slope 0: the voxels are not scaled
        volume = volume * np.float32(slope) + np.float32(inter)
    return volume


def real_volume(cache: Path) -> np.ndarray:
    """The 197 x 233 x 189 T1 template of the ``nilearn`` wheel (x: left-right, y:
    posterior-anterior, z: inferior-superior), fetched into ``cache`` from the package
    registry once; ``RuntimeError`` if it cannot be or its hash differs."""
    data = fetched.wheel_member(cache, REAL_WHEEL, REAL_MEMBER, REAL_SHA256)
    return read_nifti(data, f"{REAL_WHEEL[2]}:{REAL_MEMBER}")


def axial_slabs(volume: np.ndarray, spec: MRISetSpec) -> list[np.ndarray]:
    """The slabs ``(slices, AP, LR)`` (anterior up) of ``volume`` ``(LR, AP, IS)``, inferior first,
    over the planes where the brain covers at least ``spec.min_brain`` of the slice."""
    brain = (volume > BRAIN_LEVEL * volume.max()).mean(axis=(0, 1))
    planes = np.flatnonzero(brain >= spec.min_brain)
    span = (spec.slices - 1) * spec.step + 1
    starts = range(int(planes[0]), int(planes[-1]) - span + 2, span + spec.gap)
    slabs = [volume[:, :, s : s + span : spec.step] for s in starts]
    return [np.transpose(slab, (2, 1, 0))[:, ::-1] for slab in slabs]


def _smooth(rng: np.random.RandomState, shape: tuple[int, int], cells: int = 4) -> np.ndarray:
    """A smooth field in [-1, 1] of ``shape``: cubic upsampling of ``cells x cells`` normal draws."""
    coarse = rng.standard_normal((cells, cells))
    field = ndimage.zoom(coarse, (shape[0] / cells, shape[1] / cells), order=3)[: shape[0], : shape[1]]
    return field / max(np.abs(field).max(), 1e-6)


def subject(slab: np.ndarray, spec: MRISetSpec, rng: np.random.RandomState) -> np.ndarray:
    """Complex images ``(slices, 2S, W)`` of one subject: ``slab`` resampled by ``spec.zoom`` with
    this subject's rotation and scale, centred in the k-space frame, under its bias field and phase,
    scaled so that the magnitude's 99th percentile inside the brain is 1."""
    height, width = 2 * spec.size, spec.size + 2 * (spec.size // 16)
    angle = np.deg2rad(rng.uniform(-spec.rotation, spec.rotation))
    zoom = spec.zoom * (1.0 + rng.uniform(-spec.scale, spec.scale))
    # output pixel (r, c) <- input pixel centre_in + A^-1 (r, c) - centre_out
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation / zoom
    centre_in = (np.array(slab.shape[1:]) - 1) / 2
    centre_out = (np.array([height, width]) - 1) / 2
    offset = centre_in - matrix @ centre_out
    images = np.stack([ndimage.affine_transform(s, matrix, offset, (height, width), order=3) for s in slab])
    images = np.clip(images, 0.0, None)
    bias = 1.0 + spec.bias * _smooth(rng, (height, width))
    phase = spec.phase * _smooth(rng, (height, width)) + rng.uniform(-np.pi, np.pi)
    images = images * bias[None]
    inside = images[images > BRAIN_LEVEL * images.max()]
    images = images / np.percentile(inside, 99)
    return (images * np.exp(1j * phase)[None]).astype(np.complex64)


def write_set(out: Path, name: str, spec: MRISetSpec, volume: np.ndarray, seed: int = 0) -> dict[str, list[Path]]:
    """Write one set (see the module docstring) under ``out / name``; the files written per split."""
    root = out / name
    rng = np.random.RandomState(seed)
    written: dict[str, list[Path]] = {split: [] for split in dict.fromkeys(SPLITS)}
    number = 0
    for k, slab in enumerate(axial_slabs(volume, spec)):
        split = SPLITS[k % len(SPLITS)]
        for _ in range(spec.copies if split in ("clean", "measured") else 1):
            path = root / split / f"file{number:06d}.h5"
            write_kspace_file(path, fft2c(subject(slab, spec, rng)), spec.size, spec.noise, rng,
                              f"{name}-slab{k:02d}-{number:04d}", acquisition="AXT1")
            written[split].append(path)
            number += 1
    return written


def set_flags(root: Path) -> list[str]:
    """``train/compare.py`` data flags of the set written under ``root``."""
    return [f"--{split}_files={root}/{split}/*.h5" for split in ("clean", "measured", "val", "test")]


def main(argv: list[str] | None = None) -> None:
    fetched.sets_main(argv, __doc__, SETS, lambda out, name, spec, cache, seed: write_set(
        out, name, spec, real_volume(cache), seed))


if __name__ == "__main__":
    main()
