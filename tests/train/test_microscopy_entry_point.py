"""End to end: ``train/microscopy.py`` and ``python -m tf_otcycle.deconvolve`` on tiny stacks."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tf_otcycle.data import tiff
from tf_otcycle.data.synthetic import write_microscopy_dataset

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "train" / "microscopy.py"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mic")
    write_microscopy_dataset(root, shape=(12, 24, 24), num_blurred=2, num_sharp=2, num_val=1, num_test=1,
                             test_wavelengths_nm=(400.0, 600.0), psf_shape=(8, 8, 8))
    return root


def flags(data, run_dir, **extra):
    f = {
        "run_dir": run_dir, "blurred_files": f"{data}/train/blurred/*_blurred.tif",
        "sharp_files": f"{data}/train/sharp/*.tif",
        "test_files": f"{data}/test_400nm/*_blurred.tif,{data}/test_600nm/*_blurred.tif",
        "val_files": f"{data}/val/*_blurred.tif", "true_psf": f"{data}/psf_500nm.tif", "patch_size": 16,
        "psf_size": 6, "epochs": 2, "decay_epoch": 1, "steps_per_epoch": 2, "base_filters": 2, "depth": 1,
        "critic_filters": 2, "critic_layers": 1, "n_critic": 2, "learning_rate": 1e-3, "num_panels": 1,
        "psf_fit_epochs": 1, "psf_fit_size": 8,
        "psf_fit_wavelengths": "400,500,600",  # the semi-blind PSF after epoch 1
    }
    f.update(extra)
    return [f"--{k}={v}" for k, v in f.items()]


def run(args, module=None, check=True):
    cmd = [sys.executable, *(["-m", module] if module else [str(SCRIPT)]), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def test_train_evaluate_export_and_deconvolve(data, tmp_path):
    run_dir = tmp_path / "run"
    proc = run(flags(data, run_dir))
    out = proc.stdout
    assert "PSF: NCC" in out
    assert "--psf_fit_epochs, epoch 1: emission wavelength" in out
    assert (run_dir / "psf" / "wavelength_fit.json").exists()
    assert "Measurement noise estimated from the 2 --blurred_files: Var(y) = " in out  # --measurement_noise=auto
    assert "--voxel_size=0.2,0.1,0.1 (from " in out  # read from the stacks' ImageJ metadata
    for rel in ("flags.txt", "eval/metrics.csv", "eval/per_group.md", "eval/per_file.csv", "export/generator.keras",
                "export/saved_model/1/saved_model.pb", "export/learned_psf.tif", "psf/learned_psf.tif",
                "psf/psf_sections.png", "psf/similarity.json"):
        assert (run_dir / rel).exists(), rel
    with open(run_dir / "eval" / "metrics.csv") as f:  # one row per method, means and stds over files
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["input", "ot_cyclegan"] and all(r["files"] == "2" for r in rows)
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("psnr", "ssim", "nmse", "psnr_std"))
    with open(run_dir / "eval" / "per_file.csv") as f:
        per_file = list(csv.DictReader(f))
    assert len(per_file) == 4 and {r["group"] for r in per_file} == {"test_400nm", "test_600nm"}
    psf = tifffile.imread(run_dir / "psf" / "learned_psf.tif")
    assert psf.shape == (6, 6, 6) and psf.min() >= 0 and abs(psf.sum() - 1) < 1e-4

    # Resume: one more epoch continues from the saved step.
    out = run(flags(data, run_dir, epochs=3, export=False)).stdout
    assert "Resumed from step 4" in out
    assert "emission wavelength" not in out  # fitted once, after epoch 1; the checkpoint holds the fitted PSF

    # Whole-volume inference command.
    test_in = next((data / "test_400nm").glob("*_blurred.tif"))
    target = tmp_path / "out.tif"
    model = run_dir / "export" / "generator.keras"
    run([f"--model={model}", f"--input={test_in}", f"--output={target}", "--tile=16", "--overlap=4"],
        "tf_otcycle.deconvolve")
    result = tifffile.imread(target)
    assert result.dtype == np.float32 and result.shape == tifffile.imread(test_in).shape
    assert tiff.read_voxel_size(target) == tiff.read_voxel_size(test_in) == (0.2, 0.1, 0.1)  # metadata carried
    assert 0 <= result.min() and result.max() <= 1
    proc = run([f"--model={model}", f"--input={test_in}", f"--output={target}", "--tile=16"], "tf_otcycle.deconvolve",
               check=False)
    assert proc.returncode != 0 and "exists" in proc.stderr
    run([f"--model={model}", f"--input={test_in}", f"--output={target}", "--tile=16", "--overwrite",
         "--output_dtype=input"], "tf_otcycle.deconvolve")
    assert tifffile.imread(target).dtype == np.uint16


def test_bad_inputs_name_the_file(data, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    tifffile.imwrite(flat / "img.tif", np.zeros((24, 24), np.uint16))
    proc = run(flags(data, tmp_path / "r1", blurred_files=f"{flat}/*.tif"), check=False)
    assert proc.returncode != 0 and "img.tif" in proc.stderr and "depth 1 is too small" in proc.stderr
    assert "train/deblur2d.py" in proc.stderr  # a 2-D plane given to the 3-D task: where 2-D images go
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run(flags(data, tmp_path / "r2", sharp_files=f"{empty}/*.tif"), check=False)
    assert proc.returncode != 0 and "matches no file" in proc.stderr
    proc = run(flags(data, tmp_path / "r4", true_psf=f"{flat}/img.tif"), check=False)  # a 2-D "PSF", found up front
    assert proc.returncode != 0 and "img.tif" in proc.stderr and not (tmp_path / "r4").exists()
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    tifffile.imwrite(lonely / "x_blurred.tif", np.zeros((8, 24, 24), np.uint16))
    proc = run(flags(data, tmp_path / "r5", test_files=f"{lonely}/*_blurred.tif"), check=False)
    assert proc.returncode != 0 and "x_gt.tif" in proc.stderr and not (tmp_path / "r5").exists()
    proc = run(flags(data, tmp_path / "r3", psf_size=40, measurement_noise="loud"), check=False)
    assert proc.returncode != 0 and "--psf_size" in proc.stderr and "--measurement_noise" in proc.stderr
    assert not (tmp_path / "r3").exists()
