"""Exports: SavedModels served without our package, .keras reuse, inference commands."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.data.synthetic import write_fastmri_file
from tf_otcycle.export import (
    export_microscopy_generator,
    export_mri_generator,
    next_version,
    reconstruct_kspace,
    rest_request,
)
from tf_otcycle.models import build_unet

pytestmark = pytest.mark.slow  # fresh processes or training runs

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
ROOT = Path(__file__).resolve().parents[1]


def fresh_python(code: str, cwd) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    keras.utils.set_random_seed(1)
    mri = build_unet(2, 2, depth=1, base_filters=2, residual=True, name="generator")
    mic = build_unet(3, 1, depth=1, base_filters=2, activation="relu", output_activation="sigmoid", name="generator")
    mri_paths = export_mri_generator(mri, root / "mri")
    mic_paths = export_microscopy_generator(mic, np.full((4, 4, 4), 1 / 64, np.float32), root / "mic")
    rng = np.random.default_rng(0)
    image = rng.standard_normal((2, 16, 16, 2)).astype(np.float32)
    kspace = (rng.standard_normal((2, 16, 16)) + 1j * rng.standard_normal((2, 16, 16))).astype(np.complex64)
    mask = np.zeros((2, 16), np.float32)
    mask[:, ::3] = 1
    dc = np.array([True, False])
    blurred = rng.random((1, 8, 8, 8, 1)).astype(np.float32)
    recon = mri(image).numpy()
    ks = reconstruct_kspace(mri, kspace, mask, dc)
    np.savez(root / "io.npz", image=image, kspace=kspace, mask=mask, dc=dc, blurred=blurred, recon=recon,
             ks_recon=ks["reconstruction"].numpy(), ks_mag=ks["magnitude"].numpy(), deconv=mic(blurred).numpy())
    return {"root": root, "mri": mri_paths, "mic": mic_paths, "mri_model": mri}


def test_saved_models_run_in_a_process_without_our_package(exports):
    code = f"""
        import sys
        import numpy as np
        import tensorflow as tf
        io = np.load({str(exports['root'] / 'io.npz')!r})
        mri = tf.saved_model.load({str(exports['mri']['saved_model'])!r})
        assert set(mri.signatures) == {{"serving_default", "reconstruct_kspace", "reconstruct_kspace_ri"}}
        out = mri.signatures["serving_default"](image=tf.constant(io["image"]))
        np.testing.assert_allclose(out["reconstruction"].numpy(), io["recon"], atol=1e-5)
        mag = np.abs(io["recon"][..., 0] + 1j * io["recon"][..., 1])
        np.testing.assert_allclose(out["magnitude"].numpy(), mag, atol=1e-5)
        ks = mri.signatures["reconstruct_kspace"](kspace=tf.constant(io["kspace"]), mask=tf.constant(io["mask"]),
                                                  data_consistency=tf.constant(io["dc"]))
        np.testing.assert_allclose(ks["reconstruction"].numpy(), io["ks_recon"], atol=1e-5)
        ri = mri.signatures["reconstruct_kspace_ri"](kspace_real=tf.constant(io["kspace"].real),
                                                     kspace_imag=tf.constant(io["kspace"].imag),
                                                     mask=tf.constant(io["mask"]),
                                                     data_consistency=tf.constant(io["dc"]))
        np.testing.assert_allclose(ri["magnitude"].numpy(), io["ks_mag"], atol=1e-5)
        mic = tf.saved_model.load({str(exports['mic']['saved_model'])!r})
        d = mic.signatures["serving_default"](blurred=tf.constant(io["blurred"]))
        np.testing.assert_allclose(d["deconvolved"].numpy(), io["deconv"], atol=1e-5)
        assert "tf_otcycle" not in sys.modules
        print("ok")
    """
    assert "ok" in fresh_python(code, exports["root"]).stdout


def test_onnx_graphs_equal_the_keras_generators(exports):
    """generator.onnx beside generator.keras (the onnx extra): onnxruntime gives Keras' output."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    io = np.load(exports["root"] / "io.npz")
    for paths, name, x, want in ((exports["mri"], "image", io["image"], io["recon"]),
                                 (exports["mic"], "blurred", io["blurred"], io["deconv"])):
        assert paths["onnx"] == paths["keras"].with_name("generator.onnx")
        session = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [name]
        np.testing.assert_allclose(session.run(None, {name: x})[0], want, atol=1e-4)
    other = np.random.default_rng(1).random((2, 16, 8, 12, 1)).astype(np.float32)  # any batch and size
    session = ort.InferenceSession(str(exports["mic"]["onnx"]), providers=["CPUExecutionProvider"])
    mic = keras.saving.load_model(exports["mic"]["keras"])
    np.testing.assert_allclose(session.run(None, {"blurred": other})[0], mic(other).numpy(), atol=1e-4)


