from pathlib import Path

import numpy as np
import pytest
import tifffile

from tf_otcycle.data import microscopy_sim, tiff
from tf_otcycle.data.synthetic import write_microscopy_dataset
from tf_otcycle.physics import born_wolf_psf


def test_blurred_volume_is_the_psf_convolution_before_noise():
    sim = microscopy_sim.simulate((12, 24, 24), seed=3, psf_shape=(9, 9, 9))
    psf = born_wolf_psf((9, 9, 9), (0.2, 0.1, 0.1), 0.5)
    ref = np.zeros_like(sim["gt"], np.float64)
    gt = sim["gt"].astype(np.float64)
    # Direct 'same' convolution at a few voxels.
    pad = np.pad(gt, 4)
    for z, y, x in [(6, 12, 12), (3, 5, 20), (11, 23, 0)]:
        ref[z, y, x] = np.sum(pad[z : z + 9, y : y + 9, x : x + 9] * psf[::-1, ::-1, ::-1])
        np.testing.assert_allclose(sim["blurred_clean"][z, y, x], ref[z, y, x], rtol=1e-3, atol=1e-3)
    assert sim["gt"].max() > 0 and np.isclose(np.percentile(sim["blurred_clean"], 99.9), 255, rtol=1e-3)


def test_blur_keeps_a_point_in_place_with_an_even_psf_and_matches_the_layer():
    from tf_otcycle.layers import PSFConv3D

    rng = np.random.default_rng(5)
    psf = rng.random((8, 6, 10)).astype(np.float32)
    psf /= psf.sum()
    x = np.zeros((20, 21, 22), np.float32)
    x[9, 10, 11] = 1.0  # the PSF's optical axis is voxel (4, 3, 5)
    b = microscopy_sim.blur(x, psf)
    np.testing.assert_allclose(b[5:13, 7:13, 6:16], psf, atol=1e-7)
    assert np.isclose(b.sum(), 1.0, rtol=1e-5)
    x[3, 17, 4] = 0.5  # near the border: zero boundary in both
    layer = PSFConv3D(psf.shape, "fft")
    layer.set_psf(psf)
    np.testing.assert_allclose(layer(x[None, ..., None]).numpy()[0, ..., 0], microscopy_sim.blur(x, psf), atol=1e-6)


@pytest.mark.parametrize("gain,sigma", [(7.0, 3.0), (2.0, 0.0)])
def test_noise_statistics_match_the_parameters(gain, sigma):
    rng = np.random.RandomState(0)
    level = 100.0
    y = microscopy_sim.add_noise(np.full((40, 64, 64), level, np.float32), rng, gain, sigma)
    assert abs(y.mean() - level) < 0.5
    np.testing.assert_allclose(y.var(), gain * level + sigma**2, rtol=0.03)


def test_synthetic_folders(tmp_path):
    written = write_microscopy_dataset(tmp_path, shape=(8, 24, 24), num_blurred=1, num_sharp=1, num_val=1,
                                       num_test=1, psf_shape=(8, 8, 8))
    assert set(written) == {"blurred", "sharp", "val", "test_400nm", "test_500nm", "test_600nm"}
    blurred = written["test_400nm"][0]
    assert tifffile.imread(blurred).dtype == np.uint16
    assert Path(tiff.gt_path_for(blurred)).exists()
    # Same sample at three wavelengths: same ground truth, different blur.
    gts = [tifffile.imread(tiff.gt_path_for(written[f"test_{w}nm"][0])) for w in (400, 500, 600)]
    np.testing.assert_allclose(gts[0] / gts[0].max(), gts[2] / gts[2].max(), atol=1e-6)
    assert (tmp_path / "psf_500nm.tif").exists()


def test_read_normalise_reflect_and_patches(tmp_path):
    vol = (np.random.default_rng(0).random((5, 20, 20)) * 1000).astype(np.uint16)
    tiff.write_stack(tmp_path / "a.tif", vol)
    back = tiff.read_stack(tmp_path / "a.tif")
    np.testing.assert_array_equal(back, vol)
    (v,) = tiff.load_domain([str(tmp_path / "a.tif")], patch_size=16)
    assert v.shape == (16, 20, 20) and v.min() == 0 and v.max() == 1
    np.testing.assert_array_equal(v[5:10], tiff.normalize(vol))  # reflected around the original
    rng = np.random.RandomState(0)
    for _ in range(5):
        p = tiff.random_patch(v, 16, rng)
        assert p.shape == (16, 16, 16) and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    ds = tiff.unpaired_volume_dataset([v], [v], 16, batch_size=2, seed=1)
    batch = next(iter(ds))
    assert batch["x"].shape == (2, 16, 16, 16, 1) and batch["y"].shape == (2, 16, 16, 16, 1)


