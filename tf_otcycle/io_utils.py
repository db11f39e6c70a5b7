"""File access: atomic writes (a crash never leaves a half-written output behind), and reading
inputs by local path or by URI.

Inputs may be local paths or URIs of any file system TensorFlow knows (``file://``,
``gs://``; ``s3://``, ``az://``, ``hdfs://`` through tensorflow-io's plugins): globs,
existence checks and reads go through :func:`expand_files`, :func:`exists` and
:func:`open_binary`, the same code path for both. Outputs (run folders) are local.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from colleagues
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    Works for files and folders (e.g. a SavedModel). An existing ``path`` is replaced only
    after the new one is complete; on error the temporary is removed and ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmp_dir / (path.name + suffix if suffix and not path.name.endswith(suffix) else path.name)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = tmp_dir / ".old"
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def plan_outputs(
    src: str | os.PathLike, dst: str | os.PathLike, suffixes: tuple[str, ...], overwrite: bool,
    skip_existing: bool = False,
) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs of an inference command: one file, every file of a folder,
    or every file a glob pattern (``'scans/*.h5'``) matches; several inputs go to the folder
    ``dst``, each under its own name.

    ``skip_existing`` leaves out inputs whose output exists (a folder run that stopped
    part-way continues); otherwise an existing output needs ``overwrite``.

    Raises:
        ValueError: the input is missing or matches no file with one of ``suffixes``; several
            inputs but ``dst`` names a file (``out.h5``); or an output exists and neither
            ``overwrite`` nor ``skip_existing`` is set (nothing is written then).
    """
    text, dst = str(src), Path(dst)
    pattern = any(c in text for c in "*?[")
    if pattern:
        files = [Path(p) for p in sorted(glob.glob(text)) if Path(p).suffix.lower() in suffixes]
        if not files:
            raise ValueError(f"--input: {text} matches no {'/'.join(suffixes)} file")
    elif Path(text).is_dir():
        files = [p for p in sorted(Path(text).iterdir()) if p.suffix.lower() in suffixes]
        if not files:
            raise ValueError(f"--input: {text} holds no {'/'.join(suffixes)} file")
    elif Path(text).exists():
        return _existing_outputs([(Path(text), dst)], overwrite, skip_existing)
    else:
        raise ValueError(f"--input: {text} does not exist")
    if dst.suffix.lower() in suffixes or (dst.exists() and not dst.is_dir()):
        raise ValueError(f"--output: {dst} is a file name, but --input {text} gives {len(files)} file(s): "
                         "give a folder")
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        raise ValueError(f"--input: {text} matches files of the same name in different folders; "
                         "run one folder at a time")
    return _existing_outputs([(p, dst / p.name) for p in files], overwrite, skip_existing)


def _existing_outputs(pairs: list, overwrite: bool, skip_existing: bool) -> list:
    existing = [o for _, o in pairs if o.exists()]
    if skip_existing:
        return [(i, o) for i, o in pairs if not o.exists()]
    if existing and not overwrite:
        raise ValueError(f"--output: {existing[0]} exists (pass --overwrite to replace it, or --skip_existing)")
    return pairs


def add_output_options(parser) -> None:
    """The inference commands' ``--overwrite`` / ``--skip_existing`` (exclusive)."""
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    existing.add_argument("--skip_existing", action="store_true",
                          help="leave out inputs whose output exists (continue a folder run that stopped)")


def parse_command_line(parser, argv: list[str] | None):
    """``parser.parse_args`` with ``--flagfile=FILE`` expanded (:func:`expand_flagfiles`);
    a bad flagfile is a usage error."""
    try:
        return parser.parse_args(expand_flagfiles(sys.argv[1:] if argv is None else argv))
    except ValueError as e:
        parser.error(str(e))


def expand_flagfiles(argv: list[str]) -> list[str]:
    """``--flagfile=FILE`` arguments replaced by the flags in FILE (one ``--name=value`` per
    line, ``#`` comments; nested flagfiles too), as absl reads them for the training commands.

    Raises:
        ValueError: a flagfile is missing or holds a line that is not a flag.
    """
    out = []
    for arg in argv:
        if not arg.startswith("--flagfile="):
            out.append(arg)
            continue
        path = Path(arg.split("=", 1)[1])
        if not path.is_file():
            raise ValueError(f"--flagfile: {path} does not exist")
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        bad = [ln for ln in lines if not ln.startswith("--")]
        if bad:
            raise ValueError(f"--flagfile: {path}: {bad[0]!r} is not a --flag")
        out.extend(expand_flagfiles(lines))
    return out


def is_uri(path: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (read through TensorFlow's file systems)."""
    return "://" in str(path)


def _gfile():
    import tensorflow as tf

    try:  # registers s3://, az://, hdfs://, http:// (the optional tfio extra)
        import tensorflow_io  # noqa: F401
    except ImportError:  # TensorFlow alone has file:// and gs://
        pass
    return tf.io.gfile


def check_scheme(path: str | os.PathLike) -> None:
    """Raise ValueError naming ``path`` when its URI scheme has no TensorFlow file system here.

    TensorFlow itself reads ``file://`` and ``gs://``; ``s3://``, ``az://``, ``hdfs://`` and
    ``http://`` come with the optional ``tfio`` extra (tensorflow-io, TF 2.16/2.17)."""
    if not is_uri(path):
        return
    scheme = str(path).split("://", 1)[0]
    if scheme not in _gfile().get_registered_schemes():
        raise ValueError(f"{path}: no file system for '{scheme}://' in this TensorFlow (it reads file:// and gs://); "
                         "s3://, az://, hdfs:// and http:// need pip install 'tf_otcycle[tfio]' on TF 2.16/2.17")


def open_binary(path: str | os.PathLike):
    """A binary file object for reading a local path or a URI (``h5py``/``tifffile`` take it)."""
    check_scheme(path)
    return _gfile().GFile(str(path), "rb") if is_uri(path) else open(path, "rb")


def exists(path: str | os.PathLike) -> bool:
    """Whether a local path or a URI exists."""
    return _gfile().exists(str(path)) if is_uri(path) else os.path.exists(path)


def sibling(path: str | os.PathLike, name: str) -> str:
    """The file ``name`` in the folder of ``path`` (a URI stays a URI: ``pathlib`` would fold ``//``)."""
    path = str(path)
    return path[: path.rstrip("/").rfind("/") + 1] + name if is_uri(path) else str(Path(path).with_name(name))


def expand_files(patterns: str | Sequence[str], what: str = "files") -> list[str]:
    """Glob patterns (comma-separated string or list; local paths or URIs) -> sorted unique file list.

    Raises:
        ValueError: a pattern matches nothing, naming ``what`` and the pattern.
    """
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    files: list[str] = []
    for pattern in patterns:
        pattern = pattern.strip() if is_uri(pattern) else os.path.expanduser(pattern.strip())
        check_scheme(pattern)
        matched = sorted(_gfile().glob(pattern) if is_uri(pattern) else glob.glob(pattern))
        if not matched:
            raise ValueError(f"{what}: pattern {pattern!r} matches no file")
        files.extend(m for m in matched if m not in files)
    if not files:
        raise ValueError(f"{what}: no file pattern given")
    return files
