import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.io_utils import atomic_path, atomic_write_text, plan_outputs
from tf_otcycle.schedules import LinearDecayAfter
from tf_otcycle.training import make_strategy


def test_linear_decay_after():
    s = LinearDecayAfter(1e-4, decay_start=40, total_steps=200)
    values = [float(s(t)) for t in (0, 39, 40, 120, 200, 250)]
    np.testing.assert_allclose(values, [1e-4, 1e-4, 1e-4, 5e-5, 0.0, 0.0], atol=1e-12)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert float(again(120)) == pytest.approx(5e-5)
    with pytest.raises(ValueError, match="decay_start"):
        LinearDecayAfter(1e-4, 50, 10)


@pytest.mark.parametrize("name,decay", [("mri", None), ("mri", 2), ("microscopy", 2)])
def test_task_optimizers_decay_after_decay_epoch(name, decay):
    from tf_otcycle import tasks

    task = tasks.get(name)
    psf = {"psf_learning_rate": 1e-2} if name == "microscopy" else {}
    config = task.default_config(epochs=4, decay_epoch=decay, learning_rate=1e-3, n_critic=5, **psf)
    g_optimizer, d_optimizer, h_optimizer = task.optimizers(config, steps_per_epoch=10)
    if decay is None:  # MRI's default, as the authors' code: a constant rate
        assert float(g_optimizer.learning_rate) == pytest.approx(1e-3)
        return
    # G: constant for 2 epochs of 10 steps, 0 at 4 epochs; the critics count n_critic updates per step
    assert [float(g_optimizer._learning_rate(t)) for t in (19, 30, 40)] == pytest.approx([1e-3, 5e-4, 0.0])
    assert [float(d_optimizer._learning_rate(t)) for t in (99, 150, 200)] == pytest.approx([1e-3, 5e-4, 0.0])
    if h_optimizer is not None:
        assert float(h_optimizer._learning_rate(30)) == pytest.approx(5e-3)
    errors = task.validate(config.replace(decay_epoch=5))
    assert errors and "--decay_epoch" in " ".join(errors)


