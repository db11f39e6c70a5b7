"""``--mixed_precision``: a few steps under a mixed policy on CPU are finite and close to float32
(mixed_float16 through the loss-scaling optimizers); the physics and G's output stay float32."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # fresh processes or training runs

ROOT = Path(__file__).resolve().parents[1]  # the scripts import tests.tiny
SCRIPT = textwrap.dedent("""
    import sys
    import keras
    import numpy as np
    import tensorflow as tf
    from tf_otcycle.tasks import get
    from tests.tiny import tiny_batch, tiny_sizes
    from tf_otcycle.tasks.base import set_precision

    task = get(sys.argv[1])
    config = task.default_config(base_filters=4, depth=1, critic_filters=4, critic_layers=1, n_critic=1, batch_size=2,
                                 decay_epoch=1, epochs=1, learning_rate=1e-3, **tiny_sizes(task.name))
    batch = tiny_batch(task.name)

    def run(policy):
        set_precision(config.replace(mixed_precision=policy))
        keras.utils.set_random_seed(3)
        model = task.build_model(config.replace(mixed_precision=policy), None, 1)
        history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=3, epochs=1, verbose=0)
        out = model.generator(batch["y"])
        assert out.dtype == tf.float32, out.dtype
        params = (batch["x_params"],) if "x_params" in batch else ()
        assert model.forward_op(batch["x"], *params).dtype == tf.float32
        if policy != "none":
            dtype = model.generator.layers[1].compute_dtype
            assert dtype == policy.split("_")[1], dtype
        return {k: float(np.ravel(v)[-1]) for k, v in history.history.items()}

    full, mixed = run("none"), run(sys.argv[2])
    for name in ("g_loss", "cycle_x", "cycle_y"):
        assert np.isfinite(mixed[name]), (name, mixed[name])
        assert abs(mixed[name] - full[name]) <= 0.1 * abs(full[name]) + 1e-3, (name, mixed[name], full[name])
    print("ok", full["g_loss"], mixed["g_loss"])
""")


# mixed_float16 with loss scaling on the 2-D task (TF's CPU kernels lack float16 MaxPool3D: 3-D float16 is GPU-only)
@pytest.mark.parametrize("task,policy",
                         [("mri", "mixed_bfloat16"), ("microscopy", "mixed_bfloat16"), ("mri", "mixed_float16")])
def test_mixed_precision_steps_are_finite_and_close_to_float32(task, policy):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, task, policy], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
