"""tf_otcycle.physics.psf_fit: the L1-optimal gain, the misfit that ranks candidate PSFs, and
the emission-wavelength fit of the semi-blind PSF (``--psf_fit_epochs``)."""

import numpy as np
import pytest

from tf_otcycle.physics.psf import blur, born_wolf_psf, centre_to, gaussian_psf
from tf_otcycle.physics.psf_fit import (
    block_means,
    fit_wavelength,
    interior,
    l1_gain,
    measurement_misfit,
    paired_t,
)

VOX = (0.2, 0.1, 0.1)  # micrometres, the simulated data's


def test_l1_gain_is_the_weighted_median_ratio():
    prediction = np.array([1.0, 1.0, 2.0, 4.0])
    assert l1_gain(3.0 * prediction, prediction) == pytest.approx(3.0)
    target = np.array([2.0, 100.0, 6.0, 12.0])  # one outlier: L1 ignores it, least squares would not
    gain = l1_gain(target, prediction)
    assert gain == pytest.approx(3.0)
    for other in (gain * 0.9, gain * 1.1):
        assert np.abs(target - gain * prediction).sum() <= np.abs(target - other * prediction).sum()
    assert l1_gain(target, np.zeros(4)) == 0.0  # nothing predicted: no gain explains it


def test_interior_keeps_the_full_support_on_long_axes_only():
    inside = interior((10, 40, 41), (8, 8, 7))
    assert inside[0] == slice(None)  # 10 < 2 * 8: a thin stack keeps every plane
    assert np.arange(40)[inside[1]].tolist() == list(range(4, 37))  # centre 4: 4 before, 3 after
    assert np.arange(41)[inside[2]].tolist() == list(range(3, 38))


def test_the_fit_s_centre_crop_bounds_each_axis():  # as tasks.microscopy crops large stacks
    volume = np.arange(5 * 8 * 9).reshape(5, 8, 9)
    out = centre_to(volume, np.minimum(volume.shape, (64, 4, 5)))
    assert out.shape == (5, 4, 5)  # a short axis stays whole
    np.testing.assert_array_equal(out, volume[:, 2:6, 2:7])


def test_misfit_is_smallest_for_the_psf_that_made_the_data():
    rng = np.random.default_rng(0)
    x = (rng.random((16, 16, 16)) > 0.97).astype(np.float32)
    psfs = {s: gaussian_psf((7, 7, 7), (s, s, s)) for s in (0.7, 1.0, 1.4)}
    y = 2.5 * blur(x, psfs[1.0])
    scores = {s: measurement_misfit([y], [x], p) for s, p in psfs.items()}
    assert min(scores, key=lambda s: scores[s][0]) == 1.0
    assert scores[1.0][0] == pytest.approx(0.0, abs=1e-5) and scores[1.0][1] == pytest.approx(2.5, rel=1e-4)


def test_misfit_names_mismatched_inputs():
    with pytest.raises(ValueError, match="as many estimates"):
        measurement_misfit([np.zeros((4, 4, 4))], [], np.ones((1, 1, 1)))
    with pytest.raises(ValueError, match="differ in shape"):
        measurement_misfit([np.zeros((4, 4, 4))], [np.zeros((4, 4, 5))], np.ones((1, 1, 1)))


@pytest.fixture(scope="module")
def beads():
    """Sparse points blurred by a 12^3 Born & Wolf PSF at 0.5 um, with a 1.7x gain."""
    rng = np.random.default_rng(1)
    x = (rng.random((12, 28, 28)) > 0.995).astype(np.float32)
    return x, 1.7 * blur(x, born_wolf_psf((12, 12, 12), VOX, 0.5))


def test_fit_wavelength_recovers_the_wavelength_below_the_grid_step(beads):
    x, y = beads
    fit = fit_wavelength([y], [x], VOX, [0.4, 0.45, 0.55, 0.6], kernel_size=12)  # 0.5 is not on the grid
    assert fit.wavelength == pytest.approx(0.5, abs=0.01)
    assert fit.misfits[fit.wavelength][1] == pytest.approx(1.7, rel=0.02)
    assert fit.misfits[fit.wavelength][0] == min(m for m, _ in fit.misfits.values())
    assert {0.4, 0.45, 0.55, 0.6} < set(fit.misfits)  # the grid, then the search between its neighbours
    record = fit.as_dict()
    assert record["wavelength"] == fit.wavelength and len(record["misfits"]) == len(fit.misfits)


