"""``train/compare.py`` end to end on tiny data: one row per method, then --eval_only."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tf_otcycle.data.synthetic import write_microscopy_dataset, write_mri_dataset

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def run(args):
    proc = subprocess.run([sys.executable, str(ROOT / "train" / "compare.py"), *args], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc.stdout


def rows(run_dir):
    with open(run_dir / "eval" / "metrics.csv") as f:
        return list(csv.reader(f))


TRAIN = ["--epochs=1", "--steps_per_epoch=2", "--base_filters=2", "--depth=1", "--critic_filters=2",
         "--critic_layers=1", "--n_critic=1", "--num_panels=1"]


def test_compare_mri(tmp_path):
    data = tmp_path / "mri"
    write_mri_dataset(data, size=16, slices=2, num_clean=2, num_measured=2, num_val=1, num_test=1)
    run_dir = tmp_path / "run"
    args = [f"--run_dir={run_dir}", "--application=mri", f"--clean_files={data}/clean/*.h5",
            f"--measured_files={data}/measured/*.h5", f"--test_files={data}/test/*.h5", "--crop_size=16",
            f"--val_files={data}/val/*.h5", "--center_fraction=0.125", "--pls_iterations=5", "--fake_pool=2",
            "--methods=input,supervised,cyclegan,mc,ei,ssdu,classical,ot_cyclegan", *TRAIN]
    out = run(args)
    for name in ("supervised", "cyclegan", "mc", "ei", "ssdu",
                 "ot_cyclegan"):  # --select=best: each kept its best validation epoch
        assert f"{name}: Evaluating the best validation epoch, 1, the last one (validation PSNR" in out
        assert (run_dir / name / "best" / "checkpoint").exists()
    table = rows(run_dir)
    assert table[0][:4] == ["method", "psnr", "ssim", "nmse"]
    assert [r[0] for r in table[1:]] == ["input", "supervised", "cyclegan", "mc", "ei", "ssdu", "ssdu+dc", "pls_tv",
                                          "ot_cyclegan", "ot_cyclegan+dc"]
    assert list((run_dir / "eval").glob("*.png")) and (run_dir / "flags.txt").exists()
    before = [r[:4] for r in table]
    flags_before = (run_dir / "flags.txt").read_text()
    seconds = table[0].index("train_seconds")
    assert all(float(r[seconds]) > 0 for r in table[1:] if r[0] in ("supervised", "cyclegan", "ot_cyclegan"))
    run([*args, "--eval_only"])  # the table again, from the saved models, without training
    assert [r[:4] for r in rows(run_dir)] == before
    assert [r[seconds] for r in rows(run_dir)] == [r[seconds] for r in table]  # the training record read back
    assert (run_dir / "flags.txt").read_text() == flags_before  # still the record of the training run


def test_compare_microscopy(tmp_path):
    data = tmp_path / "mic"
    write_microscopy_dataset(data, shape=(12, 24, 24), num_blurred=2, num_sharp=2, num_val=1, num_test=1,
                             test_wavelengths_nm=(500.0,), psf_shape=(8, 8, 8))
    run_dir = tmp_path / "run"
    out = run([f"--run_dir={run_dir}", "--application=microscopy",
               f"--blurred_files={data}/train/blurred/*_blurred.tif",
         f"--sharp_files={data}/train/sharp/*.tif", f"--test_files={data}/test_500nm/*_blurred.tif",
         f"--true_psf={data}/psf_500nm.tif", "--patch_size=16", "--psf_size=6", "--decay_epoch=1",
         "--rl_iterations=3", "--methods=input,zeros,mean,supervised,cyclegan,ei,classical,ot_cyclegan",
         "--psf_init=flat", "--psf_fit_epochs=1", "--psf_fit_size=8", *TRAIN])
    table = rows(run_dir)
    assert out.count("--psf_fit_epochs, epoch 1: emission wavelength") == 1  # the OT model's PSF only
    assert (run_dir / "ot_cyclegan" / "psf" / "wavelength_fit.json").exists()
    assert [r[0] for r in table[1:]] == ["input", "zeros", "mean", "supervised", "cyclegan", "ei", "richardson_lucy",
                                         "richardson_lucy_tv", "ot_cyclegan"]
    assert "train_seconds" in table[0] and float(table[-1][table[0].index("train_seconds")]) > 0


@pytest.mark.parametrize("bad,message", [("--methods=input,magic", "unknown"), ("--acceleration=0", "--acceleration"),
                                         ("--application=microscopy --methods=ssdu", "k-space columns")])
def test_bad_flags(tmp_path, bad, message):
    proc = subprocess.run([sys.executable, str(ROOT / "train" / "compare.py"), f"--run_dir={tmp_path}/r",
                           "--clean_files=x", "--measured_files=y", "--test_files=z", *bad.split()],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and message in proc.stderr


def test_compare_mri_on_acquisitions_trains_the_methods_without_pairs_and_refuses_supervised(tmp_path):
    from tf_otcycle.physics.masks import MaskSpec

    data = tmp_path / "mri"
    write_mri_dataset(data, size=16, slices=2, num_clean=2, num_measured=2, num_val=1, num_test=1,
                      acquisition=MaskSpec("random", 4, 0.125))
    args = [f"--run_dir={tmp_path / 'run'}", "--application=mri", f"--clean_files={data}/clean/*.h5",
            f"--measured_files={data}/measured/*.h5", f"--test_files={data}/test/*.h5", "--crop_size=16",
            "--center_fraction=0.125", "--pls_iterations=5", "--fake_pool=2", *TRAIN]
    out = run([*args, "--methods=input,ssdu,classical,ot_cyclegan"])
    assert "hold their own acquisition" in out
    assert [r[0] for r in rows(tmp_path / "run")[1:]] == ["input", "ssdu", "ssdu+dc", "pls_tv", "ot_cyclegan",
                                                           "ot_cyclegan+dc"]
    proc = subprocess.run([sys.executable, str(ROOT / "train" / "compare.py"), *args, "--methods=input,supervised",
                           f"--run_dir={tmp_path / 'sup'}"], capture_output=True, text=True, env=ENV, cwd=ROOT,
                          timeout=900)
    assert proc.returncode != 0 and "--methods=supervised: supervised learning needs fully sampled" in proc.stderr
    assert not (tmp_path / "sup" / "supervised").exists()
