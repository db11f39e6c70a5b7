"""benchmarks/psf_identifiability.py: the L1-optimal gain and the misfit that ranks candidate PSFs."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tf_otcycle.data.microscopy_sim import blur
from tf_otcycle.physics.psf import gaussian_psf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("psf_identifiability", ROOT / "benchmarks" / "psf_identifiability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