def test_strategies():
    assert make_strategy("default").num_replicas_in_sync == 1
    assert isinstance(make_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    with pytest.raises(ValueError, match="strategy"):
        make_strategy("tpu-please")


def test_atomic_writes_keep_the_old_output_on_failure(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("crash while writing")
    assert (target / "old.txt").read_text() == "old" and not (target / "half.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    atomic_write_text(tmp_path / "f.txt", "x")
    assert (tmp_path / "f.txt").read_text() == "x"


def test_plan_outputs(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.tif").write_bytes(b"")
    (tmp_path / "in" / "b.txt").write_bytes(b"")
    pairs = plan_outputs(tmp_path / "in", tmp_path / "out", (".tif",), overwrite=False)
    assert [(a.name, b.parent.name) for a, b in pairs] == [("a.tif", "out")]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="exists"):
        plan_outputs(tmp_path / "in", tmp_path / "out", (".tif",), overwrite=False)
    with pytest.raises(ValueError, match="does not exist"):
        plan_outputs(tmp_path / "nope", tmp_path / "out", (".tif",), overwrite=True)


def test_threads_flag_values():
    import os

    from tf_otcycle.training import AUTO_THREADS_WORK, parse_threads

    cores = os.cpu_count()
    assert parse_threads("auto", 128**2 * 16) == (1, cores)  # a demo-size step: one op per core
    assert parse_threads("auto", 320**2 * 64) is None  # paper size: TensorFlow's defaults
    assert parse_threads("auto", AUTO_THREADS_WORK) is None and parse_threads("auto") == (1, cores)
    assert parse_threads("tensorflow") is None and parse_threads("2,3") == (2, 3)
    for bad in ("", "two", "1", "1,2,3", "-1,2"):
        with pytest.raises(ValueError, match="--threads"):
            parse_threads(bad)


def test_mixed_precision_auto():
    """auto: bfloat16 only for paper-size steps on a CPU with AMX-BF16 and no GPU (where it was measured
    1.9-2.8x faster); float32 for small steps, other CPUs and GPUs; other values as given."""
    import keras

    from tf_otcycle.tasks import get
    from tf_otcycle.tasks.base import set_precision
    from tf_otcycle.training import cpu_flags, resolve_precision

    amx, avx512 = frozenset({"avx2", "avx512_bf16", "amx_bf16"}), frozenset({"avx2", "avx512_bf16"})
    paper, demo = 320**2 * 64, 128**2 * 16
    assert resolve_precision("auto", paper, amx, gpus=0) == "mixed_bfloat16"
    assert resolve_precision("auto", demo, amx, gpus=0) == "none"
    assert resolve_precision("auto", None, amx, gpus=0) == "none"
    assert resolve_precision("auto", paper, avx512, gpus=0) == "none"
    assert resolve_precision("auto", paper, amx, gpus=1) == "none"
    for spec in ("none", "mixed_float16", "mixed_bfloat16"):
        assert resolve_precision(spec, paper, amx, gpus=0) == spec
    assert cpu_flags("processor : 0\nflags\t\t: fpu avx2 amx_bf16\n") == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags("no flags here") == frozenset()
    task = get("mri")
    config = task.default_config(mixed_precision="auto", crop_size=320, base_filters=64)
    try:
        chosen = set_precision(config, task.step_work(config))
        assert chosen == resolve_precision("auto", task.step_work(config))
        assert keras.mixed_precision.global_policy().name == ("float32" if chosen == "none" else chosen)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_plan_outputs_globs_folders_and_skip_existing(tmp_path):
    from tf_otcycle.io_utils import expand_flagfiles

    for name in ("a.h5", "b.h5", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    pairs = plan_outputs(str(tmp_path / "*.h5"), tmp_path / "out", (".h5",), overwrite=False)
    assert [(i.name, o.parent.name) for i, o in pairs] == [("a.h5", "out"), ("b.h5", "out")]
    with pytest.raises(ValueError, match="is a file name"):  # several inputs, one output file
        plan_outputs(str(tmp_path / "*.h5"), tmp_path / "x.h5", (".h5",), overwrite=False)
    with pytest.raises(ValueError, match="matches no"):
        plan_outputs(str(tmp_path / "*.tif"), tmp_path / "out", (".tif",), overwrite=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="skip_existing"):
        plan_outputs(str(tmp_path / "*.h5"), tmp_path / "out", (".h5",), overwrite=False)
    pairs = plan_outputs(str(tmp_path / "*.h5"), tmp_path / "out", (".h5",), overwrite=False, skip_existing=True)
    assert [i.name for i, _ in pairs] == ["b.h5"]
    (tmp_path / "inner.flags").write_text("# a comment\n--crop_size=16\n")
    (tmp_path / "outer.flags").write_text(f"--model=m.keras\n--flagfile={tmp_path / 'inner.flags'}\n")
    assert expand_flagfiles(["--input=x", f"--flagfile={tmp_path / 'outer.flags'}"]) == [
        "--input=x", "--model=m.keras", "--crop_size=16"]
    (tmp_path / "bad.flags").write_text("crop_size 16\n")
    for bad, match in (("bad.flags", "is not a --flag"), ("none.flags", "does not exist")):
        with pytest.raises(ValueError, match=match):
            expand_flagfiles([f"--flagfile={tmp_path / bad}"])


def test_atomic_writes_are_readable_by_others_as_the_umask_allows(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.txt", "x")
        with atomic_path(tmp_path / "folder") as tmp:
            tmp.mkdir()
            (tmp / "inner.txt").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644  # not mkstemp's 0600
    assert stat.S_IMODE((tmp_path / "folder" / "inner.txt").stat().st_mode) == 0o644


def test_progress_numbers_epochs_of_the_run_and_shows_few_metrics(capsys):
    """A resumed run's partial epoch reads 'Epoch 2/3', not 'Epoch 2/2'; the line keeps PROGRESS_KEYS."""
    import keras
    import numpy as np

    from tf_otcycle.training import PROGRESS_KEYS, Progress

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    x, y = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
    model.fit(x, y, epochs=2, initial_epoch=1, batch_size=2, verbose=2, callbacks=[Progress(3)])
    out = capsys.readouterr().out
    assert "Epoch 2/3" in out and "Epoch 2/2" not in out
    assert "loss:" in out and "mae" not in out and "loss" in PROGRESS_KEYS
    model.fit(x, y, epochs=1, batch_size=2, verbose=2, callbacks=[Progress(1, None)])
    assert "mae:" in capsys.readouterr().out  # --verbose: every metric


def test_help_groups_hold_every_flag_once_and_mark_the_required_ones():
    from tf_otcycle import tasks
    from tf_otcycle.tasks.base import COMMON_FLAGS, flag_groups, required_flags

    for name in tasks.NAMES:
        task = tasks.get(name)
        groups = flag_groups(task)
        shown = [spec.name for _, specs in groups for spec in specs]
        assert sorted(shown) == sorted({f.name for f in COMMON_FLAGS} | {f.name for f in task.flags})
        assert len(shown) == len(set(shown)) and groups[0][0] == f"{name}: data and physics"
        assert set(required_flags(task)) == {"run_dir", "test_files", *task.training_files}


@pytest.mark.parametrize("writer", ["stack", "image"])
def test_tiff_writers_keep_the_old_file_when_a_write_fails(tmp_path, monkeypatch, writer):
    import numpy as np
    import tifffile

    from tf_otcycle.data import images, tiff

    module, write = (tiff, tiff.write_stack) if writer == "stack" else (images, images.write_image)
    shape = (2, 4, 4) if writer == "stack" else (4, 4)
    path = tmp_path / "out.tif"
    write(path, np.ones(shape, np.float32))

    def half_write(target, *args, **kwargs):
        open(target, "wb").write(b"II*\0half")
        raise OSError("disk full")

    monkeypatch.setattr(module.tifffile, "imwrite", half_write)
    with pytest.raises(OSError, match="disk full"):
        write(path, np.zeros(shape, np.float32))
    assert np.all(tifffile.imread(path) == 1) and [p.name for p in tmp_path.iterdir()] == ["out.tif"]
