"""benchmarks/psf_identifiability.py: the table of measurement-cycle misfits, on tiny stacks."""

import sys

from tests.scripts import load_script
from tf_otcycle.data.synthetic import write_microscopy_dataset


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
