"""The shared run flow moved to :mod:`tf_otcycle.run`; this module keeps ``import common``
working for entry points written against earlier versions (``train/`` on ``sys.path``)."""

from __future__ import annotations

import os
import sys

# TensorFlow's C++ logs only with --verbose: decided before the package imports TensorFlow
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if "--verbose" in sys.argv else os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")

from tf_otcycle.run import *  # noqa: E402, F403
from tf_otcycle.run import __all__  # noqa: E402, F401