def test_fit_wavelength_on_one_candidate_and_bad_candidates(beads):
    x, y = beads
    assert fit_wavelength([y], [x], VOX, [0.45], kernel_size=12).wavelength == 0.45
    with pytest.raises(ValueError, match="wavelengths"):
        fit_wavelength([y], [x], VOX, [], kernel_size=12)


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_a_fit_is_reliable_only_inside_the_grid_and_above_the_noise(beads):
    """A minimum on the grid's edge, or one the misfit's noise could have put there, is flagged
    (not used by the task); the clean, mid-grid fit is not."""
    x, y = beads
    grid = [0.4, 0.45, 0.55, 0.6]
    fit = fit_wavelength([y], [x], VOX, grid, kernel_size=12)
    assert fit.reliable and fit.reason == "" and fit.as_dict()["reliable"] is True
    edge = fit_wavelength([y], [x], VOX, [0.55, 0.6, 0.65], kernel_size=12)  # the truth, 0.5, lies below the grid
    assert edge.wavelength == 0.55 and not edge.reliable and "edge" in edge.reason
    noisy = y + np.random.default_rng(2).normal(0, 0.03, y.shape)  # noise swamps the misfit's differences
    flat = fit_wavelength([noisy], [x], VOX, grid, kernel_size=12)
    assert not flat.reliable and "not significantly above" in flat.reason
    assert fit_wavelength([y], [x], VOX, [0.45], kernel_size=12).reliable  # one candidate: nothing to compare


def test_paired_t_counts_standard_errors_of_the_blockwise_difference():
    best = np.array([1.0, 2.0, 3.0, 4.0])
    assert paired_t(best + np.array([0.9, 1.1, 0.9, 1.1]),
                    best) == pytest.approx(1.0 / (np.std([0.9, 1.1] * 2, ddof=1) / 2))
    assert paired_t(best + 1, best) == np.inf and paired_t(best, best) == 0.0
    assert paired_t(best[:1] + 1, best[:1]) == 0.0
    assert block_means(np.arange(8.0), 4).tolist() == [0.5, 2.5, 4.5, 6.5]
    assert block_means(np.arange(3.0), 16).tolist() == [0, 1, 2]  # fewer values than blocks


def test_the_misfit_takes_the_measurements_background_off(beads):
    """y = g (h * x) + b: with b given the true PSF explains y exactly; without it, not."""
    x, y = beads
    psf = born_wolf_psf((12, 12, 12), VOX, 0.5)
    misfit, gain = measurement_misfit([y + 0.3], [x], psf, offset=0.3)
    assert misfit == pytest.approx(0.0, abs=1e-5) and gain == pytest.approx(1.7, rel=1e-3)
    assert measurement_misfit([y + 0.3], [x], psf)[0] > 0.1
    fit = fit_wavelength([y + 0.3], [x], VOX, [0.4, 0.45, 0.55, 0.6], kernel_size=12, offset=0.3)
    assert fit.reliable and fit.wavelength == pytest.approx(0.5, abs=0.01)


def test_a_noisy_bead_with_a_background_gives_its_emission_wavelength():
    from tf_otcycle.physics.psf_fit import fit_bead

    rng = np.random.default_rng(0)
    voxel = (0.15, 0.05, 0.05)
    bead = 2000 * born_wolf_psf((24, 32, 32), voxel, 0.55, 1.3, 1.518) / born_wolf_psf(
        (24, 32, 32), voxel, 0.55, 1.3, 1.518).max()
    bead = rng.poisson(bead / 3) * 3 + rng.normal(0, 2, bead.shape) - 7.0  # photons, read noise, a leftover offset
    wavelength, misfits = fit_bead(bead, voxel, [0.4, 0.5, 0.6, 0.7], 1.3, 1.518)
    assert wavelength == pytest.approx(0.55, abs=0.005)
    assert min(misfits, key=misfits.get) == wavelength and len(misfits) > 4  # the grid, then the refinement
    with pytest.raises(ValueError, match="positive"):
        fit_bead(bead, voxel, [], 1.3, 1.518)
