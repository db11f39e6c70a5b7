"""benchmarks/psf_spectrum.py: what the measured power spectrum says of the emission wavelength."""

import sys

import numpy as np
import pytest

from tests.scripts import load_script
from tf_otcycle.data.tiff import write_stack
from tf_otcycle.physics.psf import blur, born_wolf_psf

VOX = (0.2, 0.1, 0.1)
SHAPE = (16, 32, 32)


@pytest.fixture(scope="module")
def script():
    return load_script("benchmarks/psf_spectrum.py", "psf_spectrum")


def test_spectral_misfit_is_zero_at_the_psf_that_made_the_spectrum(script):
    p_x = np.random.default_rng(0).random(SHAPE) + 0.5
    labels = script.cylinder_bins(SHAPE, VOX)
    true = born_wolf_psf(SHAPE, VOX, 0.5)
    transfer = np.abs(np.fft.fftn(np.fft.ifftshift(true.astype(np.float64)))) ** 2
    p_y = 3.0 * transfer * p_x + 1e-4
    at_truth = script.spectral_misfit(p_y, p_x, true, labels)
    assert at_truth < 1e-8
    assert script.spectral_misfit(p_y, p_x, born_wolf_psf(SHAPE, VOX, 0.65), labels) > 100 * max(at_truth, 1e-10)


def test_the_noise_floor_is_met_where_the_signal_ends(script):
    rng = np.random.default_rng(1)
    x = rng.random(SHAPE)
    signal = script.power_spectrum([blur(x, born_wolf_psf((9, 9, 9), VOX, 0.5))], SHAPE)
    noisy = script.power_spectrum([blur(x, born_wolf_psf((9, 9, 9), VOX, 0.5)) + rng.normal(0, 0.02, SHAPE)], SHAPE)
    reach_noisy, floor = script.noise_floor_frequency(noisy, VOX)
    reach_clean, _ = script.noise_floor_frequency(signal, VOX)
    assert floor > 0 and 0 < reach_noisy < reach_clean  # noise hides the spectrum's tail


def test_the_table_of_a_set(script, tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(2)
    psf = born_wolf_psf((9, 9, 9), VOX, 0.5)
    for i in range(2):
        write_stack(tmp_path / "train" / "blurred" / f"s{i}_blurred.tif",
                    (1000 * blur(rng.random(SHAPE), psf)).astype(np.uint16), VOX)
        write_stack(tmp_path / "train" / "sharp" / f"s{i}_sharp.tif", rng.random(SHAPE).astype(np.float32), VOX)
    (tmp_path / "optics.flags").write_text("--wavelength=500\n--numerical_aperture=1.4\n--refractive_index=1.5\n")
    monkeypatch.setattr(sys, "argv", ["psf_spectrum.py"])
    script.main([f"--set={tmp_path}", "--wavelengths=400,500"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split(" |")[0] for r in rows] == ["| 400", "| 500"] and "noise floor at" in out
    with pytest.raises(SystemExit, match="train/blurred"):
        script.main([f"--set={tmp_path / 'nothing'}"])
