"""Beads of a measured PSF image: found, left out when not alone, averaged into the kernel."""

import numpy as np
import pytest

from tf_otcycle.physics.beads import OFFSET_FRACTION, bead_centres, local_maxima, median_fraction
from tf_otcycle.physics.psf import born_wolf_psf, kernel_from_file

VOX = (0.2, 0.1, 0.1)
SHAPE = (16, 16, 16)


def _slide(centres, shape=(16, 64, 64), brightness=None, rng=None, peak=500.0):
    """Beads at ``centres`` (z, y, x), each the 16^3 Born & Wolf PSF (its light within 8
    voxels of it), ``peak`` counts times ``brightness``; Poisson noise when ``rng``."""
    psf = born_wolf_psf(SHAPE, VOX, 0.5)
    psf = psf / psf.max()
    image = np.zeros(shape, np.float64)
    for k, c in enumerate(centres):
        lo = [ci - n // 2 for ci, n in zip(c, SHAPE)]
        dst = tuple(slice(max(a, 0), min(a + n, s)) for a, n, s in zip(lo, SHAPE, shape))
        src = tuple(slice(d.start - a, d.stop - a) for d, a in zip(dst, lo))
        image[dst] += peak * (1 if brightness is None else brightness[k]) * psf[src]
    return image if rng is None else rng.poisson(image).astype(np.float64)


def test_one_psf_is_one_bead_at_its_peak():
    psf = born_wolf_psf(SHAPE, VOX, 0.5)
    assert len(local_maxima(psf)) == 1
    assert bead_centres(psf, SHAPE) == [(8, 8, 8)]


def test_beads_off_the_image_centre_give_the_kernel_centred_on_a_bead():
    # two beads: the centroid of every bright voxel lies between them, on no bead
    image = _slide([(8, 12, 14), (8, 44, 50)])
    assert sorted(bead_centres(image, SHAPE)) == [(8, 12, 14), (8, 44, 50)]
    kernel = kernel_from_file(image, SHAPE)
    true = born_wolf_psf(SHAPE, VOX, 0.5)
    np.testing.assert_allclose(kernel, true / true.sum(), rtol=1e-5, atol=1e-9)


def test_averaging_beads_lowers_the_noise_of_the_kernel():
    true = born_wolf_psf(SHAPE, VOX, 0.5).ravel()
    centres = [(8, 8 + 16 * i, 8 + 16 * j) for i in range(4) for j in range(4)]
    slide = _slide(centres, rng=np.random.RandomState(0))
    one = kernel_from_file(slide[:, :16, :16], SHAPE)  # the first bead's field alone
    many = kernel_from_file(slide, SHAPE)
    assert len(bead_centres(slide, SHAPE)) == 16
    ncc_one, ncc_many = (np.corrcoef(k.ravel(), true)[0, 1] for k in (one, many))
    assert ncc_one < 0.99 < ncc_many


def test_beads_not_alone_in_the_window_clusters_and_beads_at_the_edge_are_left_out():
    centres = [(8, 10, 10), (8, 10, 40), (8, 40, 10), (8, 40, 40), (8, 8, 60)]
    brightness = [1, 1, 1, 3, 1]  # a cluster; the last bead's window leaves the image
    found = bead_centres(_slide(centres, brightness=brightness), SHAPE)
    assert sorted(found) == [(8, 10, 10), (8, 10, 40), (8, 40, 10)]
    near = [(8, 20, 20), (8, 20, 30)]  # 10 voxels apart in a 16-voxel window
    assert bead_centres(_slide(near + [(8, 50, 50)]), SHAPE) == [(8, 50, 50)]
    with pytest.raises(ValueError, match="beads.tif: 2 beads and none alone"):
        kernel_from_file(_slide(near), SHAPE, path="beads.tif")


def test_a_camera_offset_does_not_move_the_beads_and_is_told_from_a_psf():
    image = _slide([(8, 12, 14), (8, 44, 50)], peak=200.0) + 100.0  # offset not subtracted
    assert sorted(bead_centres(image, SHAPE)) == [(8, 12, 14), (8, 44, 50)]
    assert median_fraction(image) > 0.3 > OFFSET_FRACTION
    assert median_fraction(born_wolf_psf((32, 32, 32), VOX, 0.5)) < OFFSET_FRACTION  # its own defocused light


def test_axial_side_lobes_are_the_same_bead():
    psf = born_wolf_psf((24, 16, 16), VOX, 0.5)
    aberrated = psf + 0.5 * np.roll(psf, 6, axis=0)  # a side lobe half as bright, 6 planes deeper
    assert len(local_maxima(aberrated)) == 2
    ((z, y, x),) = bead_centres(aberrated, (24, 16, 16))  # one bead, on its axis
    assert (y, x) == (8, 8) and abs(z - 12) <= 1


def test_a_saturated_bead_is_one_bead():
    image = np.zeros((16, 64, 64))
    image[7:9, 11:13, 13:15] = image[7:9, 43:45, 49:51] = 100.0  # flat tops two voxels wide: tied maxima
    tops = np.array([(7.5, 11.5, 13.5), (7.5, 43.5, 49.5)])
    assert len(local_maxima(image)) > 2
    found = np.array(sorted(bead_centres(image, SHAPE)))
    assert found.shape == (2, 3) and np.all(np.abs(found - tops) == 0.5)  # one bead each, on its top
    plane = image[8]  # the same in 2-D
    found = np.array(sorted(bead_centres(plane, SHAPE[1:])))
    assert len(local_maxima(plane)) > 2 and found.shape == (2, 2) and np.all(np.abs(found - tops[:, 1:]) == 0.5)
