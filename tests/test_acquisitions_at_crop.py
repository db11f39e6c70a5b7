"""benchmarks/acquisitions_at_crop.py: acquisitions as wide as the crop, whose masks are exact on it."""

import numpy as np
import pytest
import tensorflow as tf

from tests.scripts import load_script
from tf_otcycle.data import fastmri
from tf_otcycle.data.synthetic import write_fastmri_file
from tf_otcycle.physics.masks import MaskSpec, crop_mask

script = load_script("benchmarks/acquisitions_at_crop.py", "acquisitions_at_crop")


def test_an_acquisition_as_wide_as_the_crop_is_h_of_the_crop_under_its_own_mask(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for split in ("clean", "measured", "val", "test"):
        (src / split).mkdir(parents=True)
    write_fastmri_file(src / "measured" / "a.h5", 1, size=16, slices=2)
    script.main(["--src", str(src), "--out", str(out), "--crop_size", "16", "--acceleration", "4",
                 "--center_fraction", "0.125"])
    assert all((out / split).is_dir() for split in ("clean", "val", "test"))
    full, acquired = (fastmri.inspect_file(d / "measured" / "a.h5", 16) for d in (src, out))
    assert full.kspace_shape[-1] > 16 and acquired.kspace_shape == full.kspace_shape[:2] + (16,)
    mask = fastmri.file_mask(acquired)
    np.testing.assert_array_equal(crop_mask(mask, 16), mask)  # exact on the crop
    assert 0 < mask.sum() < 16
    clean_crop, _ = fastmri.read_volume(full, 16)
    zero_filled, target = fastmri.read_volume(acquired, 16)
    assert target is None  # the challenge layout: no reconstruction
    want = fastmri.undersample(tf.constant(clean_crop), mask).numpy()  # H_m of the crop, in the same units
    np.testing.assert_allclose(zero_filled, want, atol=1e-4 * np.abs(want).max())


def test_an_acquisition_is_refused_as_a_source(tmp_path):
    path = tmp_path / "acq.h5"
    write_fastmri_file(path, 1, size=16, slices=1, acquisition=MaskSpec("random", 4, 0.125))
    with pytest.raises(fastmri.FastMRIFormatError, match="acq.h5.*fully sampled"):
        script.rewrite(path, tmp_path / "out.h5", 16, MaskSpec("random", 4, 0.125))
