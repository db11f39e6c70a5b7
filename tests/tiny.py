"""Tiny configurations and batches of the tasks, shared by tests that run in subprocesses."""

import numpy as np


def tiny_batch(task_name: str) -> dict:
    """An unpaired batch of 2 for ``task_name``: 16x16 MRI images with masks, or 16^3 volumes."""
    rng = np.random.default_rng(0)
    if task_name == "mri":
        x = rng.standard_normal((2, 16, 16, 2)).astype("float32")
        masks = (rng.random((2, 16)) < 0.5).astype("float32")
        return {"x": x, "y": x[::-1] * masks[:, None, :, None], "x_params": {"mask": masks},
                "y_params": {"mask": masks[::-1]}}
    return {"x": rng.random((2, 16, 16, 16, 1)).astype("float32"),
            "y": rng.random((2, 16, 16, 16, 1)).astype("float32")}


def tiny_sizes(task_name: str) -> dict:
    """The size flags of :func:`tiny_batch`'s samples for ``task_name`` (each task has its own)."""
    return {"crop_size": 16} if task_name == "mri" else {"patch_size": 16, "psf_size": 5}
