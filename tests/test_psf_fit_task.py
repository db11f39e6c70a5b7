"""``--psf_fit_epochs``: the microscopy task's semi-blind PSF (the emission-wavelength fit with
the current G), its callback, its flags, and the weight average it restarts."""

import json
import re

import keras
import numpy as np
import pytest

from tf_otcycle.data.synthetic import write_microscopy_dataset
from tf_otcycle.data.tiff import gt_path_for, normalize, read_stack, reflect_depth
from tf_otcycle.physics.psf import born_wolf_psf
from tf_otcycle.physics.psf_fit import minimax_wavelength
from tf_otcycle.tasks.microscopy import TASK
from tf_otcycle.training import AtEpochEnd, reset_average


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("mic")
    write_microscopy_dataset(root, shape=(16, 32, 32), num_blurred=2, num_sharp=2, num_val=0, num_test=1,
                             test_wavelengths_nm=(500.0,), psf_shape=(8, 8, 8))
    config = TASK.default_config(
        run_dir=str(root / "run"), blurred_files=f"{root}/train/blurred/*_blurred.tif",
        sharp_files=f"{root}/train/sharp/*.tif", test_files=f"{root}/test_500nm/*_blurred.tif", patch_size=16,
        psf_size=6, base_filters=2, depth=1, critic_filters=2, critic_layers=1, psf_init="gaussian",
        psf_fit_epochs="1", psf_fit_size=8, psf_fit_wavelengths="400,500,600", voxel_size="0.2,0.1,0.1")
    assert TASK.validate(config) == []
    data = TASK.resolve_data(config)
    keras.utils.set_random_seed(0)
    return config, data, TASK.build_model(config, data)


def test_an_unreliable_fit_moves_only_a_non_physical_psf(setup, tmp_path, capsys):
    """An untrained G explains the data no better at one wavelength than at another: the
    fit's minimum falls on the grid's edge and is recorded as unreliable and not used; the
    Gaussian start goes on from the range's minimax wavelength (a Born & Wolf PSF is nearer
    the truth), a physical PSF stays."""
    config, data, model = setup
    before = model.forward_op.psf
    fit = TASK.fit_psf(config, data, model, tmp_path, epoch=1, physical=True)
    assert not fit.reliable and "edge" in fit.reason and "H keeps its PSF" in capsys.readouterr().out
    np.testing.assert_array_equal(model.forward_op.psf, before)
    (record,) = json.loads((tmp_path / "psf" / "wavelength_fit.json").read_text())
    assert record["reliable"] is False and record["applied"] is False and record["reason"] == fit.reason
    fit = TASK.fit_psf(config, data, model, tmp_path, epoch=1)  # the Gaussian start (--psf_init=gaussian)
    out = capsys.readouterr().out
    assert not fit.reliable and "UNRELIABLE" in out and "H goes on from 480.0 nm" in out and "20%" in out
    expected = born_wolf_psf((6, 6, 6), (0.2, 0.1, 0.1), 0.48)  # 400-600 nm: 2 * 400 * 600 / 1000
    np.testing.assert_allclose(model.forward_op.psf, expected, rtol=1e-4, atol=1e-7)
    assert fit.wavelength != pytest.approx(0.48)  # the edge, not used
    (record,) = json.loads((tmp_path / "psf" / "wavelength_fit.json").read_text())
    assert record["applied"] is True and record["applied_wavelength"] == pytest.approx(0.48)
    model.forward_op.set_psf(before)


def test_the_callback_applies_an_unreliable_fit_only_first(setup, monkeypatch, tmp_path):
    config, data, model = setup
    seen = []
    monkeypatch.setattr(TASK, "fit_psf", lambda *args, physical=None, **kw: seen.append(physical))
    (callback,) = TASK.callbacks(config.replace(psf_fit_epochs="1,2"), data, model, None)
    callback.on_epoch_end(0)
    callback.on_epoch_end(1)
    assert seen == [False, True]  # from the Gaussian start; then H's PSF is physical
    (tmp_path / "psf").mkdir()
    (tmp_path / "psf" / "wavelength_fit.json").write_text(json.dumps([{"epoch": 1, "applied": True}]))
    (callback,) = TASK.callbacks(config.replace(psf_fit_epochs="2"), data, model, tmp_path)  # resumed after epoch 1
    callback.on_epoch_end(1)
    assert seen[-1] is True



