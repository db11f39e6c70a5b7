"""One step on 2 replicas x batch 1 equals one step on 1 replica x batch 2 (losses over the global
batch, n_critic critic updates, the gradient penalty with the same interpolation weights)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # fresh processes or training runs

ROOT = Path(__file__).resolve().parents[1]  # the scripts import tests.tiny
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tf_otcycle.tasks import get
    from tests.tiny import tiny_batch, tiny_sizes

    task = get(sys.argv[1])
    config = task.default_config(base_filters=2, depth=1, critic_filters=2, critic_layers=1, n_critic=2, batch_size=2,
                                 learning_rate=1e-2, gan_warmup_steps=0, cycle_warmup_steps=0, decay_epoch=1,
                                 epochs=1, **tiny_sizes(task.name))
    batch = tiny_batch(task.name)

    def one_step(devices):
        keras.utils.set_random_seed(1)
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            model = task.build_model(config, None, 1)
            # SGD: Adam's first step (lr * g / (|g| + eps)) would magnify rounding in near-zero gradients.
            model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
        model._alpha = lambda t: 0.5 * tf.ones(tf.concat([tf.shape(t)[:1], tf.ones([tf.rank(t) - 1], tf.int32)], 0))
        model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=1, epochs=1, verbose=0)
        return [v.numpy() for v in model.generator_variables + model.critic_variables]

    one, two = one_step(["/cpu:0"]), one_step(["/cpu:0", "/cpu:1"])
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(one, two))
    print("max difference", worst)
    assert worst < 1e-5, worst
""")


@pytest.mark.parametrize("task", ["mri", "microscopy"])  # a fixed and a learned forward operator
def test_two_replicas_match_one_replica_with_the_global_batch(task):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, task], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
