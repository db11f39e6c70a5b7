"""Tasks: one module per inverse problem, above the physics, networks and training model.

``get(name)`` returns a task (:class:`tf_otcycle.tasks.base.Task`); ``NAMES`` lists them.
A new application is a new module here plus an entry point of a few lines in ``train/``.
"""

from __future__ import annotations

import importlib

from tf_otcycle.tasks.base import Task

NAMES = ("mri", "microscopy", "deblur2d")


def get(name: str) -> Task:
    """The task called ``name`` (its module is imported on first use)."""
    if name not in NAMES:
        raise ValueError(f"task: expected one of {NAMES}, got {name!r}")
    return importlib.import_module(f"tf_otcycle.tasks.{name}").TASK


__all__ = ["NAMES", "Task", "get"]
