"""``train/compare.py`` imports both entry points: the shared flags must take the chosen task's defaults."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
from absl import flags
from tests.scripts import load_script
from tf_otcycle import run
compare = load_script("train/compare.py", "compare")
for name in ("mri", "microscopy", "deblur2d"):  # their flags are already defined: no clash
    load_script(f"train/{{name}}.py", name)
flags.FLAGS(["compare", "--application={app}", "--depth=2"])
run.apply_defaults(compare.entry_point().common_defaults)
print(flags.FLAGS.epochs, flags.FLAGS.base_filters, flags.FLAGS.critic_layers, flags.FLAGS.depth,
      flags.FLAGS.cycle_gradients, flags.FLAGS.gan_weight)
"""


@pytest.mark.parametrize("app,expected", [("mri", "100 64 3 2 joint 1.0"), ("microscopy", "200 32 2 2 split 0.1"),
                                             ("deblur2d", "100 32 2 2 split 0.1")])
def test_shared_flags_take_the_chosen_application_defaults(app, expected):
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(app=app)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[-2] == expected  # --depth given: kept


@pytest.mark.parametrize("entry,flag",
                         [("mri", "--crop_size"), ("microscopy", "--psf_init"), ("deblur2d", "--pixel_size")])
def test_help_lists_the_entry_points_flags_and_exits_0(entry, flag):
    proc = subprocess.run([sys.executable, str(ROOT / "train" / f"{entry}.py"), "--help"], capture_output=True,
                          text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert flag in proc.stdout and "--learning_rate" in proc.stdout and "--on_nan" in proc.stdout


def test_compare_checks_threads_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "train" / "compare.py"), "--application=mri", "--threads=many",
                           f"--run_dir={tmp_path / 'r'}", "--test_files=x.h5", "--clean_files=a.h5",
                           "--measured_files=b.h5"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "--threads: expected auto" in proc.stderr and not (tmp_path / "r").exists()


def test_entry_points_written_against_train_common_still_run():
    """``import common`` from ``train/`` (the run flow before it moved to ``tf_otcycle.run``)."""
    code = "import common, tf_otcycle.run as run; assert common.launch is run.launch and common.define_flags"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "train", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