def test_bad_stacks_raise_naming_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "time.tif", np.zeros((2, 3, 20, 20), np.uint16), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(tiff.TiffFormatError, match="time.tif.*axes TZYX"):
        tiff.read_stack(tmp_path / "time.tif")
    nan = np.ones((4, 20, 20), np.float32)
    nan[1, 2, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    with pytest.raises(tiff.TiffFormatError, match="nan.tif.*NaN"):
        tiff.read_stack(tmp_path / "nan.tif")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    with pytest.raises(tiff.TiffFormatError, match="junk.tif.*not a readable TIFF"):
        tiff.read_stack(tmp_path / "junk.tif")
    tifffile.imwrite(tmp_path / "a8.tif", np.zeros((4, 32, 32), np.uint8))
    tifffile.imwrite(tmp_path / "a16.tif", np.zeros((4, 32, 32), np.uint16))
    with pytest.raises(tiff.TiffFormatError, match="a16.tif.*dtype uint16 differs"):
        tiff.load_domain([str(tmp_path / "a8.tif"), str(tmp_path / "a16.tif")], patch_size=16)
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((4, 12, 12), np.uint8))
    with pytest.raises(tiff.TiffFormatError, match="small.tif.*smaller than the patch/kernel"):
        tiff.load_domain([str(tmp_path / "small.tif")], patch_size=8, min_size=20)
    with pytest.raises(tiff.TiffFormatError, match="no file"):
        tiff.load_domain([], patch_size=8, what="--blurred_files")
    with pytest.raises(tiff.TiffFormatError, match="NAME_blurred"):
        tiff.gt_path_for(tmp_path / "x.tif")


def test_voxel_size_round_trips_through_imagej_metadata(tmp_path):
    tiff.write_stack(tmp_path / "v.tif", np.zeros((4, 8, 8), np.uint16), voxel_size=(0.3, 0.12, 0.1))
    assert tiff.read_voxel_size(tmp_path / "v.tif") == pytest.approx((0.3, 0.12, 0.1))
    tiff.write_stack(tmp_path / "plain.tif", np.zeros((4, 8, 8), np.uint16))
    assert tiff.read_voxel_size(tmp_path / "plain.tif") is None
    assert tiff.read_stack(tmp_path / "v.tif").shape == (4, 8, 8)


def test_axes_channels_planes_and_ome_metadata(tmp_path):
    """Stacks are read by their own axes: a 2-D plane is a stack of depth 1, a ZCYX ImageJ
    hyperstack needs --channel, an OME-TIFF's physical sizes are its voxel size."""
    rng = np.random.default_rng(0)
    plane = rng.integers(0, 999, (20, 24)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "plane.tif", plane)
    np.testing.assert_array_equal(tiff.read_stack(tmp_path / "plane.tif"), plane[None])
    stack = rng.integers(0, 999, (5, 3, 20, 24)).astype(np.uint16)  # z, c, y, x
    tifffile.imwrite(tmp_path / "zcyx.tif", stack, imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(tiff.TiffFormatError, match="zcyx.tif: a multi-channel stack .*3 channels.*--channel"):
        tiff.read_stack(tmp_path / "zcyx.tif")
    np.testing.assert_array_equal(tiff.read_stack(tmp_path / "zcyx.tif", channel=2), stack[:, 2])
    with pytest.raises(tiff.TiffFormatError, match="--channel 3 is out of range"):
        tiff.read_stack(tmp_path / "zcyx.tif", channel=3)
    single = rng.random((4, 1, 16, 16)).astype(np.float32)  # one channel: --channel is ignored
    tifffile.imwrite(tmp_path / "one.tif", single, imagej=True, metadata={"axes": "ZCYX"})
    assert tiff.read_stack(tmp_path / "one.tif", channel=1).shape == (4, 16, 16)
    volume = rng.random((6, 16, 16)).astype(np.float32)
    tifffile.imwrite(tmp_path / "v.ome.tif", volume, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeZ": 250, "PhysicalSizeZUnit": "nm", "PhysicalSizeY": 0.11,
        "PhysicalSizeYUnit": "\u00b5m", "PhysicalSizeX": 0.1, "PhysicalSizeXUnit": "\u00b5m"})
    assert tiff.read_voxel_size(tmp_path / "v.ome.tif") == pytest.approx((0.25, 0.11, 0.1))
    np.testing.assert_array_equal(tiff.read_stack(tmp_path / "v.ome.tif"), volume)


def _is_rigid_crop(patch: np.ndarray, volume: np.ndarray) -> bool:
    """Whether ``patch`` is a crop of ``volume`` up to lateral 90-degree rotations and flips."""
    views = []
    for k in range(4):
        for flips in range(8):
            v = np.rot90(volume, k, axes=(-2, -1))
            for axis in range(3):
                if flips >> axis & 1:
                    v = np.flip(v, axis)
            views.append(v)
    for v in views:
        windows = np.lib.stride_tricks.sliding_window_view(v, patch.shape)
        if np.any(np.all(np.isclose(windows, patch, atol=1e-6), axis=(-3, -2, -1))):
            return True
    return False


@pytest.mark.parametrize("scale_augment", tiff.SCALE_AUGMENT)
def test_scale_augment_zooms_only_the_named_domains(scale_augment):
    """Measurements cut with --scale_augment=sharp|none are exact rotated/flipped crops (their
    PSF and noise unchanged); the zoomed domains are not (a zoom interpolates)."""
    v = np.random.default_rng(0).random((12, 12, 12)).astype(np.float32)
    ds = tiff.unpaired_volume_dataset([v], [v], 8, batch_size=1, seed=3, scale_augment=scale_augment)
    batches = list(ds.take(6).as_numpy_iterator())
    rigid = {key: all(_is_rigid_crop(b[key][0, ..., 0], v) for b in batches) for key in ("x", "y")}
    assert rigid == {"x": scale_augment == "none", "y": scale_augment != "both"}


def test_scale_augment_is_checked():
    with pytest.raises(ValueError, match="scale_augment"):
        tiff.unpaired_volume_dataset([np.zeros((8, 8, 8), np.float32)], [np.zeros((8, 8, 8), np.float32)], 8,
                                     scale_augment="blurred")
