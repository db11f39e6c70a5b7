import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.batches import params_of, unwrap
from tf_otcycle.distributed import global_mean, step_logs


def test_unwrap_accepts_a_dict_or_a_one_tuple_and_names_missing_keys():
    batch = {"x": 1, "y": 2}
    assert unwrap(batch, ("x", "y")) is batch
    assert unwrap((batch,), ("y",)) is batch
    with pytest.raises(ValueError, match=r"\['x', 'y'\].*got \['y'\]"):
        unwrap({"y": 2}, ("x", "y"))
    with pytest.raises(ValueError, match="got list"):
        unwrap([1, 2], ("y",))


def test_params_of_reads_params_then_the_older_mask_key():
    mask = np.ones((2, 8), np.float32)
    assert params_of({"y_params": {"mask": mask}}, "y")["mask"] is mask
    assert params_of({"x_mask": mask}, "x")["mask"] is mask
    assert params_of({"y_mask": mask}, "x") is None


def test_global_mean_divides_by_the_global_batch(monkeypatch):
    per_sample = tf.constant([1.0, 2.0, 3.0, 6.0])
    assert float(global_mean(per_sample)) == pytest.approx(3.0)  # one replica: the mean

    class TwoReplicas:
        num_replicas_in_sync = 2

    monkeypatch.setattr(tf.distribute, "get_strategy", lambda: TwoReplicas())
    assert float(global_mean(per_sample)) == pytest.approx(1.5)  # this replica's share of a batch of 8


def test_step_logs_are_unchanged_outside_multi_worker_training():
    logs = {"loss": tf.constant(1.5)}
    assert step_logs(logs)["loss"].shape == ()
