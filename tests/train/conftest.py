"""Fixtures shared by the entry-point tests."""

import pytest

from tf_otcycle.data.synthetic import write_mri_dataset


@pytest.fixture(scope="module")
def mri_data(tmp_path_factory):
    """Tiny synthetic fastMRI files: 2 clean, 2 measured, 1 validation and 1 test subject, 32x32."""
    root = tmp_path_factory.mktemp("mri")
    write_mri_dataset(root, size=32, slices=2, num_clean=2, num_measured=2, num_val=1, num_test=1)
    return root
