"""OME-Zarr and OME-TIFF read lazily, OME-Zarr written block by block, out-of-core tiling."""

import json

import numpy as np
import pytest
import tifffile

from tf_otcycle.data import ome_zarr
from tf_otcycle.tiling import predict_blocks, predict_tiled

zarr = pytest.importorskip("zarr")


def test_written_image_is_ngff_and_reads_back_with_its_voxel_size(tmp_path):
    data = np.random.default_rng(0).random((10, 20, 30)).astype(np.float32)
    with ome_zarr.writer(tmp_path / "a.zarr", data.shape, (0.3, 0.1, 0.1), chunks=(4, 8, 8)) as sink:
        for window in ome_zarr.blocks(data.shape, (4, 8, 8)):
            sink[window] = data[window]
    attrs = ome_zarr.read_attributes(tmp_path / "a.zarr")["ome"]
    assert attrs["version"] == "0.5" and [a["name"] for a in attrs["multiscales"][0]["axes"]] == ["z", "y", "x"]
    stack = ome_zarr.open_stack(tmp_path / "a.zarr")
    assert stack.shape == (10, 20, 30) and stack.voxel_size == (0.3, 0.1, 0.1)
    np.testing.assert_array_equal(stack[2:7, 3:19, 0:30], data[2:7, 3:19])
    assert stack.min_max(block=7) == (float(data.min()), float(data.max()))


def test_an_interrupted_write_leaves_no_image(tmp_path):
    with pytest.raises(RuntimeError), ome_zarr.writer(tmp_path / "b.zarr", (4, 4, 4), None):
        raise RuntimeError("stopped")
    assert not (tmp_path / "b.zarr").exists() and list(tmp_path.iterdir()) == []


def test_ngff_04_with_channels_and_nanometres(tmp_path):
    root = zarr.open_group(str(tmp_path / "c.zarr"), mode="w", zarr_format=2)
    data = np.random.default_rng(1).random((1, 2, 6, 8, 10)).astype(np.float32)  # t c z y x
    root.create_array("s0", shape=data.shape, chunks=(1, 1, 6, 8, 10), dtype="f4")[...] = data
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 500, 100, 100]}]}]}]
    with pytest.raises(ome_zarr.OmeZarrFormatError, match="c.zarr: 2 channels; choose one with --channel"):
        ome_zarr.open_stack(tmp_path / "c.zarr")
    stack = ome_zarr.open_stack(tmp_path / "c.zarr", channel=1)
    assert stack.shape == (6, 8, 10) and np.allclose(stack.voxel_size, (0.5, 0.1, 0.1))
    np.testing.assert_array_equal(stack[0:6, 0:8, 0:10], data[0, 1])


def test_ome_tiff_is_read_lazily_and_bad_files_are_named(tmp_path):
    data = np.random.default_rng(2).random((5, 2, 12, 14)).astype(np.float32)
    tifffile.imwrite(tmp_path / "s.ome.tif", data, ome=True,
                     metadata={"axes": "ZCYX", "PhysicalSizeZ": 0.4, "PhysicalSizeY": 0.1, "PhysicalSizeX": 0.1})
    stack = ome_zarr.open_stack(tmp_path / "s.ome.tif", channel=0)
    assert stack.shape == (5, 12, 14) and np.allclose(stack.voxel_size, (0.4, 0.1, 0.1))
    np.testing.assert_array_equal(stack[1:4, 2:9, 0:14], data[1:4, 0, 2:9])
    (tmp_path / "bad.zarr").mkdir()
    (tmp_path / "bad.zarr" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group",
                                                                  "attributes": {}}))
    with pytest.raises(ome_zarr.OmeZarrFormatError, match="bad.zarr: no OME-NGFF multiscales"):
        ome_zarr.open_stack(tmp_path / "bad.zarr")


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
@pytest.mark.parametrize("shape,block", [((20, 37, 29), (9, 16, 11)), ((5, 40, 33), 20), ((30, 30, 30), None)])
def test_blocks_give_the_whole_volume_result(shape, block):
    """Groups of the whole volume's tiles, accumulated: the one-pass result, also for a network
    whose output depends on the whole tile (instance normalisation) and a reflected thin axis."""
    import keras

    from tf_otcycle.models import build_unet

    keras.utils.set_random_seed(5)
    net = build_unet(3, 1, depth=1, base_filters=2, activation="relu", output_activation="sigmoid")
    fn = lambda b: net(b, training=False).numpy()  # noqa: E731
    volume = np.random.default_rng(3).random(shape).astype(np.float32)
    whole = predict_tiled(fn, volume, 16, 4, batch_size=2)
    out = np.zeros(volume.shape, np.float32)

    def add(window, values):
        out[window] += values

    predict_blocks(fn, lambda w: volume[w], add, volume.shape, tile=16, overlap=4, block=block, batch_size=3)
    np.testing.assert_allclose(out, whole, atol=1e-6)


@pytest.mark.slow
def test_deconvolve_command_ome_zarr_in_and_out_keeps_the_voxel_size(tmp_path, capsys):
    """python -m tf_otcycle.deconvolve on an OME-Zarr image: OME-Zarr out, the TIFF path's result."""
    import keras

    from tf_otcycle import deconvolve
    from tf_otcycle.data import tiff
    from tf_otcycle.export import export_microscopy_generator, export_settings
    from tf_otcycle.models import build_unet

    keras.utils.set_random_seed(0)
    generator = build_unet(3, 1, depth=1, base_filters=2, activation="relu", output_activation="sigmoid",
                           name="generator")
    paths = export_microscopy_generator(generator, np.full((3, 3, 3), 1 / 27, np.float32), tmp_path / "export",
                                        settings=export_settings("microscopy", tile=16, overlap=4))
    data = (np.random.default_rng(4).random((12, 40, 36)) * 1000).astype(np.float32)
    with ome_zarr.writer(tmp_path / "in.zarr", data.shape, (0.25, 0.1, 0.1), chunks=(6, 16, 16)) as sink:
        sink[...] = data
    tiff.write_stack(tmp_path / "in.tif", data, (0.25, 0.1, 0.1))
    model = f"--model={paths['keras']}"
    assert deconvolve.main([model, f"--input={tmp_path / 'in.zarr'}", f"--output={tmp_path / 'out.zarr'}",
                            "--block=20"]) == 0
    assert deconvolve.main([model, f"--input={tmp_path / 'in.tif'}", f"--output={tmp_path / 'out.tif'}"]) == 0
    out = ome_zarr.open_stack(tmp_path / "out.zarr")
    assert out.shape == data.shape and out.voxel_size == (0.25, 0.1, 0.1)
    whole = tiff.read_stack(tmp_path / "out.tif")
    np.testing.assert_allclose(out[0:12, 0:40, 0:36], whole, atol=1e-6)
    # the OME-TIFF input streams to OME-Zarr too; an existing output is kept without --overwrite
    assert deconvolve.main([model, f"--input={tmp_path / 'in.tif'}", f"--output={tmp_path / 'tif.zarr'}"]) == 0
    np.testing.assert_allclose(ome_zarr.open_stack(tmp_path / "tif.zarr")[0:12, 0:40, 0:36], whole, atol=1e-6)
    with pytest.raises(SystemExit):
        deconvolve.main([model, f"--input={tmp_path / 'in.zarr'}", f"--output={tmp_path / 'out.zarr'}"])
    assert "out.zarr exists" in capsys.readouterr().err
