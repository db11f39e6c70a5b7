"""Shared test set-up: quiet TensorFlow, deterministic seeds, CPU only, the slow marker.

``make test-fast`` runs ``-m "not slow"``: unit and in-process tests, under a minute.
Slow: every test in ``tests/train/`` (each starts entry points in fresh processes), whole
modules marked ``pytestmark = pytest.mark.slow`` and single tests marked
``@pytest.mark.slow`` (a fresh process, a training run, several seconds of work).
``make test`` runs the files on two pytest-xdist workers (``--dist loadfile``: a file's tests,
and its module fixtures, stay on one worker); every test must hold beside another file's.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the package sets it (tf_otcycle._startup.enable_onednn)

from tf_otcycle._startup import import_tensorflow  # noqa: E402

import_tensorflow()  # without TensorFlow's C++ start-up lines (pytest-xdist's workers do not capture them)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    """Every test under tests/train/ is slow: entry points in fresh processes."""
    for item in items:
        if "/tests/train/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)
