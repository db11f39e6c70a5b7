import numpy as np
import pytest
from scipy import special

from tf_otcycle.physics import born_wolf_intensity, born_wolf_psf, fwhm, gaussian_psf

VOX = (0.1, 0.05, 0.05)  # micrometres


def test_in_focus_plane_is_airy_pattern():
    wavelength, na = 0.5, 1.4
    r = np.linspace(1e-4, 1.5, 400)
    i = born_wolf_intensity(r, 0.0, wavelength, na, 1.5)
    i0 = born_wolf_intensity(0.0, 0.0, wavelength, na, 1.5)
    v = 2 * np.pi / wavelength * na * r
    airy = (2 * special.j1(v) / v) ** 2
    np.testing.assert_allclose(i / i0, airy, rtol=1e-3, atol=1e-7)


def test_psf_is_symmetric_in_z_and_unit_sum():
    psf = born_wolf_psf((21, 16, 16), VOX, 0.5)
    assert psf.shape == (21, 16, 16) and psf.dtype == np.float32
    assert abs(psf.sum() - 1) < 1e-5 and psf.min() >= 0
    np.testing.assert_allclose(psf, psf[::-1], rtol=1e-4, atol=1e-9)
    assert np.unravel_index(np.argmax(psf), psf.shape) == (10, 8, 8)


def test_fwhm_shrinks_with_wavelength():
    widths = [fwhm(born_wolf_psf((32, 32, 32), VOX, lam), VOX) for lam in (0.4, 0.5, 0.6)]
    for axis in range(3):
        assert widths[0][axis] < widths[1][axis] < widths[2][axis]
    # Lateral FWHM of the Airy disc is 0.514 lambda / NA.
    assert abs(widths[1][2] - 0.514 * 0.5 / 1.4) < 0.01


def test_gaussian_psf_fwhm():
    psf = gaussian_psf((31, 31, 31), (2.0, 3.0, 4.0))
    got = fwhm(psf)
    np.testing.assert_allclose(got, [2.3548 * s for s in (2.0, 3.0, 4.0)], rtol=0.02)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(wavelength=0.0), "wavelength"),
        (dict(wavelength=-1.0), "wavelength"),
        (dict(wavelength=0.5, numerical_aperture=1.6), "numerical_aperture"),
        (dict(wavelength=0.5, numerical_aperture=1.5), "numerical_aperture"),
    ],
)
def test_bad_optics(kwargs, match):
    with pytest.raises(ValueError, match=match):
        born_wolf_psf((8, 8, 8), VOX, **kwargs)


def test_bad_shape_and_voxel_size():
    with pytest.raises(ValueError, match="shape"):
        born_wolf_psf((8, 8), VOX, 0.5)
    with pytest.raises(ValueError, match="voxel_size"):
        born_wolf_psf((8, 8, 8), (0.1, 0, 0.1), 0.5)


def test_a_psf_file_becomes_a_unit_kernel_centred_on_its_peak():
    from tf_otcycle.physics.psf import kernel_from_file, peak_centre

    true = born_wolf_psf((16, 16, 16), VOX, 0.5).astype(np.float64)
    shifted = np.roll(true, (2, -3, 1), axis=(0, 1, 2)) * 1234.0  # a measured bead: off-centre, counts
    assert peak_centre(shifted) == (10, 5, 9)
    kernel = kernel_from_file(shifted, (16, 16, 16))
    assert kernel.dtype == np.float32 and kernel.sum() == pytest.approx(1, abs=1e-5)
    assert np.unravel_index(np.argmax(kernel), kernel.shape) == (8, 8, 8)
    inner = (slice(3, 13), slice(3, 13), slice(3, 13))  # the edges the shift cut off differ; the centre is the PSF's
    np.testing.assert_allclose(kernel[inner] / kernel[inner].sum(), true[inner] / true[inner].sum(), rtol=1e-5)
    small = kernel_from_file(true, (8, 10, 10))  # cropped about the peak, renormalised
    assert small.shape == (8, 10, 10) and small.sum() == pytest.approx(1, abs=1e-5)
    assert np.unravel_index(np.argmax(small), small.shape) == (4, 5, 5)


def test_a_psf_file_at_another_voxel_size_is_resampled_to_the_stacks():
    from tf_otcycle.physics.psf import kernel_from_file

    fine = born_wolf_psf((32, 64, 64), (0.05, 0.025, 0.025), 0.5)  # sampled twice as finely
    kernel = kernel_from_file(fine, (16, 32, 32), spacing=(0.05, 0.025, 0.025), target_spacing=(0.1, 0.05, 0.05))
    direct = born_wolf_psf((16, 32, 32), (0.1, 0.05, 0.05), 0.5)
    assert np.allclose(fwhm(kernel, (0.1, 0.05, 0.05)), fwhm(direct, (0.1, 0.05, 0.05)), rtol=0.01)
    ncc = np.corrcoef(kernel.ravel(), direct.ravel())[0, 1]
    assert ncc > 0.999
    same = kernel_from_file(direct, (16, 32, 32), spacing=(0.1, 0.05, 0.05), target_spacing=(0.1, 0.05, 0.0502))
    np.testing.assert_allclose(same, direct / direct.sum(), rtol=1e-5, atol=1e-9)  # within 1 %: not resampled


@pytest.mark.parametrize("psf, problem", [
    (np.ones((4, 4)), "3-D PSF"),
    (-np.ones((4, 4, 4)), "non-negative"),
    (np.full((4, 4, 4), np.nan), "finite"),
    (np.zeros((4, 4, 4)), "positive maximum"),
])
def test_a_psf_file_that_is_no_psf_is_refused_by_name(psf, problem):
    from tf_otcycle.physics.psf import kernel_from_file

    with pytest.raises(ValueError, match=f"bead.tif: .*{problem}"):
        kernel_from_file(psf, (4, 4, 4), path="bead.tif")
