"""Inputs by URI (``file://`` here; ``gs://``/``s3://`` take the same code path through TF's file systems)."""

import numpy as np
import pytest

from tf_otcycle.data import fastmri, images, tiff
from tf_otcycle.data.synthetic import write_fastmri_file, write_microscopy_dataset
from tf_otcycle.io_utils import exists, expand_files, sibling
from tf_otcycle.physics.masks import MaskSpec


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_fastmri_files_by_uri_are_globbed_inspected_read_and_streamed(tmp_path):
    for i in range(2):
        write_fastmri_file(tmp_path / f"f{i}.h5", i, size=16, slices=2)
    uris = expand_files(f"file://{tmp_path}/*.h5", "--clean_files")
    assert uris == [f"file://{tmp_path}/f0.h5", f"file://{tmp_path}/f1.h5"]
    infos = fastmri.inspect_files(uris, 16)
    local = fastmri.inspect_files([str(tmp_path / "f0.h5")], 16)[0]
    assert infos[0].num_slices == local.num_slices == 2
    images_uri, target_uri = fastmri.read_volume(infos[0], 16)
    images_local, target_local = fastmri.read_volume(local, 16)
    np.testing.assert_array_equal(images_uri, images_local)
    np.testing.assert_array_equal(target_uri, target_local)
    sampling = MaskSpec("random", 4, 0.25)
    batch = next(iter(fastmri.unpaired_mri_dataset(infos[:1], infos[1:], 16, sampling, batch_size=2)))
    assert batch["x"].shape == (2, 16, 16, 2)


def test_tiff_stacks_and_images_by_uri(tmp_path):
    write_microscopy_dataset(tmp_path, shape=(8, 16, 16), num_blurred=1, num_sharp=1, num_val=0, num_test=1,
                             test_wavelengths_nm=(500.0,), psf_shape=(5, 5, 5))
    blurred = expand_files(f"file://{tmp_path}/test_500nm/*_blurred.tif")[0]
    gt = tiff.gt_path_for(blurred)
    assert gt.startswith("file://") and gt.endswith("_gt.tif") and exists(gt)
    np.testing.assert_array_equal(tiff.read_stack(gt), tiff.read_stack(gt[len("file://"):]))
    images.write_image(tmp_path / "img.png", np.arange(256, dtype=np.uint8).reshape(16, 16))
    np.testing.assert_array_equal(images.read_image(f"file://{tmp_path}/img.png"),
                                  images.read_image(tmp_path / "img.png"))
    assert sibling("gs://bucket/a/b_blurred.tif", "b_gt.tif") == "gs://bucket/a/b_gt.tif"
    assert not exists(f"file://{tmp_path}/missing.tif")


def test_a_scheme_without_a_file_system_is_named(tmp_path):
    import tensorflow as tf

    if "s3" in tf.io.gfile.get_registered_schemes():
        pytest.skip("tensorflow-io registers s3:// here")
    with pytest.raises(ValueError, match=r"s3://bucket/\*.h5: no file system for 's3://'.*tfio"):
        expand_files("s3://bucket/*.h5", "--clean_files")
