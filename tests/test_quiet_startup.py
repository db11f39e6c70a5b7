"""Importing the package (and so every command) shows none of TensorFlow's C++ start-up lines."""

import os
import re
import subprocess
import sys

import pytest

NOISE = re.compile(r"^(I0000|W0000|E0000|WARNING: All log messages)", re.M)


@pytest.mark.slow
def test_import_and_a_first_op_print_nothing():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import tf_otcycle, tensorflow as tf; print(int(tf.constant(1) + 1))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout == "2\n", proc.stderr
    assert not NOISE.search(proc.stderr), proc.stderr


def test_stderr_is_restored_after_the_quiet_block(capfd):
    from tf_otcycle._startup import stderr_to_devnull

    with stderr_to_devnull():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"
