"""benchmarks/psf_identifiability.py: the table of measurement-cycle misfits, on tiny stacks."""

import sys

import numpy as np

from tests.scripts import load_script
from tf_otcycle.data.synthetic import write_microscopy_dataset
from tf_otcycle.physics.psf import blur, born_wolf_psf


def test_table_ranks_the_candidates_given_the_ground_truth(tmp_path, monkeypatch, capsys):
    write_microscopy_dataset(tmp_path, shape=(12, 24, 24), num_blurred=2, num_sharp=1, num_val=0, num_test=1,
                             test_wavelengths_nm=(500.0,), psf_shape=(8, 8, 8))
    script = load_script("benchmarks/psf_identifiability.py", "psf_identifiability")
    monkeypatch.setattr(sys, "argv",
                        ["psf_identifiability.py", f"--blurred_files={tmp_path}/train/blurred/*_blurred.tif",
                                      "--kernel_sizes=8", "--wavelengths=400,500"])
    script.main()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert lines[0] == "| candidate PSF | x_hat = ground truth |"
    assert [line.split(" |")[0] for line in lines[1:]] == [
        "| Born & Wolf 400 nm, 8^3", "| Born & Wolf 500 nm, 8^3",
        "| Gaussian sigma 2,1,1 voxels (--psf_init=gaussian), 8^3"]
    misfits = [float(line.split("| ")[2].split()[0]) for line in lines[1:]]
    assert misfits[1] < misfits[0] and misfits[1] < misfits[2]  # the data's 500 nm PSF explains them best


def test_least_squares_misfit_takes_off_a_background(tmp_path, monkeypatch, capsys):
    write_microscopy_dataset(tmp_path, shape=(12, 24, 24), num_blurred=2, num_sharp=1, num_val=0, num_test=1,
                             test_wavelengths_nm=(500.0,), psf_shape=(8, 8, 8))
    script = load_script("benchmarks/psf_identifiability.py", "psf_identifiability")
    rng = np.random.default_rng(0)
    x = rng.random((12, 24, 24))
    psf = born_wolf_psf((8, 8, 8), (0.2, 0.1, 0.1), 0.5, 1.4, 1.5)
    y = 3.0 * blur(x, psf) + 0.25
    mse, gain, background = script.least_squares_misfit([y], [x], psf)
    assert mse < 1e-8 and abs(gain - 3.0) < 1e-4 and abs(background - 0.25) < 1e-4
    wider = born_wolf_psf((8, 8, 8), (0.2, 0.1, 0.1), 0.7, 1.4, 1.5)
    assert script.least_squares_misfit([y], [x], wider)[0] > 1e-4
    monkeypatch.setattr(sys, "argv",
                        ["psf_identifiability.py", f"--blurred_files={tmp_path}/train/blurred/*_blurred.tif",
                         "--kernel_sizes=8", "--wavelengths=400,500", "--misfit=l2"])
    script.main()
    out = capsys.readouterr().out
    assert "least squares" in out and "smallest with x_hat = ground truth: " in out
