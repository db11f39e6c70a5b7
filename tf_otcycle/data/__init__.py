"""Data: readers for fastMRI HDF5 and TIFF stacks, unpaired tf.data pipelines, simulators."""
