"""benchmarks/mri_sets.py: the real-anatomy MRI set's NIfTI reader, slabs and fastMRI files."""

import gzip
import struct

import h5py
import numpy as np
import pytest

from tests.scripts import load_script
from tf_otcycle.data import fastmri


@pytest.fixture(scope="module")
def mri_sets():
    return load_script("benchmarks/mri_sets.py", "mri_sets")


def _nifti(volume: np.ndarray, slope: float = 1.0, inter: float = 0.0) -> bytes:
    """A single-file NIfTI-1 of an int16 ``volume`` as any NIfTI writer lays it out."""
    header = bytearray(352)
    header[0:4] = struct.pack("<i", 348)
    header[40:56] = struct.pack("<8h", volume.ndim, *volume.shape, *[1] * (7 - volume.ndim))
    header[70:74] = struct.pack("<hh", 4, 16)
    header[108:120] = struct.pack("<3f", 352.0, slope, inter)
    header[344:348] = b"n+1\x00"
    return bytes(header) + volume.astype("<i2").tobytes(order="F")


def test_read_nifti_reads_the_voxels_in_fortran_order_with_the_scaling(mri_sets):
    volume = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    np.testing.assert_array_equal(mri_sets.read_nifti(_nifti(volume)), volume)
    scaled = mri_sets.read_nifti(gzip.compress(_nifti(volume, slope=2.0, inter=1.0)))
    np.testing.assert_allclose(scaled, 2.0 * volume + 1.0)
    assert scaled.dtype == np.float32 and scaled.shape == (3, 4, 5)
    np.testing.assert_array_equal(mri_sets.read_nifti(_nifti(volume, slope=0.0, inter=5.0)), volume)  # no scaling


def test_read_nifti_names_the_file_and_the_problem(mri_sets):
    data = _nifti(np.zeros((3, 4, 5), np.int16))
    with pytest.raises(ValueError, match=r"brain\.nii: not a little-endian single-file NIfTI-1"):
        mri_sets.read_nifti(data[:344] + b"ni1\x00" + data[348:], "brain.nii")
    with pytest.raises(ValueError, match=r"brain\.nii: 372 bytes, too few"):
        mri_sets.read_nifti(data[:-100], "brain.nii")


def _head(shape=(40, 48, 60)) -> np.ndarray:
    """An ellipsoidal 'brain' with a texture, axes (LR, AP, IS) as the template's."""
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    inside = sum(g**2 / r**2 for g, r in zip(grid, (0.8, 0.9, 0.8))) < 1
    texture = 0.6 + 0.4 * np.cos(9 * grid[0]) * np.cos(7 * grid[1])
    return (100 * inside * texture).astype(np.float32)


def _patient(path) -> str:
    with h5py.File(path) as f:
        return str(f.attrs["patient_id"])  # NAME-slabKK-NNNN


def test_the_set_deals_disjoint_slabs_to_every_split_as_readable_fastmri_files(mri_sets, tmp_path):
    spec = mri_sets.MRISetSpec(size=16, zoom=0.3, slices=2, step=1, gap=1, copies=2, noise=0.05)
    slabs = mri_sets.axial_slabs(_head(), spec)
    assert len(slabs) >= len(mri_sets.SPLITS) and slabs[0].shape == (2, 48, 40)  # (slices, AP, LR)
    written = mri_sets.write_set(tmp_path, "head", spec, _head())
    slab_of = {split: {_patient(p).split("-")[1] for p in paths} for split, paths in written.items()}
    assert set(written) == {"clean", "measured", "val", "test"} and all(written.values())
    for a in slab_of:
        for b in slab_of:
            assert a == b or not slab_of[a] & slab_of[b]  # no slab in two splits
    assert len(written["clean"]) == spec.copies * len(slab_of["clean"])  # each training slab seen as `copies` subjects
    assert len(written["test"]) == len(slab_of["test"])
    for path in written["test"] + written["measured"]:
        info = fastmri.inspect_file(path, crop_size=16)
        assert info.kspace_shape == (2, 32, 18) and info.target_key == "reconstruction_esc"
        assert info.attrs["acquisition"] == "AXT1" and not info.multicoil
    with h5py.File(written["test"][0]) as f:
        target = f["reconstruction_esc"][()] / 1e-4  # the writer's scanner units
    corner = target[:, :3, :3]  # outside the head: the noise's magnitude, mean sigma sqrt(pi) / 2
    assert 0.5 * spec.noise < corner.mean() < 1.3 * spec.noise
    assert 0.5 < np.percentile(target, 99) < 2.0  # the image scaled to about 1 before the noise


def test_the_set_files_feed_the_training_pipeline(mri_sets, tmp_path):
    spec = mri_sets.MRISetSpec(size=16, zoom=0.3, slices=2, step=1, gap=1, copies=1)
    written = mri_sets.write_set(tmp_path, "head", spec, _head())
    image, target = fastmri.read_volume(fastmri.inspect_file(written["val"][0], 16), 16)
    assert image.shape == (2, 16, 16) and target.shape == (2, 16, 16)
    assert np.isfinite(image).all() and np.abs(image).max() > 0
    flags = mri_sets.set_flags(tmp_path / "head")
    assert f"--clean_files={tmp_path}/head/clean/*.h5" in flags and len(flags) == 4
