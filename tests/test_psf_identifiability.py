"""benchmarks/psf_identifiability.py: the L1-optimal gain and the misfit that ranks candidate PSFs."""

import numpy as np
import pytest

from tests.scripts import load_script
from tf_otcycle.data.microscopy_sim import blur
from tf_otcycle.physics.psf import gaussian_psf


@pytest.fixture(scope="module")
def script():
    return load_script("benchmarks/psf_identifiability.py", "psf_identifiability")


def test_l1_gain_is_the_weighted_median_ratio(script):
    prediction = np.array([1.0, 1.0, 2.0, 4.0])
    assert script.l1_gain(3.0 * prediction, prediction) == pytest.approx(3.0)
    target = np.array([2.0, 100.0, 6.0, 12.0])  # one outlier: L1 ignores it, least squares would not
    gain = script.l1_gain(target, prediction)
    assert gain == pytest.approx(3.0)
    for other in (gain * 0.9, gain * 1.1):
        assert np.abs(target - gain * prediction).sum() <= np.abs(target - other * prediction).sum()


def test_misfit_is_smallest_for_the_psf_that_made_the_data(script):
    rng = np.random.default_rng(0)
    x = (rng.random((16, 16, 16)) > 0.97).astype(np.float32)
    psfs = {s: gaussian_psf((7, 7, 7), (s, s, s)) for s in (0.7, 1.0, 1.4)}
    y = 2.5 * blur(x, psfs[1.0])
    scores = {s: script.misfit([y], [x], p) for s, p in psfs.items()}
    assert min(scores, key=lambda s: scores[s][0]) == 1.0
    assert scores[1.0][0] == pytest.approx(0.0, abs=1e-5) and scores[1.0][1] == pytest.approx(2.5, rel=1e-4)
