"""Guards the TF / tensorflow-io combination: a compiled tensorflow-io op must load and work.

tensorflow-io 0.37.1 installs on TF >= 2.18 but its kernels then fail with
``undefined symbol``; this test fails loudly on such a combination.
"""

import h5py
import numpy as np
import tensorflow as tf
import tensorflow_io as tfio


def test_hdf5_iodataset_reads_complex_kspace(tmp_path):
    path = str(tmp_path / "k.h5")
    kspace = (np.arange(24).reshape(2, 3, 4) * (1 + 2j)).astype(np.complex64)
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
    ds = tfio.IODataset.from_hdf5(path, dataset="/kspace", spec=tf.TensorSpec([None, None], tf.complex64))
    got = np.stack([s.numpy() for s in ds])
    np.testing.assert_array_equal(got, kspace)
