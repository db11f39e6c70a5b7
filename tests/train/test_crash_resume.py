"""Crash safety (#12): a run killed at any moment (SIGKILL, also in the middle of a checkpoint
write) resumes from its last complete checkpoint and, with ``--deterministic``, ends with the
weights of an uninterrupted run of the same seed."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_mri_entry_point import ROOT, SCRIPT, run, tiny_flags

from tf_otcycle.run import fit_plan

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def flags(data, run_dir, **extra):
    # with the weight average on: a checkpoint holds the raw weights and their averages
    settings = dict(epochs=3, steps_per_epoch=4, export=False, num_panels=0, deterministic=True, ema_momentum=0.9)
    return tiny_flags(data, run_dir, **{**settings, **extra})


def final_weights(run_dir: Path) -> dict:
    """Every saved variable of the latest checkpoint (networks, optimizer slots, rng states)."""
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "save_counter" not in k}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def uninterrupted(mri_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    run(flags(mri_data, run_dir))
    return final_weights(run_dir)


def test_fit_plan_finishes_a_partial_epoch_first():
    assert fit_plan(0, 0, 4, 3) == [(0, 3, 4)]
    assert fit_plan(8, 2, 4, 3) == [(2, 3, 4)]
    assert fit_plan(6, 1, 4, 3) == [(1, 2, 2), (2, 3, 4)]
    assert fit_plan(10, 2, 4, 3) == [(2, 3, 2)]
    assert fit_plan(12, 3, 4, 3) == []


def test_resume_at_an_epoch_equals_the_uninterrupted_run(mri_data, tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    run(flags(mri_data, run_dir, epochs=1))
    out = run(flags(mri_data, run_dir)).stdout
    assert "Resumed from step 4" in out and "Replaying the input pipeline to step 4" in out
    assert_same_weights(final_weights(run_dir), uninterrupted)


def test_sigkill_at_a_random_moment_then_rerun(mri_data, tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    delay = random.Random().uniform(0.0, 3.0)
    proc = subprocess.Popen([sys.executable, "-u", str(SCRIPT), *flags(mri_data, run_dir, checkpoint_steps=1)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=ROOT)
    for line in proc.stdout:  # training has started and saved at least one checkpoint
        if line.startswith("Epoch 2/"):
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    out = run(flags(mri_data, run_dir, checkpoint_steps=1)).stdout
    assert "Resumed from step" in out, f"killed {delay:.2f} s into epoch 2\n{out[-2000:]}"
    assert_same_weights(final_weights(run_dir), uninterrupted)
    assert len(tf.train.get_checkpoint_state(str(run_dir / "checkpoints")).all_model_checkpoint_paths) <= 3


def test_sigkill_in_a_checkpoint_write_keeps_the_last_complete_one(mri_data, tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "train" / "kill_in_save.py"),
                           *flags(mri_data, run_dir)],
                          capture_output=True, text=True, env={**ENV, "KILL_IN_SAVE": "2"}, cwd=ROOT, timeout=600)
    assert proc.returncode == -signal.SIGKILL and "KILLED in checkpoint write 2" in proc.stdout
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-4")  # the complete one
    out = run(flags(mri_data, run_dir)).stdout
    assert "Resumed from step 4" in out
    assert_same_weights(final_weights(run_dir), uninterrupted)


def test_checkpoint_steps_and_ctrl_c_resume_inside_the_epoch(mri_data, tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-u", str(SCRIPT), *flags(mri_data, run_dir, checkpoint_steps=3)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:
        if line.startswith("Epoch 2/"):
            break
    proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    assert proc.wait(timeout=300) == 130, out[-3000:]
    assert "Interrupted: saved step" in out and "rerun the same command to resume" in out and "Traceback" not in out
    out = run(flags(mri_data, run_dir, checkpoint_steps=3)).stdout
    assert "Resumed from step" in out
    assert_same_weights(final_weights(run_dir), uninterrupted)
