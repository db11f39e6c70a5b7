"""benchmarks/microscopy_sets.py: the bead PSF a user measures, for ``--psf_init=file``."""

import numpy as np
import pytest

from tests.scripts import load_script
from tf_otcycle.data import tiff
from tf_otcycle.physics.psf import born_wolf_psf, kernel_from_file, psf_similarity


@pytest.fixture(scope="module")
def microscopy_sets():
    return load_script("benchmarks/microscopy_sets.py", "microscopy_sets")


def test_the_bead_psf_is_the_sets_psf_measured_finer_with_noise(microscopy_sets, tmp_path):
    spec = microscopy_sets.SETS["beads"]
    path = microscopy_sets.write_bead_psf(tmp_path, spec)
    volume, voxel = tiff.read_stack(path), tiff.read_voxel_size(path)
    assert volume.shape == (64, 64, 64) and volume.min() >= 0
    assert voxel == pytest.approx(tuple(v / 2 for v in spec.voxel_size))
    again, _ = microscopy_sets.bead_psf(spec, np.random.RandomState(2000))
    np.testing.assert_array_equal(volume, again)  # seeded
    assert np.median(volume[0]) < 0.01 * volume.max()  # the camera offset (100 gray levels) is taken off
    true = born_wolf_psf(microscopy_sets.PSF_SHAPE, spec.voxel_size, spec.wavelength, spec.numerical_aperture,
                         spec.refractive_index)
    kernel = kernel_from_file(volume, true.shape, voxel, spec.voxel_size)
    similarity = psf_similarity(kernel, true, spec.voxel_size)
    assert 0.95 < similarity["ncc"] < 0.999  # near the truth, not it: one noisy bead
    for axis in "zyx":
        assert similarity[f"fwhm_{axis}_learned"] == pytest.approx(similarity[f"fwhm_{axis}_true"], rel=0.05)


@pytest.mark.slow  # a 64 x 288 x 288 slide: about 20 s
def test_the_bead_slide_averages_nine_beads_into_a_better_kernel(microscopy_sets, tmp_path):
    from tf_otcycle.physics.beads import bead_centres

    spec = microscopy_sets.SETS["nuclei"]  # the noisiest bead: one alone has NCC 0.947
    path = microscopy_sets.write_bead_psf(tmp_path, spec, grid=3)
    assert path.name == "bead_slide_psf.tif"
    volume, voxel = tiff.read_stack(path), tiff.read_voxel_size(path)
    true = born_wolf_psf(microscopy_sets.PSF_SHAPE, spec.voxel_size, spec.wavelength, spec.numerical_aperture,
                         spec.refractive_index)
    assert len(bead_centres(volume, np.asarray(true.shape) * 2)) == 9
    one = kernel_from_file(tiff.read_stack(microscopy_sets.write_bead_psf(tmp_path, spec)), true.shape, voxel,
                           spec.voxel_size)
    nine = kernel_from_file(volume, true.shape, voxel, spec.voxel_size)
    assert psf_similarity(one, true)["ncc"] < 0.95 < 0.99 < psf_similarity(nine, true)["ncc"]
