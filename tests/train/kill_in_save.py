"""Run ``train/mri.py`` (argv as given) and SIGKILL the process in the middle of its N-th
checkpoint write: after the checkpoint's data files are written, before the index that
makes it the latest (``KILL_IN_SAVE=N``). Used by ``test_crash_resume.py``."""

import os
import runpy
import signal
import sys
from pathlib import Path

from tensorflow.python.checkpoint import checkpoint_management

ROOT = Path(__file__).resolve().parents[2]
target = int(os.environ["KILL_IN_SAVE"])
original = checkpoint_management.update_checkpoint_state_internal
saves = 0


def update_then_maybe_die(*args, **kwargs):
    global saves
    saves += 1
    if saves == target:
        print(f"KILLED in checkpoint write {saves}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)


checkpoint_management.update_checkpoint_state_internal = update_then_maybe_die
sys.argv = [str(ROOT / "train" / "mri.py"), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
