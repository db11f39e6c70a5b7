"""TensorFlow imported without its C++ start-up lines, unless asked for.

TensorFlow 2.21 prints its oneDNN, CUDA-stub and cuInit lines from C++ before its logging is
set up, whatever ``TF_CPP_MIN_LOG_LEVEL`` says, and they bypass Python's ``sys.stderr``.
:func:`import_tensorflow` sends file descriptor 2 to ``/dev/null`` while TensorFlow loads
and probes its devices, unless ``TF_CPP_MIN_LOG_LEVEL`` is ``0`` or ``1`` (the training
entry points set ``0`` with ``--verbose``). Python errors raised meanwhile still show: the
descriptor is restored before they propagate.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def stderr_to_devnull():
    """File descriptor 2 (what C++ writes to) to ``/dev/null`` inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def wants_tensorflow_logs() -> bool:
    """Whether the user asked for TensorFlow's C++ logs (``TF_CPP_MIN_LOG_LEVEL`` 0 or 1)."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2").strip() in ("0", "1")


def enable_onednn() -> None:
    """Use oneDNN's CPU kernels unless ``TF_ENABLE_ONEDNN_OPTS`` says otherwise.

    TensorFlow turns them on by default only on CPUs with AVX-512 VNNI/BF16 or AMX; on others
    (e.g. AVX2-only AMD EPYC) its own 3-D convolution gradients are 4-40x slower (a 32^3
    microscopy OT step: benchmarks/RESULTS.md). Effective only before TensorFlow is imported.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def import_tensorflow() -> None:
    """Import TensorFlow (once) with oneDNN (:func:`enable_onednn`) and probe its devices,
    quietly unless logs are wanted."""
    enable_onednn()
    if "tensorflow" in sys.modules or wants_tensorflow_logs():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its later C++ INFO/WARNING lines too
    with stderr_to_devnull():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe logs here, not at the first op
