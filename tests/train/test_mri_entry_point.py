"""End to end: ``train/mri.py`` on tiny synthetic fastMRI files (subprocesses, as users run it)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.scripts import load_script
from tf_otcycle.training import TrainState

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "train" / "mri.py"


def tiny_flags(data, run_dir, **extra):
    flags = {
        "run_dir": run_dir, "clean_files": f"{data}/clean/*.h5", "measured_files": f"{data}/measured/*.h5",
        "val_files": f"{data}/val/*.h5", "test_files": f"{data}/test/*.h5", "crop_size": 32, "epochs": 1,
        "steps_per_epoch": 3, "base_filters": 4, "depth": 2, "critic_filters": 4, "critic_layers": 2,
        "n_critic": 2, "learning_rate": 1e-3, "val_slices": 2, "num_panels": 1, "center_fraction": 0.08,
    }
    flags.update(extra)
    return [f"--{k}={v}" for k, v in flags.items()]


def run(args, check=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def load_entry_point():
    return load_script("train/mri.py", "train_mri")


def test_train_evaluate_export_then_resume(mri_data, tmp_path):
    run_dir = tmp_path / "run"
    out = run(tiny_flags(mri_data, run_dir)).stdout
    assert "ot_cyclegan" in out
    assert "Evaluating the best validation epoch, 1" in out and (run_dir / "best" / "checkpoint").exists()
    for rel in ("flags.txt", "config.json", "eval/metrics.csv", "eval/metrics.md", "export/generator.keras",
                "export/saved_model/1/saved_model.pb", "checkpoints/checkpoint"):
        assert (run_dir / rel).exists(), rel
    assert list((run_dir / "eval").glob("*.png"))
    steps = {}  # TensorBoard: training and validation scalars on one axis, generator steps
    for events in (run_dir / "logs").rglob("events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                steps[value.tag] = event.step
    assert steps["g_loss"] == steps["critic_gap"] == steps["val/psnr"] == 3
    with open(run_dir / "eval" / "metrics.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["method", "psnr", "ssim", "nmse"]
    assert [r[0] for r in rows[1:]] == ["input", "ot_cyclegan", "ot_cyclegan+dc"]
    assert all(np.isfinite(float(v)) for r in rows[1:] for v in r[1:4])
    assert "--n_critic=2" in (run_dir / "flags.txt").read_text()

    # The whole state was saved at step 3: restore it in a fresh model and compare.
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    entry = load_entry_point()
    config = {k: entry.FLAGS[k].default for k in entry.CONFIG_KEYS}
    config.update(crop_size=32, base_filters=4, depth=2, critic_filters=4, critic_layers=2, n_critic=2,
                  learning_rate=1e-3)
    model = entry.build_model(config)
    state = TrainState(model, run_dir / "checkpoints")
    assert state.restore(log=lambda s: None) == 1
    assert state.step == 3 and int(model.d_optimizer.iterations) == 6
    names = {name for name in reader.get_variable_to_shape_map() if name.startswith(("generator/", "g_optimizer/",
                                                                                     "d_optimizer/", "critic_x/"))}
    assert any(n.startswith("g_optimizer/") for n in names)
    ckpt = state.checkpoint
    for var_name, value in _checkpoint_values(ckpt, reader).items():
        np.testing.assert_array_equal(value[0], value[1], err_msg=var_name)

    # A rerun with a model-defining flag changed is refused before anything is written.
    flags_before = (run_dir / "flags.txt").read_text()
    proc = run(tiny_flags(mri_data, run_dir, base_filters=8, rho=2.0), check=False)
    assert proc.returncode != 0 and "--base_filters: 4 in the run, 8 now" in proc.stderr
    assert "--rho: 0.5 in the run, 2.0 now" in proc.stderr
    assert (run_dir / "flags.txt").read_text() == flags_before

    # Re-running the same command with more epochs resumes where it stopped.
    out = run(tiny_flags(mri_data, run_dir, epochs=2, export=False)).stdout
    assert "Resumed from step 3" in out
    model = entry.build_model(config)
    state = TrainState(model, run_dir / "checkpoints")
    assert state.restore(log=lambda s: None) == 2 and state.step == 6


def _checkpoint_values(ckpt, reader):
    """(restored, saved) pairs for every variable the checkpoint tracks."""
    pairs = {}
    for key in reader.get_variable_to_shape_map():
        if not key.endswith(".ATTRIBUTES/VARIABLE_VALUE") or key.startswith("_CHECKPOINTABLE"):
            continue
        obj = ckpt
        try:
            for part in key.split("/.ATTRIBUTES")[0].split("/"):
                obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        except (AttributeError, IndexError, KeyError, TypeError):
            continue
        if hasattr(obj, "numpy"):
            pairs[key] = (np.asarray(obj.numpy()), reader.get_tensor(key))
    assert len(pairs) > 10
    return pairs


def test_eval_only_without_checkpoint_fails_clearly(mri_data, tmp_path):
    proc = run(tiny_flags(mri_data, tmp_path / "empty", eval_only=True), check=False)
    assert proc.returncode != 0 and "no checkpoint" in proc.stderr


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"acceleration": -4}, "--acceleration must be >= 1"),
        ({"rho": -0.5}, "--rho must be >= 0"),
        ({"clean_files": ""}, "--clean_files is required"),
        ({"crop_size": 30}, "divisible"),
        ({"measured_files": "/nonexistent/*.h5"}, "matches no file"),
        ({"threads": "two"}, "--threads: expected auto"),
    ],
)
def test_bad_flags_stop_before_any_work(mri_data, tmp_path, extra, message):
    run_dir = tmp_path / "run"
    proc = run(tiny_flags(mri_data, run_dir, **extra), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not run_dir.exists()
    if "--threads" not in message:  # checked by absl's own flag parser before the entry point runs
        assert proc.stderr.rstrip().endswith("Run with --help for the flags.")
        assert "Unsupervised accelerated MRI" not in proc.stderr  # no module docstring before the message


def test_training_needs_no_test_files_and_eval_only_scores_the_run_later(mri_data, tmp_path):
    run_dir = tmp_path / "run"
    flags = [f for f in tiny_flags(mri_data, run_dir, num_panels=0) if not f.startswith("--test_files")]
    out = run(flags).stdout
    assert "No --test_files: nothing evaluated" in out and (run_dir / "export" / "generator.keras").exists()
    assert not (run_dir / "eval" / "metrics.csv").exists()
    out = run([*flags, f"--test_files={mri_data}/test/*.h5", "--eval_only"]).stdout
    assert "Test metrics" in out and (run_dir / "eval" / "metrics.csv").exists()
    proc = run([*flags, "--eval_only"], check=False)
    assert proc.returncode != 0 and "--test_files is required with --eval_only" in proc.stderr


def test_domains_must_be_disjoint(mri_data, tmp_path):
    proc = run(tiny_flags(mri_data, tmp_path / "r", measured_files=f"{mri_data}/clean/*.h5"), check=False)
    assert proc.returncode != 0 and "disjoint" in proc.stderr


@pytest.mark.parametrize("stop,code,said", [("SIGINT", 130, "Interrupted"), ("SIGTERM", 143, "Terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_the_same_command_resumes(mri_data, tmp_path, stop, code, said):
    """Ctrl-C, or SIGTERM as Slurm and Kubernetes stop a job: a checkpoint, exit 130 / 143, resume."""
    import signal

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-u", str(SCRIPT), *tiny_flags(mri_data, run_dir, epochs=200, export=False)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    # A terminal's default SIGINT handling (a test runner started in the background inherits "ignore").
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:  # interrupt in the middle of training, after two epochs
        if line.startswith("Epoch 3/"):
            proc.send_signal(getattr(signal, stop))
            break
    out = proc.stdout.read()
    assert proc.wait(timeout=300) == code, out[-3000:]
    assert f"{said}: saved step" in out and "rerun the same command to resume" in out and "Traceback" not in out
    resumed = run(tiny_flags(mri_data, run_dir, epochs=3, export=False)).stdout
    assert "Resumed from step" in resumed


def test_the_same_seed_gives_the_same_metrics(mri_data, tmp_path):
    def metrics(name, **extra):
        run(tiny_flags(mri_data, tmp_path / name, export=False, num_panels=0, **extra))
        with open(tmp_path / name / "eval" / "per_file.csv") as f:
            return [(r["method"], r["file"], r["psnr"], r["ssim"], r["nmse"]) for r in csv.DictReader(f)]

    first = metrics("a")
    assert metrics("b") == first  # data order, masks, augmentation and initial weights all follow --seed
    assert metrics("c", seed=1) != first


def test_eval_only_evaluates_the_averaged_weights_as_training_did(mri_data, tmp_path):
    """With the weight average (--ema_momentum) the checkpoint holds the raw weights and their
    averages; --eval_only must evaluate the averages, as the training run did."""

    def quality(run_dir):  # method -> (psnr, ssim, nmse); the timing columns differ between runs
        with open(run_dir / "eval" / "metrics.csv") as f:
            return {r[0]: tuple(r[1:4]) for r in list(csv.reader(f))[1:]}

    run_dir = tmp_path / "run"
    flags = dict(select="last", export=False, epochs=2, ema_momentum=0.5)
    run(tiny_flags(mri_data, run_dir, **flags))
    trained = quality(run_dir)
    run(tiny_flags(mri_data, run_dir, eval_only=True, **flags))
    assert quality(run_dir) == trained
    run(tiny_flags(mri_data, tmp_path / "raw", **dict(flags, ema_momentum=0.0)))
    assert quality(tmp_path / "raw")["ot_cyclegan"] != trained["ot_cyclegan"]  # the average is not the raw weights


@pytest.fixture(scope="module")
def acquired_data(tmp_path_factory):
    """As ``mri_data``, with the measured files written as fastMRI challenge-style acquisitions."""
    from tf_otcycle.data.synthetic import write_mri_dataset
    from tf_otcycle.physics.masks import MaskSpec

    root = tmp_path_factory.mktemp("mri_acquired")
    write_mri_dataset(root, size=32, slices=2, num_clean=2, num_measured=2, num_val=1, num_test=1,
                      acquisition=MaskSpec("random", 4, 0.08))
    return root


def test_measured_files_may_be_acquisitions_with_their_own_masks(acquired_data, tmp_path):
    run_dir = tmp_path / "run"
    out = run(tiny_flags(acquired_data, run_dir, acceleration=2)).stdout
    assert "--measured_files: 2 of 2 files hold their own acquisition" in out
    assert "nearest-frequency approximation" in out  # 36 acquired columns, a 32-column crop
    assert "WARNING: the acquisitions realise an acceleration of" in out and "--acceleration=2" in out
    rows = {r["method"]: r for r in csv.DictReader(open(run_dir / "eval" / "metrics.csv"))}
    assert set(rows) >= {"input", "ot_cyclegan"} and np.isfinite(float(rows["ot_cyclegan"]["psnr"]))
    proc = run([*tiny_flags(acquired_data, tmp_path / "swapped", clean_files=f"{acquired_data}/measured/*.h5",
                            measured_files=f"{acquired_data}/clean/*.h5")], check=False)
    assert proc.returncode != 0 and "file000002.h5: holds an undersampled acquisition" in proc.stderr
    assert "--clean_files (clean images) needs fully sampled k-space" in proc.stderr
