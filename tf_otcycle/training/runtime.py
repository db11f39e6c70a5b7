"""The runtime a run starts with: its ``tf.distribute`` strategy (created before any op) and CPU thread pools."""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``'auto'`` (mirrored over all GPUs when more than one, else default), ``'default'``,
    ``'mirrored'``, ``'multi_worker'`` (reads ``TF_CONFIG``) or ``'one_device'`` (first GPU or CPU).

    Call it before any TensorFlow op runs: ``MultiWorkerMirroredStrategy`` configures the
    collective ops at start-up (created later it fails with "Collective ops must be
    configured at program startup"), and listing devices already starts the runtime.
    """
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ValueError(f"strategy: expected auto|default|mirrored|multi_worker|one_device, got {name!r}")


# --threads=auto picks one thread per op below this much work per step (voxels of a training
# sample x filters of the generator's first level), TensorFlow's defaults above it.


AUTO_THREADS_WORK = 2**21


def parse_threads(spec: str, work: int | None = None) -> tuple[int, int] | None:
    """``--threads``: ``'tensorflow'`` -> None (TensorFlow's own choice), ``'INTRA,INTER'`` ->
    those, ``'auto'`` -> ``(1, cores)`` for small steps (``work`` below
    :data:`AUTO_THREADS_WORK`, or unknown) and None for large ones; ``ValueError`` otherwise.

    Measured on 2 CPU cores (``benchmarks/speed.py``, ``benchmarks/RESULTS.md``): one thread
    per op and one op per core runs the many small ops of a GAN step side by side (critics,
    scales, the generator's passes) instead of splitting each over all cores: 1.5x faster at
    the MRI demo size (0.75 vs 0.52 of the matmul peak), 1.7x at the microscopy demo size
    (0.42 vs 0.23); at paper size, where each convolution fills the cores, the two are
    within the run-to-run noise (MRI 8.43 vs 8.42 s, microscopy 7.35 vs 7.22 s per step; an
    earlier run had TensorFlow's defaults 4-7 % faster for MRI), so large steps keep
    TensorFlow's defaults. Only host-side scheduling changes: results are the same, and
    GPUs are unaffected.
    """
    if spec == "tensorflow":
        return None
    if spec == "auto":
        return (1, max(1, os.cpu_count() or 1)) if work is None or work < AUTO_THREADS_WORK else None
    try:
        intra, inter = (int(v) for v in spec.split(","))
    except ValueError:
        intra = inter = -1
    if intra < 0 or inter < 0:
        raise ValueError(f"--threads: expected auto, tensorflow or INTRA,INTER (non-negative, 0 = TensorFlow's "
                         f"choice), got {spec!r}")
    return intra, inter


def set_threads(spec: str, work: int | None = None) -> tuple[int, int] | None:
    """Apply ``--threads`` (see :func:`parse_threads`); before any TensorFlow op runs, as the
    pools are created with the runtime. Returns the ``(intra, inter)`` set, or None."""
    threads = parse_threads(spec, work)
    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    return threads


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes outputs (always, except non-chief multi-workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def read_cpuinfo() -> str:
    """The text of ``/proc/cpuinfo``; empty where there is none (not Linux) or it cannot be read."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpuinfo_field(name: str, cpuinfo: str | None = None) -> str:
    """The value of ``/proc/cpuinfo``'s (or ``cpuinfo``'s) first ``name`` line, stripped; empty
    where there is none."""
    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``'s first ``flags`` line; empty where there is none)."""
    return frozenset(cpuinfo_field("flags", cpuinfo).split())


def resolve_precision(spec: str, work: int | None = None, flags: frozenset[str] | None = None,
                      gpus: int | None = None) -> str:
    """``--mixed_precision``: ``'auto'`` -> ``'mixed_bfloat16'`` for a large step (``work`` at
    least :data:`AUTO_THREADS_WORK`) on a CPU with AMX-BF16 and no GPU, else ``'none'``
    (float32); any other value as given.

    Measured on 2 cores of a CPU with AMX-BF16 (``benchmarks/RESULTS.md``, "bfloat16 on this
    CPU"): the paper-size OT steps run 2.8x (MRI) and 1.9x (microscopy) faster in
    mixed_bfloat16, the demo-size ones 2-6 %, where the quality benchmark measured no loss
    at demo size. Not measured on CPUs without AMX (AVX512-BF16 alone) or on GPUs, which keep
    float32 (``mixed_float16`` is there to choose).
    """
    if spec != "auto":
        return spec
    if gpus is None:
        gpus = len(tf.config.list_physical_devices("GPU"))
    large = work is not None and work >= AUTO_THREADS_WORK
    amx = "amx_bf16" in (cpu_flags() if flags is None else flags)
    return "mixed_bfloat16" if large and amx and gpus == 0 else "none"
