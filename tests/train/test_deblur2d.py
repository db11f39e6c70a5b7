"""The third application end to end: ``train/deblur2d.py``, its export and inference, and
``train/compare.py --application=deblur2d``, on tiny simulated 2-D images (TIFF and PNG)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tf_otcycle.data import images
from tf_otcycle.data.synthetic import write_deblur2d_dataset

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
TINY = ["--patch_size=16", "--psf_size=7", "--epochs=2", "--decay_epoch=1", "--steps_per_epoch=2", "--base_filters=2",
        "--depth=1", "--critic_filters=2", "--critic_layers=1", "--n_critic=1", "--num_panels=1", "--rl_iterations=3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("deblur2d")
    write_deblur2d_dataset(root, shape=(32, 32), num_blurred=2, num_sharp=2, num_val=1, num_test=2, psf_size=9)
    return root


def files(data):
    return [f"--blurred_files={data}/train/blurred/*_blurred.tif", f"--sharp_files={data}/train/sharp/*.png",
            f"--test_files={data}/test/*_blurred.tif", f"--val_files={data}/val/*_blurred.tif",
            f"--true_psf={data}/psf.tif"]


def run(args, check=True):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def test_formats_of_the_simulated_images(data):
    assert images.read_image(next((data / "train" / "sharp").glob("*.png"))).dtype == np.uint8
    assert images.read_image(next((data / "train" / "blurred").glob("*_blurred.tif"))).dtype == np.uint16
    assert images.read_image(data / "psf.tif").shape == (9, 9)


def test_train_export_and_deblur_with_the_saved_settings(data, tmp_path):
    run_dir = tmp_path / "run"
    out = run([str(ROOT / "train" / "deblur2d.py"), f"--run_dir={run_dir}", *files(data), *TINY]).stdout
    assert "PSF: NCC" in out and "FWHM y,x" in out
    with open(run_dir / "eval" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["input", "ot_cyclegan"] and "seconds_per_image" in rows[0]
    assert tifffile.imread(run_dir / "export" / "learned_psf.tif").shape == (7, 7)
    settings = json.loads((run_dir / "export" / "config.json").read_text())
    assert settings["task"] == "deblur2d" and settings["tile"] == 16
    # Inference on a 2-D image with no flags but input and output (PNG in, PNG out).
    src = tmp_path / "in.png"
    images.write_image(src, (np.random.default_rng(0).random((40, 36)) * 255).astype(np.uint8))
    model = run_dir / "export" / "generator.keras"
    proc = run(["-m", "tf_otcycle.deconvolve", f"--model={model}", f"--input={src}", f"--output={tmp_path / 'out.png'}",
                "--output_dtype=input"])
    assert "tile 16, overlap 4" in proc.stdout
    out_image = images.read_image(tmp_path / "out.png")
    assert out_image.shape == (40, 36) and out_image.dtype == np.uint8
    proc = run(["-m", "tf_otcycle.deconvolve", f"--model={model}", f"--input={src}", f"--output={tmp_path / 'f.png'}"],
               check=False)
    assert proc.returncode != 0 and "PNG holds integers" in proc.stderr


def test_compare_on_the_third_application(data, tmp_path):
    run_dir = tmp_path / "cmp"
    run([str(ROOT / "train" / "compare.py"), "--application=deblur2d", f"--run_dir={run_dir}", *files(data), *TINY,
         "--methods=input,zeros,mean,supervised,cyclegan,classical,ot_cyclegan"])
    with open(run_dir / "eval" / "metrics.csv") as f:
        names = [r["method"] for r in csv.DictReader(f)]
    assert names == ["input", "zeros", "mean", "supervised", "cyclegan", "richardson_lucy", "richardson_lucy_tv",
                     "ot_cyclegan"]


def test_bad_images_name_the_file(data, tmp_path):
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    tifffile.imwrite(rgb / "colour.tif", np.zeros((24, 24, 3), np.uint8))
    proc = run([str(ROOT / "train" / "deblur2d.py"), f"--run_dir={tmp_path / 'r'}", *files(data), *TINY,
                f"--sharp_files={rgb}/*.tif"], check=False)
    assert proc.returncode != 0 and "colour.tif" in proc.stderr and "2-D grayscale" in proc.stderr


def test_a_psf_file_starts_the_2d_task(data):
    from tf_otcycle import tasks

    task = tasks.get("deblur2d")
    config = task.default_config(psf_init="file", psf_file=str(data / "psf.tif"), psf_size=7, patch_size=16)
    assert not [e for e in task.validate(config) if "psf" in e]
    kernel, given = task.initial_psf(config), images.read_image(data / "psf.tif").astype(np.float64)
    inner = given[1:8, 1:8]  # the 9 x 9 file's centre, its peak at the kernel's centre
    np.testing.assert_allclose(kernel, inner / inner.sum(), rtol=1e-5, atol=1e-8)
    assert kernel.shape == (7, 7) and np.unravel_index(np.argmax(kernel), kernel.shape) == (3, 3)