def test_data_consistency_keeps_measured_lines(exports):
    io = np.load(exports["root"] / "io.npz")
    x = io["ks_recon"][..., 0] + 1j * io["ks_recon"][..., 1]
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    sampled = io["mask"][0] > 0
    np.testing.assert_allclose(k[0][:, sampled], io["kspace"][0][:, sampled], atol=1e-4)
    assert not np.allclose(k[1][:, sampled], io["kspace"][1][:, sampled], atol=1e-4)


def test_saved_model_cli_lists_the_signatures(exports):
    cli = Path(sys.executable).with_name("saved_model_cli")
    out = subprocess.run([str(cli), "show", "--all", "--dir", str(exports["mri"]["saved_model"])],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("serving_default", "reconstruct_kspace", "reconstruct_kspace_ri", "data_consistency", "magnitude"):
        assert name in out.stdout


def test_rest_request_bodies_match_the_signatures(exports):
    mri = tf.saved_model.load(str(exports["mri"]["saved_model"]))
    mic = tf.saved_model.load(str(exports["mic"]["saved_model"]))
    io = np.load(exports["root"] / "io.npz")
    cases = [
        (mri, "serving_default", {"image": io["image"]}),
        (mri, "reconstruct_kspace_ri", {"kspace_real": io["kspace"].real, "kspace_imag": io["kspace"].imag,
                                        "mask": io["mask"], "data_consistency": io["dc"]}),
        (mic, "serving_default", {"blurred": io["blurred"]}),
    ]
    for model, name, inputs in cases:
        for row_format in (False, True):
            body = json.loads(json.dumps(rest_request(name, inputs, row_format)))
            assert body["signature_name"] == name
            if row_format:
                columns = {k: np.array([inst[k] for inst in body["instances"]]) for k in inputs}
            else:
                columns = {k: np.array(v) for k, v in body["inputs"].items()}
            spec = model.signatures[name].structured_input_signature[1]
            assert set(columns) == set(spec)
            for key, value in columns.items():
                assert spec[key].shape.is_compatible_with(value.shape), (name, key, value.shape)
    with pytest.raises(ValueError, match="complex"):
        rest_request("reconstruct_kspace", {"kspace": io["kspace"]})


def test_versions_increase_and_temporaries_are_not_versions(exports, tmp_path):
    g = exports["mri_model"]
    a = export_mri_generator(g, tmp_path)["saved_model"]
    (tmp_path / "saved_model" / ".3.partial").mkdir()
    b = export_mri_generator(g, tmp_path)["saved_model"]
    assert (a.name, b.name) == ("1", "2") and next_version(tmp_path / "saved_model") == 3
    assert not [p for p in (tmp_path / "saved_model").iterdir() if p.name.startswith(".") and p.name != ".3.partial"]


def test_keras_model_is_reused_and_fine_tuned_in_another_project(exports, tmp_path):
    code = f"""
        import numpy as np
        import keras
        import tf_otcycle  # registers the custom objects
        g = keras.saving.load_model({str(exports['mri']['keras'])!r}, safe_mode=True)
        inp = keras.Input((None, None, 2))
        out = keras.layers.Conv2D(2, 1, name="head")(g(inp))
        model = keras.Model(inp, out)
        model.compile(keras.optimizers.Adam(1e-3), loss="mae")
        x = np.random.default_rng(0).standard_normal((2, 16, 16, 2)).astype("float32")
        before = [w.copy() for w in g.get_weights()]
        model.fit(x, x, epochs=1, batch_size=2, verbose=0)
        assert any(not np.allclose(a, b) for a, b in zip(before, g.get_weights()))
        model.save("finetuned.keras")
        again = keras.saving.load_model("finetuned.keras", safe_mode=True)
        np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=1e-5)
        print("ok")
    """
    assert "ok" in fresh_python(code, tmp_path).stdout


def test_reconstruct_command(exports, tmp_path):
    src = tmp_path / "in"
    write_fastmri_file(src / "a.h5", 1, size=16, slices=2)
    write_fastmri_file(src / "b.h5", 2, size=16, slices=3, coils=2)
    with h5py.File(src / "a.h5", "r") as f:
        kspace, attrs = f["kspace"][()], dict(f.attrs)
    with h5py.File(tmp_path / "undersampled.h5", "w") as f:  # a challenge-style file with its mask
        mask = np.zeros(kspace.shape[-1], np.float32)
        mask[::2] = 1
        f["kspace"] = kspace * mask
        f["mask"] = mask
    cmd = [sys.executable, "-m", "tf_otcycle.reconstruct", f"--model={exports['mri']['keras']}", "--crop_size=16"]
    out_dir = tmp_path / "out"
    proc = subprocess.run([*cmd, f"--input={src}", f"--output={out_dir}", "--data_consistency"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with h5py.File(out_dir / "a.h5", "r") as f:
        assert f["reconstruction"].shape == (2, 16, 16) and f["reconstruction"].dtype == np.float32
        assert f.attrs["patient_id"] == attrs["patient_id"] and f.attrs["data_consistency"]
    with h5py.File(out_dir / "b.h5", "r") as f:
        assert f["reconstruction"].shape == (3, 16, 16)
    proc = subprocess.run([*cmd, f"--input={tmp_path / 'undersampled.h5'}", f"--output={tmp_path / 'u_out.h5'}"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with h5py.File(tmp_path / "u_out.h5", "r") as f:
        assert not f.attrs["retrospective_undersampling"] and np.all(np.isfinite(f["reconstruction"][()]))
    proc = subprocess.run([*cmd, f"--input={src}", f"--output={out_dir}"], capture_output=True, text=True, env=ENV,
                          cwd=ROOT)
    assert proc.returncode != 0 and "exists" in proc.stderr
    (tmp_path / "bad.h5").write_bytes(b"garbage")
    proc = subprocess.run([*cmd, f"--input={tmp_path / 'bad.h5'}", f"--output={tmp_path / 'x.h5'}"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert proc.returncode != 0 and "bad.h5" in proc.stderr and not (tmp_path / "x.h5").exists()


def test_exports_carry_their_settings_and_the_commands_use_them(tmp_path):
    from tf_otcycle.data.tiff import write_stack
    from tf_otcycle.export import export_settings, read_export_config

    keras.utils.set_random_seed(2)
    mri = build_unet(2, 2, depth=1, base_filters=2, residual=True, name="generator")
    mic = build_unet(3, 1, depth=1, base_filters=2, activation="relu", output_activation="sigmoid", name="generator")
    mri_settings = export_settings("mri", crop_size=16, acceleration=8.0, center_fraction=0.125, mask_type="equispaced")
    mic_settings = export_settings("microscopy", tile=8, overlap=2)
    mri_paths = export_mri_generator(mri, tmp_path / "mri", settings=mri_settings)
    mic_paths = export_microscopy_generator(mic, np.full((4, 4, 4), 1 / 64, np.float32), tmp_path / "mic",
                                            settings=mic_settings)
    for paths, settings in ((mri_paths, mri_settings), (mic_paths, mic_settings)):
        written = read_export_config(paths["keras"])  # beside generator.keras
        assert written == {**settings, "weights_sha256": written["weights_sha256"]}
        assert read_export_config(paths["saved_model"]) == written  # inside the SavedModel's assets
        assert settings["package_version"]
    # A model folder copied elsewhere works with no flags but input and output.
    copied = tmp_path / "copied"
    shutil.copytree(tmp_path / "mri", copied)
    write_fastmri_file(tmp_path / "a.h5", 1, size=16, slices=2)
    proc = subprocess.run([sys.executable, "-m", "tf_otcycle.reconstruct", f"--model={copied / 'generator.keras'}",
                           f"--input={tmp_path / 'a.h5'}", f"--output={tmp_path / 'a_out.h5'}"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "crop 16, x8, 0.125 centre, equispaced masks" in proc.stdout
    with h5py.File(tmp_path / "a_out.h5", "r") as f:
        assert f["reconstruction"].shape == (2, 16, 16) and f.attrs["acceleration"] == 8.0
    write_stack(tmp_path / "v.tif", np.random.default_rng(0).random((12, 12, 12)).astype(np.float32))
    deconvolve = [sys.executable, "-m", "tf_otcycle.deconvolve", f"--input={tmp_path / 'v.tif'}"]
    proc = subprocess.run([*deconvolve, f"--model={mic_paths['keras']}", f"--output={tmp_path / 'v_out.tif'}"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "tile 8, overlap 2" in proc.stdout, proc.stderr[-3000:]
    # A flag overrides the saved setting; a model of the other task is refused by name.
    proc = subprocess.run([*deconvolve, f"--model={mic_paths['keras']}", f"--output={tmp_path / 'v2.tif'}", "--tile=4"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "tile 4, overlap 1" in proc.stdout, proc.stderr[-3000:]
    proc = subprocess.run([*deconvolve, f"--model={mri_paths['keras']}", f"--output={tmp_path / 'v3.tif'}"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "'mri' task" in proc.stderr


def test_untrusted_or_mismatched_models_are_refused(exports, tmp_path):
    from tf_otcycle.data.tiff import write_stack

    inp = keras.Input((None, None, 2))
    unsafe = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp))
    unsafe.save(tmp_path / "unsafe.keras")
    write_fastmri_file(tmp_path / "a.h5", 1, size=16, slices=1)
    proc = subprocess.run([sys.executable, "-m", "tf_otcycle.reconstruct", f"--model={tmp_path / 'unsafe.keras'}",
                           f"--input={tmp_path / 'a.h5'}", f"--output={tmp_path / 'o.h5'}"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "cannot load" in proc.stderr and "unsafe.keras" in proc.stderr
    assert "lambda" in proc.stderr.lower() and not (tmp_path / "o.h5").exists()
    foreign = tmp_path / "foreign_saved_model"  # a SavedModel folder that is not one of our .keras models
    tf.saved_model.save(tf.Module(), str(foreign))
    proc = subprocess.run([sys.executable, "-m", "tf_otcycle.reconstruct", f"--model={foreign}",
                           f"--input={tmp_path / 'a.h5'}", f"--output={tmp_path / 'o.h5'}"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "cannot load" in proc.stderr and "foreign_saved_model" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The MRI generator is not a deconvolution model; a multi-channel stack needs --channel.
    proc = subprocess.run([sys.executable, "-m", "tf_otcycle.deconvolve", f"--model={exports['mri']['keras']}",
                           f"--input={tmp_path / 'a.h5'}", f"--output={tmp_path / 'o.tif'}"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode != 0
    import tifffile

    tifffile.imwrite(tmp_path / "zcyx.tif", np.zeros((8, 2, 8, 8), np.float32), imagej=True, metadata={"axes": "ZCYX"})
    command = [sys.executable, "-m", "tf_otcycle.deconvolve", f"--model={exports['mic']['keras']}",
               f"--input={tmp_path / 'zcyx.tif'}", f"--output={tmp_path / 'o2.tif'}"]
    proc = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "zcyx.tif: a multi-channel stack" in proc.stderr
    proc = subprocess.run([*command, "--channel=1"], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    write_stack(tmp_path / "plane.tif", np.random.default_rng(0).random((8, 8)).astype(np.float32))
    proc = subprocess.run([*command[:4], f"--input={tmp_path / 'plane.tif'}", f"--output={tmp_path / 'o3.tif'}"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]  # a 2-D plane: a stack of depth 1
    assert tifffile.imread(tmp_path / "o3.tif").shape == (8, 8)


def test_inputs_that_do_not_fit_the_network_stride_are_padded_and_cropped_back(tmp_path):
    """A depth-2 U-Net pools twice (stride 4): a 14-px crop is padded for it and cropped back
    (in-process, and through both commands), a 6-voxel tile rounded up to 8."""
    from tf_otcycle.data.tiff import read_stack, write_stack
    from tf_otcycle.models import input_multiple, padded

    keras.utils.set_random_seed(3)
    mri = build_unet(2, 2, depth=2, base_filters=2, residual=True, name="generator")
    mic = build_unet(3, 1, depth=2, base_filters=2, activation="relu", output_activation="sigmoid", name="generator")
    assert input_multiple(mri) == 4 and input_multiple(build_unet(2, 2, depth=0, base_filters=2)) == 1
    x = np.random.default_rng(0).standard_normal((2, 14, 10, 2)).astype(np.float32)
    out = padded(mri, 4)(x)
    assert out.shape == x.shape
    full = mri(np.pad(x, [(0, 0), (0, 2), (0, 2), (0, 0)], mode="symmetric")).numpy()
    np.testing.assert_allclose(out, full[:, :14, :10], rtol=1e-5, atol=1e-6)
    mri_paths = export_mri_generator(mri, tmp_path / "mri")
    mic_paths = export_microscopy_generator(mic, np.full((4, 4, 4), 1 / 64, np.float32), tmp_path / "mic")
    write_fastmri_file(tmp_path / "a.h5", 1, size=16, slices=2)
    proc = subprocess.run([sys.executable, "-m", "tf_otcycle.reconstruct", f"--model={mri_paths['keras']}",
                           f"--input={tmp_path / 'a.h5'}", f"--output={tmp_path / 'a_out.h5'}", "--crop_size=14"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "padded to 16" in proc.stdout and "Traceback" not in proc.stderr
    with h5py.File(tmp_path / "a_out.h5", "r") as f:
        assert f["reconstruction"].shape == (2, 14, 14) and np.isfinite(f["reconstruction"][()]).all()
    write_stack(tmp_path / "v.tif", np.random.default_rng(0).random((12, 12, 12)).astype(np.float32))
    proc = subprocess.run([sys.executable, "-m", "tf_otcycle.deconvolve", f"--model={mic_paths['keras']}",
                           f"--input={tmp_path / 'v.tif'}", f"--output={tmp_path / 'v_out.tif'}", "--tile=6"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--tile 6 is not a multiple of the network's stride 4: using 8" in proc.stdout
    assert read_stack(tmp_path / "v_out.tif").shape == (12, 12, 12)


def test_an_export_of_identical_weights_is_not_repeated(tmp_path):
    """Exporting the same weights and settings again writes nothing new (no new SavedModel
    version); changed weights, a changed PSF or changed settings export a new version."""
    from tf_otcycle.export import export_settings

    keras.utils.set_random_seed(4)
    mic = build_unet(3, 1, depth=1, base_filters=2, activation="relu", output_activation="sigmoid", name="generator")
    psf = np.full((4, 4, 4), 1 / 64, np.float32)
    settings = export_settings("microscopy", tile=8, overlap=2)
    first = export_microscopy_generator(mic, psf, tmp_path, settings=settings)
    again = export_microscopy_generator(mic, psf, tmp_path, settings=settings)
    assert again["unchanged"] and again["saved_model"] == first["saved_model"] and first["saved_model"].name == "1"
    assert not first.get("unchanged")
    psf2 = psf.copy()
    psf2[0, 0, 0] *= 2
    assert export_microscopy_generator(mic, psf2, tmp_path, settings=settings)["saved_model"].name == "2"
    mic.set_weights([w + 1 for w in mic.get_weights()])
    assert export_microscopy_generator(mic, psf2, tmp_path, settings=settings)["saved_model"].name == "3"
    changed = export_settings("microscopy", tile=16, overlap=2)
    assert export_microscopy_generator(mic, psf2, tmp_path, settings=changed)["saved_model"].name == "4"


def _tiny_unet(ndim: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_unet(ndim, 1, depth=1, base_filters=2, activation="relu", output_activation="sigmoid",
                      name="generator")


def test_a_wrong_onnx_graph_is_exported_again_and_never_kept(tmp_path, monkeypatch):
    """tf2onnx now and then writes a graph with an extra output axis: each graph is run by
    onnxruntime against Keras, a wrong one re-exported from a fresh copy of the model, and one
    never right is refused with the file already there kept."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from tf_otcycle.export import OnnxExportError, export_onnx, onnx_mismatch, onnx_probe
    from tf_otcycle.export import onnx as onnx_module

    spec = tf.TensorSpec([None, None, None, 1], tf.float32, name="blurred")
    model, other = _tiny_unet(2, 0), _tiny_unet(2, 1)
    x = onnx_probe(model, spec)
    assert x.shape == (1, 8, 8, 1)
    real_export, calls = model.export, []

    def export_wrong_first(path, **kwargs):  # the first graph written is another network's
        calls.append(path)
        source = other if len(calls) == 1 else model
        type(source).export(source, path, **kwargs)

    model.export = export_wrong_first
    with monkeypatch.context() as patch:
        patch.setattr(onnx_module, "fresh_copy", lambda m: m)  # the retries go through the same export
        path = export_onnx(model, tmp_path / "g.onnx", spec, tries=6)  # tf2onnx's own fault may cost a try more
        assert len(calls) >= 2 and onnx_mismatch(path, x, np.asarray(model(x))) is None
        assert "differ" in onnx_mismatch(path, x, np.asarray(other(x)))
        assert "output shape (1, 8, 8, 1)" in onnx_mismatch(path, x, np.asarray(model(x))[None])

        kept = path.read_bytes()
        model.export = lambda p, **kw: type(other).export(other, p, **kw)  # always wrong
        with pytest.raises(OnnxExportError, match=r"g\.onnx: 2 ONNX exports did not reproduce"):
            export_onnx(model, path, spec, tries=2)
        assert path.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx"]

    # a model object whose export stays wrong: the retry exports a fresh copy with its weights
    export_onnx(model, tmp_path / "h.onnx", spec, tries=3)
    assert onnx_mismatch(tmp_path / "h.onnx", x, np.asarray(model(x))) is None
    model.export = real_export


def test_the_squeeze_tf2onnx_drops_at_an_output_is_put_back(tmp_path):
    """tf2onnx's reshape optimiser rewrites the last Reshape to one with a leading axis of 1 and
    loses the Squeeze it meant to add after it (1 export in 3-12 here): the output then has an
    extra axis. The Squeeze is put back, for any batch size; other graphs are not touched."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from tf_otcycle.export.onnx import restore_dropped_squeeze

    def graph(shape, out_dims):
        node = helper.make_node("Reshape", ["x", "shape"], ["y"])
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)],
                              [numpy_helper.from_array(np.array(shape, np.int64), "shape")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])

    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    onnx.save(graph([1, -1, 4], [1, "n", 4]), tmp_path / "dropped.onnx")
    session = ort.InferenceSession(str(tmp_path / "dropped.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": x})[0].shape == (1, 3, 4)  # the defect
    assert restore_dropped_squeeze(tmp_path / "dropped.onnx", rank=2)
    onnx.checker.check_model(onnx.load(tmp_path / "dropped.onnx"))
    session = ort.InferenceSession(str(tmp_path / "dropped.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], x)
    dims = onnx.load(tmp_path / "dropped.onnx").graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["n", 4]
    for shape, dims in (([-1, 4], ["n", 4]), ([2, -1, 4], [2, "n", 4])):  # right, or not this defect
        onnx.save(graph(shape, dims), tmp_path / "other.onnx")
        before = (tmp_path / "other.onnx").read_bytes()
        assert not restore_dropped_squeeze(tmp_path / "other.onnx", rank=2)
        assert (tmp_path / "other.onnx").read_bytes() == before


def test_a_generator_trained_in_bfloat16_exports_in_float32(tmp_path):
    """Under --mixed_precision=mixed_bfloat16 (what --mixed_precision=auto picks at paper size on
    AMX CPUs) the export is of a float32 copy: the ONNX graph is written and checked against it
    (ONNX has no bfloat16 convolution: the export failed before), the .keras file loads computing
    in float32, and the training run's policy is left as it was."""
    from tf_otcycle.export import onnx_available

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(5)
        mri = build_unet(2, 2, depth=1, base_filters=2, residual=True, name="generator")
        paths = export_mri_generator(mri, tmp_path)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert ("onnx" in paths) == onnx_available()
    loaded = keras.saving.load_model(paths["keras"])
    assert all(layer.compute_dtype == "float32" for layer in loaded._flatten_layers())
    x = np.random.default_rng(2).standard_normal((1, 16, 16, 2)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), mri(x), atol=0.05)  # bfloat16 compute against float32: close
