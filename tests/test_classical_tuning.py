"""The classical baselines' settings chosen on the validation files, as a user tunes them."""

import numpy as np
import pytest

from tf_otcycle import metrics, tasks
from tf_otcycle.data.synthetic import write_microscopy_dataset


@pytest.fixture(scope="module")
def microscopy(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuning")
    write_microscopy_dataset(root, shape=(12, 24, 24), num_blurred=1, num_sharp=1, num_val=1, num_test=1,
                             test_wavelengths_nm=(500.0,), psf_shape=(12, 12, 12))
    task = tasks.get("microscopy")
    config = task.default_config(
        blurred_files=f"{root}/train/blurred/*_blurred.tif", sharp_files=f"{root}/train/sharp/*.tif",
        val_files=f"{root}/val/*_blurred.tif", test_files=f"{root}/test_500nm/*_blurred.tif",
        true_psf=f"{root}/psf_500nm.tif", patch_size=8, psf_size=5, depth=1, rl_iterations_grid="1,4,16",
        rl_tv_weight_grid="0.001,0.01")
    return task, config, task.resolve_data(config)


def _val_psnr(task, config, data, method):
    return np.mean([metrics.psnr(s.target, method(*s.inputs)) for s in task.samples(config, data, "val_files")])


def test_richardson_lucy_iterations_are_the_validation_argmax(microscopy):
    task, config, data = microscopy
    method, line = task.tuned_classical(config, data, None, "richardson_lucy")
    scores = {n: _val_psnr(task, config.replace(rl_iterations=n), data, task.classical_method(
        config.replace(rl_iterations=n), data)) for n in (1, 4, 16)}
    best = max(scores, key=scores.get)
    assert f"--rl_iterations={best} chosen on 1 --val_files" in line
    assert f"{scores[best]:.2f} dB" in line
    volume = next(iter(task.samples(config, data))).inputs[0]
    expected = task.classical_method(config.replace(rl_iterations=best), data)(volume)
    np.testing.assert_array_equal(method(volume), expected)


def test_richardson_lucy_tv_tunes_count_and_weight_and_plain_settings_without_validation(microscopy):
    task, config, data = microscopy
    assert task.classical_rows() == ("richardson_lucy", "richardson_lucy_tv")
    grid = task.classical_grid(config, "richardson_lucy_tv")
    assert len(grid) == 6 and {"rl_iterations": 16, "rl_tv_weight": 0.01} in grid
    _, line = task.tuned_classical(config, data, None, "richardson_lucy_tv")
    assert "--rl_tv_weight=" in line and "--rl_iterations=" in line and line.count(":") >= 7
    untuned = {**data, "files": {k: v for k, v in data["files"].items() if k != "val_files"}}
    _, line = task.tuned_classical(config, untuned, None, "richardson_lucy_tv")
    assert line == "richardson_lucy_tv: flag settings (not tuned: no --val_files)"
    _, line = task.tuned_classical(config.replace(rl_iterations_grid="", rl_tv_weight_grid=""), data, None,
                                   "richardson_lucy_tv")
    assert "no grid" in line


def test_grid_flags_are_checked():
    task = tasks.get("microscopy")
    errors = task.validate(task.default_config(rl_iterations_grid="5,x", rl_tv_weight_grid="-1"))
    assert any("--rl_iterations_grid" in e for e in errors)
    errors = task.validate(task.default_config(rl_iterations_grid="2.5"))
    assert any("whole numbers" in e for e in errors)
    mri = tasks.get("mri")
    assert any("--pls_lambda_grid" in e for e in mri.validate(mri.default_config(pls_lambda_grid="0.1,zero")))


def test_validation_logs_the_learned_psf_against_the_true_one(microscopy):
    """With --true_psf, every validation logs the learned PSF's NCC and largest FWHM error (the
    PSF is watched epoch by epoch, not only at the end)."""
    from types import SimpleNamespace

    from tf_otcycle.tasks.blur import psf_scalars

    task, config, data = microscopy
    true = task.read_psf(config["true_psf"])
    exact = psf_scalars(true, true, task.voxel_size(config))
    assert exact["val/psf_ncc"] == pytest.approx(1.0) and exact["val/psf_fwhm_error"] == pytest.approx(0.0)
    wide = np.pad(true, 2)
    wide = (wide + np.roll(wide, 1, -1) + np.roll(wide, -1, -1)) / 3  # laterally wider
    off = psf_scalars(wide, true, task.voxel_size(config))
    assert off["val/psf_ncc"] < 0.999 and off["val/psf_fwhm_error"] > 0.1
    model = SimpleNamespace(generator=task.generator(config, data), forward_op=SimpleNamespace(psf=wide))
    scalars, _ = task.validation(config, data, model)()
    assert scalars["val/psf_ncc"] == pytest.approx(off["val/psf_ncc"])
    assert scalars["val/psf_fwhm_error"] == pytest.approx(off["val/psf_fwhm_error"])
