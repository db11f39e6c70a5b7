"""The repository's scripts (benchmarks/, train/) loaded as modules, to test their functions."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str) -> ModuleType:
    """Execute ``ROOT/relative_path`` as a module called ``name`` and return it."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