def test_a_measured_psf_file_starts_h_and_counts_as_physical(setup, monkeypatch, tmp_path, capsys):
    """``--psf_init=file``: H starts from the file's PSF, resampled from the file's own voxel
    size to the stacks' and cropped about its peak; an unreliable fit does not replace it."""
    from tf_otcycle.data.tiff import write_stack

    config, data, model = setup
    path = tmp_path / "bead_psf.tif"  # sampled twice as finely as the stacks, in counts
    write_stack(path, 1000 * born_wolf_psf((24, 24, 24), (0.1, 0.05, 0.05), 0.5), voxel_size=(0.1, 0.05, 0.05))
    measured = config.replace(psf_init="file", psf_file=str(path))
    assert TASK.validate(measured) == []
    TASK.resolve_data(measured)
    log = capsys.readouterr().out
    assert "bead_psf.tif: voxel size (0.1, 0.05, 0.05) in its metadata" in log and "from 1 bead alone" in log
    expected = born_wolf_psf((6, 6, 6), (0.2, 0.1, 0.1), 0.5)  # (computed on another radial grid: 0.4 % apart)
    np.testing.assert_allclose(TASK.initial_psf(measured), expected, atol=0.005 * expected.max())
    slide = np.concatenate([np.zeros((24, 24, 8)), np.asarray(TASK.read(str(path)))] * 2, axis=2)  # two beads
    write_stack(tmp_path / "slide.tif", slide.astype(np.float32), voxel_size=(0.1, 0.05, 0.05))
    on_slide = measured.replace(psf_file=str(tmp_path / "slide.tif"))
    TASK.resolve_data(on_slide)
    log = capsys.readouterr().out
    assert "from 2 beads alone in its window" in log and "WARNING" not in log
    write_stack(tmp_path / "raw.tif", (slide + 0.05 * slide.max()).astype(np.float32), voxel_size=(0.1, 0.05, 0.05))
    TASK.resolve_data(measured.replace(psf_file=str(tmp_path / "raw.tif")))  # a camera offset left in
    assert re.search(r"WARNING: --psf_file .*raw.tif: its median is [45]\.\d% of its maximum", capsys.readouterr().out)
    np.testing.assert_allclose(TASK.initial_psf(on_slide), TASK.initial_psf(measured), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(TASK.forward_op(measured, data).psf, expected, atol=0.005 * expected.max())
    seen = []
    monkeypatch.setattr(TASK, "fit_psf", lambda *args, physical=None, **kw: seen.append(physical))
    (callback,) = TASK.callbacks(measured, data, model, None)
    callback.on_epoch_end(0)
    assert seen == [True]
    for wrong in (config.replace(psf_init="file"), config.replace(psf_file=str(path))):
        assert any("--psf_init=file and --psf_file go together" in e for e in TASK.validate(wrong))
    write_stack(tmp_path / "empty.tif", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="empty.tif: a PSF must be .* positive maximum"):
        TASK.resolve_data(measured.replace(psf_file=str(tmp_path / "empty.tif")))


def test_psf_file_fit_starts_h_from_the_born_wolf_psf_fitted_to_the_bead(setup, tmp_path, capsys):
    from tf_otcycle.data.tiff import write_stack

    config, data, _ = setup
    rng = np.random.default_rng(1)
    psf = born_wolf_psf((24, 24, 24), (0.1, 0.05, 0.05), 0.55)
    bead = rng.poisson(1000 * psf / psf.max()) + rng.normal(0, 2, psf.shape) + 100.0  # counts on a camera offset
    path = tmp_path / "bead.tif"
    write_stack(path, np.clip(bead - 95.0, 0, None).astype(np.float32), voxel_size=(0.1, 0.05, 0.05))
    fitted = config.replace(psf_init="file", psf_file=str(path), psf_file_fit=True, psf_fit_epochs=None)
    assert TASK.validate(fitted) == []
    settled = TASK.settle(fitted, data)
    assert settled.wavelength == pytest.approx(550, abs=10) and "H starts from it" in capsys.readouterr().out
    expected = born_wolf_psf((6, 6, 6), (0.2, 0.1, 0.1), settled.wavelength / 1000)
    np.testing.assert_allclose(TASK.initial_psf(settled), expected, rtol=1e-5, atol=1e-8)  # noise-free
    assert TASK.settle(fitted.replace(psf_file_fit=False), data).wavelength == fitted.wavelength
    assert any("--psf_file_fit needs --psf_init=file" in e for e in TASK.validate(config.replace(psf_file_fit=True)))

def test_the_minimax_wavelength_bounds_the_fwhm_error_over_the_range():
    wavelength, worst = minimax_wavelength(0.4, 0.7)
    assert wavelength == pytest.approx(0.50909, abs=1e-5) and worst == pytest.approx(3 / 11)
    for true in (0.4, 0.7):  # the ends are off alike, by the worst error; the range's middle does worse
        assert abs(wavelength - true) / true == pytest.approx(worst)
    assert abs(0.55 - 0.4) / 0.4 > worst
    assert minimax_wavelength(0.5, 0.5) == (0.5, 0.0)
    with pytest.raises(ValueError, match="low <= high"):
        minimax_wavelength(0.7, 0.4)


@pytest.fixture
def oracle_generator(setup, monkeypatch):
    """G(y) = the ground truth of y (``*_gt.tif`` beside each blurred file): a G that explains the data."""
    config, data, _ = setup
    def key(y):  # the fit reads a float copy of each volume's centre (here the whole volume)
        return np.asarray(y, np.float32).tobytes()

    truths = {key(y): reflect_depth(normalize(read_stack(gt_path_for(f))), y.shape[0])
              for y, f in zip(data["volumes"]["blurred_files"], data["files"]["blurred_files"])}
    monkeypatch.setattr(TASK, "generator_method", lambda config, generator: lambda y: truths[key(y)])


def test_fit_psf_sets_the_fitted_born_wolf_psf_and_records_it(setup, tmp_path, oracle_generator):
    config, data, model = setup
    before = model.forward_op.psf
    fit = TASK.fit_psf(config, data, model, tmp_path, epoch=1)
    assert fit.reliable and fit.wavelength == pytest.approx(0.5, abs=0.03) and {0.4, 0.5, 0.6} <= set(fit.misfits)
    expected = born_wolf_psf((6, 6, 6), (0.2, 0.1, 0.1), fit.wavelength)
    np.testing.assert_allclose(model.forward_op.psf, expected, rtol=1e-4, atol=1e-7)
    assert not np.allclose(before, expected, atol=1e-4)  # it left the Gaussian start
    TASK.fit_psf(config, data, model, tmp_path, epoch=3)  # a later fit is added to the record
    records = json.loads((tmp_path / "psf" / "wavelength_fit.json").read_text())
    assert [r["epoch"] for r in records] == [1, 3] and records[0]["wavelength"] == fit.wavelength
    assert len(records[0]["files"]) == 2 and records[0]["unit"] == "micrometre"
    assert min(records[0]["misfits"], key=lambda r: r["misfit"])["wavelength"] == fit.wavelength
    TASK.fit_psf(config, data, model, tmp_path, epoch=2)  # a rerun from epoch 1 replaces what came after it
    assert [r["epoch"] for r in json.loads((tmp_path / "psf" / "wavelength_fit.json").read_text())] == [1, 2]
    # --ema_momentum: the average G's optimizer keeps of the PSF (H has no optimizer of its own) restarts there
    optimizer = model.g_optimizer
    kernel = model.forward_op.kernel
    average = [a for v, a in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average)
               if v.path == kernel.path]
    assert len(average) == 1
    np.testing.assert_array_equal(average[0].numpy(), kernel.numpy())


