"""Imports point down (physics -> layers / networks -> training models -> tasks -> the run flow
-> entry points): a module never imports from a layer above its own. Read from the source, so a
new module outside the map below fails here until it is given its layer."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tf_otcycle"

# Layer of each module (longest matching prefix); a module may import from its own layer and below.
LAYERS = {
    "_startup": 0, "io_utils": 0, "batches": 0, "distributed": 0, "losses": 0, "schedules": 0, "tiling": 0,
    "figures": 0,
    "physics": 1,
    "metrics": 2, "classical": 2, "data": 2, "layers": 2, "models": 2,
    "model": 3, "self_supervised": 3, "baselines": 3, "training": 3, "evaluation": 3, "export": 3,
    "tasks": 4,
    "run": 5, "comparison": 5,
    "reconstruct": 6, "deconvolve": 6, "model_zoo": 6,
}


def layer(module: str) -> int:
    """The layer of ``tf_otcycle.<module>`` by its longest prefix in :data:`LAYERS`."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise KeyError(module)


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name:  # the package root imports everything to register the custom objects
            yield name, path


def imported(path: Path) -> set[str]:
    """The ``tf_otcycle`` submodules ``path`` imports (``from tf_otcycle.x import y`` -> ``x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n.removeprefix("tf_otcycle.") for n in names if n.startswith("tf_otcycle.")}
    return found


@pytest.mark.parametrize("name,path", list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down(name, path):
    own = layer(name)
    upward = sorted(m for m in imported(path) if layer(m) > own)
    assert not upward, f"tf_otcycle.{name} (layer {own}) imports from above: {upward}"


def test_a_module_importing_upward_is_caught(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from tf_otcycle.tasks.mri import TASK\n")
    assert layer("physics.fft") < max(layer(m) for m in imported(bad))
