"""The optional tensorflow-io extra: its HDF5 dataset reads what h5py reads.

Skipped where the extra is not installed (the default stack); the ``tfio`` CI lane
(``make test-tfio``) installs it on the newest TensorFlow it supports and runs this file.
tensorflow-io 0.37.1 installs on TF >= 2.18 but its kernels then fail with
``undefined symbol``; these tests fail loudly on such a combination.
"""

import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.data import fastmri
from tf_otcycle.data.synthetic import write_fastmri_file

if os.environ.get("TF_OTCYCLE_REQUIRE_TFIO"):  # the tfio CI lane: a missing extra is a failure
    import tensorflow_io as tfio
else:
    tfio = pytest.importorskip("tensorflow_io")
pytestmark = pytest.mark.tfio


def test_hdf5_iodataset_reads_complex_kspace(tmp_path):
    path = str(tmp_path / "k.h5")
    kspace = (np.arange(24).reshape(2, 3, 4) * (1 + 2j)).astype(np.complex64)
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
    ds = tfio.IODataset.from_hdf5(path, dataset="/kspace", spec=tf.TensorSpec([None, None], tf.complex64))
    got = np.stack([s.numpy() for s in ds])
    np.testing.assert_array_equal(got, kspace)


def test_tensorflow_io_pipeline_equals_h5py(tmp_path):
    paths = [tmp_path / f"s{i}.h5" for i in range(2)] + [tmp_path / "multi.h5"]
    for i, p in enumerate(paths):
        write_fastmri_file(p, i, size=16, slices=2, coils=4 if p.name == "multi.h5" else 0)
    infos = fastmri.inspect_files(map(str, paths), 16)
    ds = {r: fastmri.image_dataset(infos, 16, reader=r) for r in fastmri.HDF5_READERS}
    for a, b in zip(ds["h5py"], ds["tensorflow_io"]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
