"""benchmarks/noise_fit.py: the noise estimate against the true noise of a benchmark set."""

import numpy as np
import pytest

from tests.scripts import load_script
from tf_otcycle.data.microscopy_sim import acquire
from tf_otcycle.data.tiff import write_stack
from tf_otcycle.physics.psf import born_wolf_psf

VOX = (0.2, 0.1, 0.1)


@pytest.fixture(scope="module")
def script():
    return load_script("benchmarks/noise_fit.py", "noise_fit")


def test_the_ratios_are_one_for_the_true_noise_model(script):
    rng = np.random.default_rng(0)
    signal = rng.random((8, 32, 32)) + 0.1
    y = signal + np.sqrt(0.01 * signal + 1e-3) * rng.standard_normal(signal.shape)
    np.testing.assert_allclose(script.fit_ratios(y, signal, 0.01, 1e-3), 1.0, rtol=0.1)
    assert max(script.fit_ratios(y, signal, 0.02, 2e-3)) < 0.6  # a model twice as noisy


def test_the_table_of_a_set(script, tmp_path, capsys):
    rng = np.random.RandomState(1)
    psf = born_wolf_psf((8, 8, 8), VOX, 0.5)
    gt = np.zeros((12, 32, 32), np.float32)
    gt[4:8, 8:24, 8:24] = rng.random((4, 16, 16))
    sim = acquire(gt, psf, rng, gain=5.0, sigma=2.0, peak=300.0, offset=50.0)
    write_stack(tmp_path / "train" / "blurred" / "s0_blurred.tif", np.round(sim["blurred"]).astype(np.uint16), VOX)
    write_stack(tmp_path / "train" / "blurred" / "s0_gt.tif", sim["gt"], VOX)
    write_stack(tmp_path / "psf.tif", psf, VOX)
    script.main([f"--set={tmp_path}"])
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.strip().startswith("blurred/s0_blurred.tif: a=")
    ratios = [float(v) for v in row.split()[-5:]]
    assert all(0.3 < r < 3.0 for r in ratios)
    with pytest.raises(SystemExit, match="train/blurred"):
        script.main([f"--set={tmp_path / 'nothing'}"])
