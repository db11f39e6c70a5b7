"""BioImage Model Zoo packages: built from an export and passing bioimageio.core's own model test."""

import os
import tempfile
import zipfile

import keras
import numpy as np
import pytest

from tf_otcycle.export import export_microscopy_generator, export_settings
from tf_otcycle.models import build_unet

# A cache of this process's own: bioimageio unpacks packages into it by content, and two test
# runs on one machine (identical seeded packages) raced in the shared ~/.cache/bioimageio.
os.environ.setdefault("BIOIMAGEIO_CACHE_PATH", tempfile.mkdtemp(prefix="bioimageio-cache-"))
pytest.importorskip("bioimageio.core")
pytest.importorskip("tf2onnx")

from tf_otcycle import model_zoo  # noqa: E402

pytestmark = pytest.mark.slow  # fresh processes or training runs


def _export(root, ndim, tile, overlap):
    keras.utils.set_random_seed(2)
    generator = build_unet(ndim, 1, depth=2, base_filters=2, activation="relu", output_activation="sigmoid",
                           name="generator")
    psf = np.zeros((5,) * ndim, np.float32)
    psf[(2,) * ndim] = 0.5
    psf += 0.5 / psf.size
    task, key = ("microscopy", "voxel_size") if ndim == 3 else ("deblur2d", "pixel_size")
    settings = export_settings(task, tile=tile, overlap=overlap, **{key: [0.2, 0.1, 0.1][3 - ndim:]}, wavelength_nm=500)
    return export_microscopy_generator(generator, psf, root, settings=settings)


@pytest.mark.parametrize("ndim,tile", [(3, 16), (2, 32)])
def test_package_passes_the_model_zoo_test(tmp_path, ndim, tile):
    paths = _export(tmp_path / "export", ndim, tile, tile // 4)
    out = model_zoo.package(paths["keras"], tmp_path / "model.zip")
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        rdf = z.read("rdf.yaml").decode()
    tensors = [line.split("source: ")[1].strip() for line in rdf.splitlines() if "source: test_" in line]
    assert [t.split("_")[:2] for t in tensors] == [["test", "input"], ["test", "output"]]
    weights = [n for n in names if n.endswith(".onnx")]
    assert len(weights) == 1 and weights[0].startswith("generator_") and f"source: {weights[0]}" in rdf
    assert {"rdf.yaml", *tensors, "learned_psf.tif", "README.md", "cover.png"} <= names
    assert f"halo: {tile // 4 // 2}" in rdf and "scale_range" in rdf and ("micrometer" in rdf)


def test_a_given_test_input_is_cropped_and_normalised(tmp_path):
    paths = _export(tmp_path / "export", 3, 16, 4)
    raw = np.random.default_rng(0).integers(100, 4000, (10, 40, 40)).astype(np.uint16)
    model_zoo.package(paths["keras"], tmp_path / "m.zip", test_input=raw)
    with zipfile.ZipFile(tmp_path / "m.zip") as z:
        name = next(n for n in z.namelist() if n.startswith("test_input_"))
        with z.open(name) as f:
            x = np.load(f)
    assert x.shape == (1, 16, 16, 16, 1) and x.min() == 0 and x.max() == 1


def test_models_of_other_tasks_and_bad_outputs_are_refused(tmp_path, capsys):
    paths = _export(tmp_path / "export", 3, 16, 4)
    (tmp_path / "export" / "config.json").write_text('{"task": "mri"}')
    with pytest.raises(model_zoo.ModelZooError, match="'mri' task"):
        model_zoo.package(paths["keras"], tmp_path / "m.zip")
    with pytest.raises(SystemExit):
        model_zoo.main([f"--model={paths['keras']}", f"--output={tmp_path / 'm.tar'}"])
    assert "a package is a .zip file" in capsys.readouterr().err


def test_a_package_whose_outputs_are_not_reproduced_is_not_kept(tmp_path, monkeypatch):
    import tf_otcycle.models

    paths = _export(tmp_path / "export", 3, 16, 4)
    real = tf_otcycle.models.predictor
    monkeypatch.setattr(tf_otcycle.models, "predictor", lambda g: (lambda x: real(g)(x) + 0.5))
    with pytest.raises(model_zoo.ModelZooError, match="model test failed"):
        model_zoo.package(paths["keras"], tmp_path / "m.zip")
    assert not (tmp_path / "m.zip").exists()