def test_callbacks_only_for_the_ot_model_and_only_with_the_flag(setup):
    config, data, model = setup
    (callback,) = TASK.callbacks(config.replace(psf_fit_epochs="5,2"), data, model, None)
    assert isinstance(callback, AtEpochEnd) and callback.epochs == [2, 5]
    assert TASK.callbacks(config.replace(psf_fit_epochs=None), data, model, None) == []
    assert TASK.callbacks(config, data, model.generator, None) == []  # a baseline: no learned PSF to fit


@pytest.mark.parametrize("bad,message", [
    (dict(psf_fit_epochs="0"), "--psf_fit_epochs"), (dict(psf_fit_epochs="5,201"), "--psf_fit_epochs"),
    (dict(psf_fit_epochs="five"), "--psf_fit_epochs"),
    (dict(psf_fit_wavelengths="500,x"), "--psf_fit_wavelengths"),
    (dict(psf_fit_wavelengths="-5"), "--psf_fit_wavelengths"),
    (dict(psf_fit_size=0), "--psf_fit_size"), (dict(psf_fit_files=0), "--psf_fit_files"),
])
def test_bad_fit_flags_are_named(bad, message):
    config = TASK.default_config(run_dir="r", blurred_files="b", sharp_files="s", test_files="t", **bad)
    assert any(message in e for e in TASK.validate(config))


def test_at_epoch_end_runs_after_its_epochs():
    calls = []
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    seen = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: calls.append(("epoch", epoch)))
    x = np.zeros((4, 1), np.float32)
    model.fit(x, x, epochs=4, verbose=0, callbacks=[AtEpochEnd([4, 2], calls.append), seen])
    # after the 2nd and 4th epochs (Keras counts from 0), each before the callbacks placed after it
    assert calls == [("epoch", 0), 2, ("epoch", 1), ("epoch", 2), 4, ("epoch", 3)]


def test_reset_average_restarts_the_average_of_one_variable():
    from tf_otcycle.training import adam

    a, b = keras.Variable(np.ones(2, np.float32), name="a"), keras.Variable(np.ones(2, np.float32), name="b")
    optimizer = adam(0.1, ema_momentum=0.9)
    optimizer.build([a, b])
    optimizer.apply_gradients([(np.ones(2, np.float32), a), (np.ones(2, np.float32), b)])
    a.assign([5.0, 5.0])
    before_b = optimizer._model_variables_moving_average[1].numpy().copy()
    reset_average(optimizer, a)
    np.testing.assert_array_equal(optimizer._model_variables_moving_average[0].numpy(), [5.0, 5.0])
    np.testing.assert_array_equal(optimizer._model_variables_moving_average[1].numpy(), before_b)  # untouched
    reset_average(adam(0.1), a)  # an optimizer without averages: nothing to do
