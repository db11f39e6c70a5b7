"""``--strategy=multi_worker``: two worker processes on loopback ports, as a cluster would run them."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tf_otcycle.data.synthetic import write_mri_dataset

ROOT = Path(__file__).resolve().parents[2]


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# Two TensorFlow workers on 2 shared cores can starve the coordination service's heartbeat
# thread (TF's 10 s timeout): "Task /job:worker/replica:0/task:0 heartbeat timeout", then both
# abort. Measured once in 374 tests of a full `make test`; a cluster with a core per worker does
# not see it. Such a run is repeated once; any other failure fails at once.
HEARTBEAT_FAULT = "heartbeat timeout"


def _run_cluster(data, run_dir, epochs, tries=2):
    for attempt in range(tries):
        outs, codes = _launch_cluster(data, run_dir, epochs)
        errors = [err for code, (_, err) in zip(codes, outs) if code != 0]
        if not errors:
            return [o for o, _ in outs]
        if attempt + 1 == tries or not any(HEARTBEAT_FAULT in e for e in errors):
            raise AssertionError(errors[0][-4000:])


def _launch_cluster(data, run_dir, epochs):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    flags = [f"--run_dir={run_dir}", f"--clean_files={data}/clean/*.h5", f"--measured_files={data}/measured/*.h5",
             f"--test_files={data}/test/*.h5", "--crop_size=16", "--center_fraction=0.125", f"--epochs={epochs}",
             "--steps_per_epoch=1", "--base_filters=2", "--depth=1", "--critic_filters=2", "--critic_layers=1",
             "--n_critic=1", "--num_panels=0", "--export=false", "--strategy=multi_worker", "--batch_size=2"]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "train" / "mri.py"), *flags], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    return outs, [p.returncode for p in procs]


def test_two_workers_train_only_the_chief_writes_and_a_restart_resumes(tmp_path):
    data = tmp_path / "data"
    write_mri_dataset(data, size=16, slices=2, num_clean=2, num_measured=2, num_val=0, num_test=1)
    run_dir = tmp_path / "run"
    chief, other = _run_cluster(data, run_dir, epochs=1)
    assert "Test metrics" in chief and "Test metrics" not in other  # only the chief evaluates
    assert (run_dir / "eval" / "metrics.csv").exists() and (run_dir / "checkpoints" / "checkpoint").exists()
    assert len(list((run_dir / "logs").rglob("events.out.tfevents*"))) == 1  # one writer: the chief
    chief, _ = _run_cluster(data, run_dir, epochs=2)  # both restarted: they resume from the chief's checkpoint
    assert "Resumed from step 1" in chief
