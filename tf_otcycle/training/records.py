"""What a run directory records: the flags that reproduce it (``flags.txt``, ``config.json``
with the environment), the resume check against them, and the write probe."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_otcycle.io_utils import atomic_write_bytes, atomic_write_text


def save_flags(run_dir: str | os.PathLike, flags_text: str, config: dict) -> None:
    """Write ``flags.txt`` (a flagfile that reproduces the run) and ``config.json`` (the
    flags, plus the package versions and git commit under ``"environment"``)."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "flags.txt", flags_text)
    record = {**config, "environment": environment()}
    atomic_write_text(run_dir / "config.json", json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def recorded_differences(run_dir: str | os.PathLike, config: dict, specs: Iterable) -> list[str]:
    """``--flag: recorded -> now`` for each model-defining flag (and the task) that differs from
    the run recorded in ``run_dir/config.json``; empty when there is no trained run there.

    ``specs``: the flags' declarations (:class:`tf_otcycle.tasks.base.FlagSpec`), whose
    ``may_change`` flags may differ and whose ``before`` stands in for a flag the run was
    recorded without. Keys of ``config`` no spec declares must match."""
    run_dir = Path(run_dir)
    record_path = run_dir / "config.json"
    if not record_path.exists() or not any((run_dir / "checkpoints").glob("*.index")):
        return []
    try:
        recorded = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return [f"{record_path}: unreadable record of the run ({e})"]
    specs = {spec.name: spec for spec in specs}
    out = []
    for key in sorted(set(config) | set(recorded)):
        spec = specs.get(key)
        if (spec is not None and spec.may_change) or key == "environment":
            continue
        before = spec.before if spec is not None else None
        old, new = recorded.get(key, before if key in config else None), config.get(key)
        if old != new and not (isinstance(old, list) and isinstance(new, tuple) and list(new) == old):
            name = "task" if key == "task" else f"--{key}"
            out.append(f"{name}: {old!r} in the run, {new!r} now")
    return out


def environment() -> dict:
    """Versions of Python and the main packages, and the package's git commit when it is a checkout."""
    import platform
    import subprocess

    import tf_otcycle

    versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                "numpy": np.__version__, "tf_otcycle": tf_otcycle.__version__}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(tf_otcycle.__file__).parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {**versions, "git_commit": commit}


def probe_writable(run_dir: str | os.PathLike) -> None:
    """Create ``run_dir`` and write a file in it; ``OSError`` naming the folder when it cannot
    (read-only, no permission, full disk), before any training."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / ".write_probe", b"\0" * 65536)
        (run_dir / ".write_probe").unlink()
    except OSError as e:
        raise OSError(f"{run_dir}: the run directory is not writable ({e.strerror or e})") from None
