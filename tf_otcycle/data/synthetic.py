"""Synthetic data in the real file formats, so demos and tests run with no download.

MRI: knee-like coronal slices written as fastMRI HDF5 files
(``kspace`` complex64 ``(slices, H, W)`` or ``(slices, coils, H, W)``,
``reconstruction_esc`` / ``reconstruction_rss`` float32 ``(slices, S, S)``, attributes
``acquisition``, ``max``, ``norm``, ``patient_id`` and an ``ismrmrd_header`` XML).
Each subject draws its own anatomy (femur condyles, tibial plateau, cartilage, joint
space, marrow texture, muscle, subcutaneous fat, skin), which changes smoothly from slice
to slice, with a smooth random phase and complex Gaussian k-space noise. As in fastMRI,
the k-space has twice the crop height (read-out oversampling) and ~15 % more columns.

Microscopy: simulated microtubule volumes (see :mod:`tf_otcycle.data.microscopy_sim`)
written as TIFF stacks, the noisy blurred stack as uint16 and the ground truth as float32.

Command line::

    python -m tf_otcycle.data.synthetic mri --out DIR [--size 128] [--slices 4] ...

writes ``DIR/clean/`` and ``DIR/measured/`` (disjoint subjects: the two unpaired training
domains), ``DIR/val/`` and ``DIR/test/``;

    python -m tf_otcycle.data.synthetic microscopy --out DIR [--shape 32,96,96] ...

writes ``DIR/train/blurred/`` (``*_blurred.tif``, each with its ``*_gt.tif`` for the
supervised baseline) and ``DIR/train/sharp/`` (other samples, 500 nm),
``DIR/val/`` (500 nm) and ``DIR/test_400nm``, ``test_500nm``, ``test_600nm`` (the same
samples at three wavelengths, the paper's generalisation study), each test/val file as
``NAME_blurred.tif`` beside ``NAME_gt.tif``, and the true PSFs as ``DIR/psf_<λ>nm.tif``;

    python -m tf_otcycle.data.synthetic deblur2d --out DIR [--size 128] ...

writes 2-D widefield images (:func:`write_deblur2d_dataset`): 16-bit TIFF measurements,
8-bit PNG sharp images, ``val/`` and ``test/`` pairs and ``DIR/psf.tif``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage

from tf_otcycle.io_utils import atomic_path
from tf_otcycle.physics.masks import MaskSpec, file_seed, sampled_acceleration

# --- MRI ------------------------------------------------------------------------------------


def _smooth_field(rng: np.random.RandomState, shape, sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return f / (f.std() + 1e-8)


def _soft(d: np.ndarray, width: float) -> np.ndarray:
    """Soft indicator of ``d < 0`` (signed distance-like) with an edge of ``width``."""
    return 1.0 / (1.0 + np.exp(np.clip(d / width, -50, 50)))


class KneePhantom:
    """Random knee-like anatomy of one subject; ``slice(t)`` renders position t in [0, 1].

    Args:
        size: side S of the square field of view that holds the anatomy (the crop).
        seed: subject seed.
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        rng = np.random.RandomState(seed)
        self.rng = rng
        u = lambda a, b: rng.uniform(a, b)  # noqa: E731
        self.p = {
            "leg_w": u(0.62, 0.82), "leg_taper": u(-0.1, 0.1), "fat": u(0.05, 0.09),
            "gap": u(0.025, 0.05), "gap_u": u(-0.12, 0.05), "tilt": u(-0.08, 0.08),
            "cond_r": u(0.24, 0.32), "cond_sep": u(0.2, 0.3), "shaft_w": u(0.2, 0.3),
            "tib_w": u(0.38, 0.5), "tib_shaft": u(0.22, 0.3), "cart": u(0.025, 0.04),
            "i_fat": u(0.8, 1.0), "i_muscle": u(0.3, 0.42), "i_marrow": u(0.55, 0.75),
            "i_cart": u(0.65, 0.85), "i_fluid": u(0.7, 1.0), "shift_v": u(-0.06, 0.06),
        }
        n = size
        self.tex_marrow = _smooth_field(rng, (n, n), max(1.5, n / 40))
        self.tex_muscle = _smooth_field(rng, (n, n), max(2.0, n / 20))
        self.striation = rng.uniform(0, 2 * np.pi)
        self.phase_field = _smooth_field(rng, (n // 4 + 2, n // 4 + 2), 2.0)
        self.phase_amp = u(0.5, 2.0)

    def slice(self, t: float) -> np.ndarray:
        """Complex image ``(S, S)``: anatomy magnitude (about [0, 1]) with a smooth phase."""
        p, n = self.p, self.size
        c = np.linspace(-1, 1, n)
        uu, vv = np.meshgrid(c, c, indexing="ij")  # u: vertical (superior-inferior)
        s = np.sin(np.pi * t)  # anatomy is widest mid-volume
        vv = vv - p["shift_v"]
        uu = uu - p["tilt"] * vv
        edge = 1.5 / n
        leg_w = p["leg_w"] * (0.85 + 0.15 * s) + p["leg_taper"] * uu
        leg = _soft(np.abs(vv) - leg_w, edge)
        inner = _soft(np.abs(vv) - (leg_w - p["fat"]), edge)
        g0 = p["gap_u"]
        # Femur: two condyles and a shaft above the joint.
        r = p["cond_r"] * (0.7 + 0.3 * s)
        sep = p["cond_sep"] * (0.8 + 0.4 * t)
        cond = [np.hypot(uu - (g0 - r), vv - sgn * sep) - r for sgn in (-1, 1)]
        femur_d = np.minimum.reduce(cond + [np.maximum(np.abs(vv) - p["shaft_w"], uu - (g0 - r))])
        # Tibia: plateau below the joint, narrowing to a shaft.
        top = g0 + p["gap"]
        width = p["tib_w"] * (0.85 + 0.15 * s) - (p["tib_w"] - p["tib_shaft"]) * np.clip((uu - top) / 0.5, 0, 1)
        tibia_d = np.maximum(np.abs(vv) - width, top - uu)
        bone = np.maximum(_soft(femur_d, edge), _soft(tibia_d, edge))
        cortex = bone - np.maximum(_soft(femur_d + 0.025, edge), _soft(tibia_d + 0.025, edge))
        cart = np.maximum(
            _soft(np.abs(femur_d + 0.0) - p["cart"], edge) * (uu > g0 - 2 * r),
            _soft(np.abs(tibia_d) - p["cart"], edge) * (np.abs(uu - top) < 0.15),
        ) * (1 - bone)
        fluid = _soft(np.abs(uu - (g0 + p["gap"] / 2)) - p["gap"] / 3, edge) * _soft(np.abs(vv) - 0.5 * leg_w, edge)
        muscle = p["i_muscle"] * (1 + 0.12 * self.tex_muscle) * (1 + 0.06 * np.sin(24 * vv + 4 * uu + self.striation))
        img = p["i_fat"] * (leg - inner)  # subcutaneous fat
        img = img + inner * (1 - bone) * (1 - cart) * muscle
        img = img + cart * p["i_cart"] + fluid * (1 - bone) * p["i_fluid"] * 0.6
        marrow = p["i_marrow"] * (1 + 0.08 * self.tex_marrow)
        img = img * (1 - bone) + bone * (marrow * (1 - cortex) + 0.05 * cortex)
        img = np.clip(img, 0, None) * leg
        phase = ndimage.zoom(self.phase_field, n / self.phase_field.shape[0], order=3)[:n, :n]
        phase = self.phase_amp * phase + 0.5 * t
        return (img * np.exp(1j * phase)).astype(np.complex64)


def fft2c(x: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D FFT over the last two axes (numpy; fastMRI's convention)."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def ifft2c(k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fft2c`."""
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _crop(x: np.ndarray, size: int) -> np.ndarray:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def _ismrmrd_header(kspace_shape, size: int) -> bytes:
    h, w = kspace_shape[-2:]
    return f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <encoding>
    <trajectory>cartesian</trajectory>
    <encodedSpace><matrixSize><x>{h}</x><y>{w}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{2 * size * 0.5}</x><y>{w * 0.5}</y><z>3</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>{size}</x><y>{size}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{size * 0.5}</x><y>{size * 0.5}</y><z>3</z></fieldOfView_mm></reconSpace>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{w - 1}</maximum>
        <center>{w // 2}</center></kspace_encoding_step_1>
    </encodingLimits>
  </encoding>
</ismrmrdHeader>""".encode()


def write_fastmri_file(
    path: str | os.PathLike,
    subject_seed: int,
    size: int = 64,
    slices: int = 8,
    coils: int = 0,
    noise: float = 0.01,
    acquisition: MaskSpec | None = None,
) -> None:
    """Write one synthetic subject as a fastMRI knee file (single-coil, or multi-coil if coils > 0).

    Args:
        path: output ``.h5`` file.
        subject_seed: seed of the anatomy, phase, coils and noise.
        size: crop size S (``reconstruction_*`` is ``(slices, S, S)``); k-space is
            ``(2S, W)`` with ``W = S + S//8`` rounded to even, as fastMRI's 640 x 368 for 320.
        slices: number of slices.
        coils: 0 for a single-coil file (``reconstruction_esc``), else the coil count
            (``reconstruction_rss``).
        noise: standard deviation of complex k-space noise relative to the image scale.
        acquisition: write an undersampled acquisition in fastMRI's challenge layout instead:
            k-space times a mask drawn from it with the file name's seed, the ``mask``, and no
            ``reconstruction_*`` (:func:`write_kspace_file`).
    """
    phantom = KneePhantom(size, subject_seed)
    rng = np.random.RandomState(subject_seed + 7919)
    height, width = 2 * size, size + 2 * (size // 16)
    images = np.zeros((slices, height, width), np.complex64)
    top, left = (height - size) // 2, (width - size) // 2
    for i, t in enumerate(np.linspace(0.1, 0.9, slices)):
        images[i, top : top + size, left : left + size] = phantom.slice(float(t))
    if coils:
        c = np.linspace(-1, 1, width)[None, :]
        r = np.linspace(-1, 1, height)[:, None]
        sens = []
        for j in range(coils):
            ang = 2 * np.pi * j / coils
            centre = (0.9 * np.sin(ang), 0.9 * np.cos(ang))
            mag = np.exp(-((r - centre[0]) ** 2 + (c - centre[1]) ** 2) / 1.2)
            sens.append(mag * np.exp(1j * (ang + 0.5 * r * c)))
        sens = np.stack(sens).astype(np.complex64)  # (coils, H, W)
        images_c = images[:, None] * sens[None]
        kspace = fft2c(images_c)
    else:
        kspace = fft2c(images)
    mask = None if acquisition is None else acquisition(kspace.shape[-1], seed=file_seed(Path(path).name))
    write_kspace_file(path, kspace, size, noise, rng, f"synthetic-{subject_seed:05d}", mask=mask)


def write_kspace_file(
    path: str | os.PathLike,
    kspace: np.ndarray,
    size: int,
    noise: float,
    rng: np.random.RandomState,
    patient_id: str,
    acquisition: str = "CORPD_FBK",
    mask: np.ndarray | None = None,
) -> None:
    """Write fully sampled ``kspace`` as a fastMRI file, with complex Gaussian noise added.

    Args:
        path: output ``.h5`` file (written atomically).
        kspace: complex ``(slices, H, W)`` (single-coil, ``reconstruction_esc``: the magnitude)
            or ``(slices, coils, H, W)`` (``reconstruction_rss``), centred, orthonormal
            (:func:`fft2c` of the images).
        size: crop size S of the ``(slices, S, S)`` reconstruction.
        noise: standard deviation of the complex noise added to ``kspace``, in its units.
        rng: draws the noise.
        patient_id: the file's ``patient_id`` attribute.
        acquisition: its ``acquisition`` attribute (fastMRI's protocol name, e.g. ``AXT1``).
        mask: ``(W,)``: write the undersampled acquisition instead, as fastMRI's challenge files
            hold it: ``kspace`` times the mask, a ``mask`` dataset (bool), the attributes
            ``acceleration`` and ``num_low_frequency`` (the centre's run of acquired columns),
            and no ``reconstruction_*``.
    """
    kspace = kspace + noise * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)) / np.sqrt(2)
    kspace = (kspace * 1e-4).astype(np.complex64)  # scanner units are small, as in fastMRI
    recon_full = ifft2c(kspace)
    if kspace.ndim == 4:
        target = np.sqrt(np.sum(np.abs(recon_full) ** 2, axis=1))
        name = "reconstruction_rss"
    else:
        target = np.abs(recon_full)
        name = "reconstruction_esc"
    target = _crop(target, size).astype(np.float32)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        if mask is None:
            f.create_dataset("kspace", data=kspace)
            f.create_dataset(name, data=target)
            f.attrs["max"] = float(target.max())
            f.attrs["norm"] = float(np.linalg.norm(target))
        else:
            f.create_dataset("kspace", data=(kspace * mask).astype(np.complex64))
            f.create_dataset("mask", data=np.asarray(mask) != 0)
            f.attrs["acceleration"] = int(round(sampled_acceleration(mask)))
            f.attrs["num_low_frequency"] = _centre_run(mask)
        f.create_dataset("ismrmrd_header", data=_ismrmrd_header(kspace.shape, size))
        f.attrs["acquisition"] = acquisition
        f.attrs["patient_id"] = patient_id


def _centre_run(mask: np.ndarray) -> int:
    """The number of consecutive acquired columns around the centre ``W // 2``."""
    acquired = np.asarray(mask) != 0
    centre = acquired.shape[0] // 2
    if not acquired[centre]:
        return 0
    gaps = np.flatnonzero(~acquired)
    left, right = gaps[gaps < centre].max(initial=-1), gaps[gaps > centre].min(initial=acquired.shape[0])
    return int(right - left - 1)


def write_mri_dataset(
    out: str | os.PathLike,
    size: int = 128,
    slices: int = 4,
    num_clean: int = 32,
    num_measured: int = 32,
    num_val: int = 2,
    num_test: int = 4,
    coils: int = 0,
    seed: int = 0,
    acquisition: MaskSpec | None = None,
) -> dict[str, list[Path]]:
    """Write ``clean/``, ``measured/``, ``val/`` and ``test/`` folders of distinct subjects;
    with ``acquisition`` the ``measured/`` files are undersampled acquisitions (fastMRI's
    challenge layout, :func:`write_fastmri_file`)."""
    out = Path(out)
    written: dict[str, list[Path]] = {}
    subject = seed * 10_000
    for split, count in (("clean", num_clean), ("measured", num_measured), ("val", num_val), ("test", num_test)):
        written[split] = []
        for _ in range(count):
            path = out / split / f"file{subject:06d}.h5"
            write_fastmri_file(path, subject, size=size, slices=slices, coils=coils,
                               acquisition=acquisition if split == "measured" else None)
            written[split].append(path)
            subject += 1
    return written


# --- microscopy ------------------------------------------------------------------------------


def write_microscopy_dataset(
    out: str | os.PathLike,
    shape: tuple[int, int, int] = (32, 96, 96),
    num_blurred: int = 6,
    num_sharp: int = 6,
    num_val: int = 1,
    num_test: int = 2,
    train_wavelength_nm: float = 500.0,
    test_wavelengths_nm: tuple[float, ...] = (400.0, 500.0, 600.0),
    voxel_size: tuple[float, float, float] = (0.2, 0.1, 0.1),
    psf_shape: tuple[int, int, int] = (32, 32, 32),
    gain: float = 7.0,
    sigma: float = 3.0,
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Write the microscopy folders (see the module docstring); lengths in micrometres."""
    from tf_otcycle.data import microscopy_sim
    from tf_otcycle.data.tiff import write_stack
    from tf_otcycle.physics.psf import born_wolf_psf

    out = Path(out)
    written: dict[str, list[Path]] = {}

    def acquire(sample: int, wavelength_nm: float):
        return microscopy_sim.simulate(
            shape, sample, wavelength=wavelength_nm / 1000, voxel_size=voxel_size, psf_shape=psf_shape,
            gain=gain, sigma=sigma,
        )

    def as_camera(v):
        return np.clip(np.round(v), 0, 65535).astype(np.uint16)

    sample = seed * 10_000
    written["blurred"] = []
    for _ in range(num_blurred):
        path = out / "train" / "blurred" / f"sample{sample:05d}_blurred.tif"
        sim = acquire(sample, train_wavelength_nm)
        write_stack(path, as_camera(sim["blurred"]), voxel_size)
        # Its ground truth beside it: unused by the unpaired method, used by the supervised baseline.
        write_stack(out / "train" / "blurred" / f"sample{sample:05d}_gt.tif", sim["gt"], voxel_size)
        written["blurred"].append(path)
        sample += 1
    written["sharp"] = []
    for _ in range(num_sharp):
        path = out / "train" / "sharp" / f"sample{sample:05d}_sharp.tif"
        write_stack(path, acquire(sample, train_wavelength_nm)["gt"], voxel_size)
        written["sharp"].append(path)
        sample += 1
    splits = [("val", train_wavelength_nm, num_val)] + [(f"test_{w:g}nm", w, num_test) for w in test_wavelengths_nm]
    first_test = sample + num_val
    for split, wavelength, count in splits:
        written[split] = []
        start = sample if split == "val" else first_test
        for i in range(count):
            sim = acquire(start + i, wavelength)
            name = f"sample{start + i:05d}"
            write_stack(out / split / f"{name}_blurred.tif", as_camera(sim["blurred"]), voxel_size)
            write_stack(out / split / f"{name}_gt.tif", sim["gt"], voxel_size)
            written[split].append(out / split / f"{name}_blurred.tif")
    for wavelength in sorted({train_wavelength_nm, *test_wavelengths_nm}):
        write_stack(out / f"psf_{wavelength:g}nm.tif", born_wolf_psf(psf_shape, voxel_size, wavelength / 1000),
                    voxel_size)
    return written


# --- 2-D deblurring ----------------------------------------------------------------------------


def write_deblur2d_dataset(
    out: str | os.PathLike,
    shape: tuple[int, int] = (128, 128),
    num_blurred: int = 12,
    num_sharp: int = 12,
    num_val: int = 1,
    num_test: int = 4,
    wavelength_nm: float = 500.0,
    pixel_size: float = 0.1,
    psf_size: int = 31,
    gain: float = 7.0,
    sigma: float = 3.0,
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Write the 2-D widefield folders: ``train/blurred/`` (16-bit TIFF ``NAME_blurred.tif``
    with ``NAME_gt.tif`` beside), ``train/sharp/`` (other samples, 8-bit PNG), ``val/`` and
    ``test/`` (``NAME_blurred.tif`` + ``NAME_gt.tif``) and the true PSF ``psf.tif``."""
    from tf_otcycle.data import microscopy_sim
    from tf_otcycle.data.images import write_image

    out = Path(out)

    def acquire(sample: int):
        return microscopy_sim.simulate_widefield_2d(shape, sample, wavelength_nm / 1000, pixel_size, psf_size=psf_size,
                                                    gain=gain, sigma=sigma)

    def camera(v):
        return np.clip(np.round(v), 0, 65535).astype(np.uint16)

    written: dict[str, list[Path]] = {"blurred": [], "sharp": []}
    sample = seed * 10_000 + 5_000
    for _ in range(num_blurred):
        sim = acquire(sample)
        path = out / "train" / "blurred" / f"img{sample:05d}_blurred.tif"
        write_image(path, camera(sim["blurred"]))
        write_image(out / "train" / "blurred" / f"img{sample:05d}_gt.tif", sim["gt"])
        written["blurred"].append(path)
        sample += 1
    for _ in range(num_sharp):
        gt = acquire(sample)["gt"]
        path = out / "train" / "sharp" / f"img{sample:05d}_sharp.png"
        write_image(path, np.round(255 * gt / max(float(gt.max()), 1e-12)).astype(np.uint8))
        written["sharp"].append(path)
        sample += 1
    for split, count in (("val", num_val), ("test", num_test)):
        written[split] = []
        for _ in range(count):
            sim = acquire(sample)
            write_image(out / split / f"img{sample:05d}_blurred.tif", camera(sim["blurred"]))
            write_image(out / split / f"img{sample:05d}_gt.tif", sim["gt"])
            written[split].append(out / split / f"img{sample:05d}_blurred.tif")
            sample += 1
    write_image(out / "psf.tif", acquire(0)["psf"])
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tf_otcycle.data.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", required=True)
    mri = sub.add_parser("mri", help="fastMRI-format knee files")
    mri.add_argument("--out", required=True, help="output folder")
    mri.add_argument("--size", type=int, default=128,
                     help="crop size S (reconstruction is S x S); 128 leaves 5 ACS lines at 4 %%")
    mri.add_argument("--slices", type=int, default=4, help="slices per file")
    mri.add_argument("--num_clean", type=int, default=32, help="subjects in clean/")
    mri.add_argument("--num_measured", type=int, default=32, help="subjects in measured/")
    mri.add_argument("--num_val", type=int, default=2, help="subjects in val/")
    mri.add_argument("--num_test", type=int, default=4, help="subjects in test/")
    mri.add_argument("--coils", type=int, default=0, help="0: single-coil files; N: N-coil files")
    mri.add_argument("--seed", type=int, default=0, help="base seed of the subjects")
    mri.add_argument("--acquired", action="store_true",
                     help="write measured/ as undersampled acquisitions in fastMRI's challenge layout (k-space times "
                          "a 'mask' drawn with the file name's seed, no reconstruction), single-coil")
    mri.add_argument("--acceleration", type=float, default=4.0, help="with --acquired: the masks' acceleration")
    mri.add_argument("--center_fraction", type=float, default=0.04,
                     help="with --acquired: the masks' fully sampled centre fraction")
    mri.add_argument("--mask_type", choices=["random", "equispaced"], default="random",
                     help="with --acquired: fastMRI's mask algorithm")
    mic = sub.add_parser("microscopy", help="TIFF stacks of simulated microtubules")
    mic.add_argument("--out", required=True, help="output folder")
    mic.add_argument("--shape", default="32,96,96", help="volume shape z,y,x in voxels")
    mic.add_argument("--voxel_size", default="0.2,0.1,0.1", help="voxel size dz,dy,dx in micrometres")
    mic.add_argument("--num_blurred", type=int, default=6, help="samples in train/blurred/")
    mic.add_argument("--num_sharp", type=int, default=6, help="(other) samples in train/sharp/")
    mic.add_argument("--num_val", type=int, default=1, help="samples in val/")
    mic.add_argument("--num_test", type=int, default=2, help="samples in each test_<λ>nm/")
    mic.add_argument("--wavelength", type=float, default=500.0, help="training/validation wavelength in nm")
    mic.add_argument("--test_wavelengths", default="400,500,600", help="test wavelengths in nm")
    mic.add_argument("--gain", type=float, default=7.0, help="Poisson parameter m: gray levels per photon")
    mic.add_argument("--noise_sigma", type=float, default=3.0, help="Gaussian read noise sigma in gray levels")
    mic.add_argument("--seed", type=int, default=0, help="base seed of the samples")
    d2 = sub.add_parser("deblur2d", help="2-D widefield images of simulated microtubules")
    d2.add_argument("--out", required=True, help="output folder")
    d2.add_argument("--size", type=int, default=128, help="image size (square)")
    d2.add_argument("--num_blurred", type=int, default=12, help="images in train/blurred/")
    d2.add_argument("--num_sharp", type=int, default=12, help="(other) images in train/sharp/")
    d2.add_argument("--num_val", type=int, default=1, help="images in val/")
    d2.add_argument("--num_test", type=int, default=4, help="images in test/")
    d2.add_argument("--wavelength", type=float, default=500.0, help="emission wavelength in nm")
    d2.add_argument("--seed", type=int, default=0, help="base seed of the samples")
    args = parser.parse_args(argv)
    if args.kind == "deblur2d":
        if args.size < 32:
            parser.error("--size must be >= 32")
        written = write_deblur2d_dataset(args.out, (args.size, args.size), args.num_blurred, args.num_sharp,
                                         args.num_val,
                                         args.num_test, args.wavelength, seed=args.seed)
        for split, paths in written.items():
            print(f"{split:>8}: {len(paths)} images")
    elif args.kind == "mri":
        if args.size < 8 or args.slices < 1:
            parser.error("--size must be >= 8 and --slices >= 1")
        acquisition = None
        if args.acquired:
            if args.coils:
                parser.error("--acquired writes single-coil acquisitions; leave --coils at 0")
            try:
                acquisition = MaskSpec(args.mask_type, args.acceleration, args.center_fraction)
            except ValueError as e:
                parser.error(str(e))
        written = write_mri_dataset(
            args.out, args.size, args.slices, args.num_clean, args.num_measured, args.num_val,
            args.num_test, args.coils, args.seed, acquisition,
        )
        for split, paths in written.items():
            print(f"{split:>9}: {len(paths)} files in {Path(args.out) / split}")
    elif args.kind == "microscopy":
        try:
            shape = tuple(int(v) for v in args.shape.split(","))
            voxel = tuple(float(v) for v in args.voxel_size.split(","))
            waves = tuple(float(v) for v in args.test_wavelengths.split(","))
        except ValueError:
            parser.error("--shape, --voxel_size and --test_wavelengths take comma-separated numbers")
        if len(shape) != 3 or min(shape) < 8 or len(voxel) != 3 or min(voxel) <= 0:
            parser.error("--shape needs 3 sizes >= 8 and --voxel_size 3 positive lengths")
        written = write_microscopy_dataset(
            args.out, shape, args.num_blurred, args.num_sharp, args.num_val, args.num_test, args.wavelength,
            waves, voxel, gain=args.gain, sigma=args.noise_sigma, seed=args.seed,
        )
        for split, paths in written.items():
            print(f"{split:>12}: {len(paths)} stacks")


if __name__ == "__main__":
    main()
