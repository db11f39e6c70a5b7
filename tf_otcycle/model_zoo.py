"""BioImage Model Zoo packages of exported deconvolution generators (microscopy and deblur2d).

    python -m tf_otcycle.model_zoo --model=RUN/export/generator.keras --output=RUN/export/bioimageio.zip

A package is what Fiji/deepImageJ, ilastik, napari and ``bioimageio.core`` run: ``rdf.yaml``
(bioimage.io model spec 0.5), the network as ONNX weights, a test input and its output, a
README, a cover figure, the learned PSF (TIFF) and the export's settings. Axes are the
network's own layout, ``b z y x c`` (``b y x c`` for 2-D images); spatial sizes are multiples
of the network's stride with a minimum of one training tile, and the output declares the
tiling halo (half the training tile overlap), so a consumer that tiles crops what the
network cannot see. Preprocessing is the training normalisation, min-max per sample to
[0, 1] (``scale_range`` 0-100 %); the output stays in that range.

After writing, the package is tested with ``bioimageio.core``'s own model test (the test
input through the ONNX weights must give the test output, at several sizes and batch
sizes); a package that fails is removed and the failure raised. Needs the optional extras
``bioimageio`` and ``onnx``: ``pip install 'tf_otcycle[bioimageio,onnx]'``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

CITATION = ("Sim, Oh, Kim, Jung, Ye: Optimal transport driven CycleGAN for unsupervised learning in inverse "
            "problems (SIAM J. Imaging Sciences 2020)")
CITATION_URL = "https://arxiv.org/abs/1909.12116"


class ModelZooError(RuntimeError):
    """A package could not be built or failed ``bioimageio.core``'s model test."""


def test_volume(psf: np.ndarray, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A deterministic test input: random point sources and blobs blurred by ``psf``, min-max
    normalised to [0, 1]; float32 of ``shape`` (``(D, H, W)`` or ``(H, W)``)."""
    from scipy.ndimage import gaussian_filter
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    sharp = np.zeros(shape, np.float32)
    points = tuple(rng.integers(0, n, 6 * int(np.prod(shape)) // 4096 + 8) for n in shape)
    sharp[points] = rng.uniform(0.5, 1.0, len(points[0]))
    sharp = gaussian_filter(sharp, 1.0) + 0.1 * gaussian_filter(rng.random(shape).astype(np.float32), 4.0)
    blurred = fftconvolve(sharp, np.asarray(psf, np.float32), mode="same")
    return _unit_range(blurred)


def _unit_range(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return ((x - x.min()) / max(float(x.max() - x.min()), 1e-12)).astype(np.float32)


def readme(settings: dict, name: str) -> str:
    """The package's documentation: what the model does, its input, settings and how it was checked."""
    rows = "\n".join(f"| {k} | {settings[k]} |" for k in sorted(settings) if k != "weights_sha256")
    return f"""# {name}

Deconvolution by a generator trained with the optimal-transport-driven cycleGAN
(tf_otcycle, {settings.get('task', 'microscopy')} task): trained on unpaired sharp and
blurred data, with a learned point spread function (PSF, `learned_psf.tif` in this package).

## Input and output

- Input `blurred`: one channel, axes as declared in `rdf.yaml` (channels last). It is
  normalised per sample to [0, 1] (min-max, the training normalisation) by the package's
  preprocessing.
- Output `deconvolved`: the same size, in that normalised [0, 1] range.
- Large inputs: tile with overlapping tiles; the output halo is declared in `rdf.yaml`.
  `python -m tf_otcycle.deconvolve` does this with smooth blending.

## Settings of the export

| setting | value |
|---|---|
{rows}

## Validation

The package's test input (random point sources and blobs blurred by the learned PSF) and the
Keras generator's output on it are included; `bioimageio.core`'s model test reproduces that
output with the ONNX weights. The training run's measured quality is in its
`eval/metrics.md`; the method's benchmark is in tf_otcycle's `benchmarks/QUALITY.md`.

## Citation

{CITATION}, {CITATION_URL}.
"""


def cover(test_in: np.ndarray, test_out: np.ndarray, path: Path) -> Path:
    """A PNG of the test input and output side by side (maximum projections of stacks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2), dpi=100)
    for ax, image, title in zip(axes, (test_in, test_out), ("input (blurred)", "output (deconvolved)")):
        ax.imshow(image.max(axis=0) if image.ndim == 3 else image, cmap="magma")
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _axes(ndim: int, sizes, voxel_size, halo: int | None):
    """Axis descriptions ``b (z) y x c``: inputs with ``sizes`` (ParameterizedSize), outputs with ``halo``."""
    from bioimageio.spec.model import v0_5 as spec

    ids = ("z", "y", "x")[3 - ndim:]
    scale = list(voxel_size) if voxel_size else [1.0] * ndim
    unit = "micrometer" if voxel_size else None
    channel = spec.ChannelAxis(channel_names=[spec.Identifier("intensity")])
    if halo is None:
        space = [spec.SpaceInputAxis(id=spec.AxisId(a), size=size, scale=s, unit=unit)
                 for a, size, s in zip(ids, sizes, scale)]
    else:
        space = [spec.SpaceOutputAxisWithHalo(
            id=spec.AxisId(a), size=spec.SizeReference(tensor_id=spec.TensorId("blurred"), axis_id=spec.AxisId(a)),
            halo=halo, scale=s, unit=unit) for a, s in zip(ids, scale)]
    return [spec.BatchAxis(), *space, channel]


def describe(folder: Path, name: str, settings: dict, ndim: int, multiple: int, tile: int, halo: int,
             opset: int, authors: list[str], tensors: tuple[str, str] = ("test_input.npy", "test_output.npy"),
             weights: str = "generator.onnx"):
    """The ``ModelDescr`` of the files in ``folder`` (test tensors, weights, README, cover, PSF)."""
    from bioimageio.spec.model import v0_5 as spec

    voxel_size = settings.get("voxel_size") or settings.get("pixel_size")
    minimum = max(multiple, -(-(2 * halo + 1) // multiple) * multiple, min(tile, 4 * multiple))
    sizes = [spec.ParameterizedSize(min=minimum, step=multiple)] * ndim
    spatial = [spec.AxisId(a) for a in ("z", "y", "x")[3 - ndim:]]
    data = spec.IntervalOrRatioDataDescr(type="float32")
    inputs = spec.InputTensorDescr(
        id=spec.TensorId("blurred"), description="blurred stack (or image), one channel",
        axes=_axes(ndim, sizes, voxel_size, None), data=data,
        test_tensor=spec.FileDescr(source=folder / tensors[0]),
        preprocessing=[spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(axes=spatial, min_percentile=0.0,
                                                                           max_percentile=100.0))])
    outputs = spec.OutputTensorDescr(
        id=spec.TensorId("deconvolved"), description="deconvolved, in the normalised [0, 1] range",
        axes=_axes(ndim, None, voxel_size, halo), data=data,
        test_tensor=spec.FileDescr(source=folder / tensors[1]))
    from tf_otcycle import __version__

    config = {"tf_otcycle": {k: v for k, v in settings.items() if isinstance(v, (str, int, float, bool, list))}}
    return spec.ModelDescr(
        name=name,
        description=(f"OT-cycleGAN deconvolution ({settings.get('task', 'microscopy')}, tf_otcycle {__version__}); "
                     f"learned PSF in learned_psf.tif, trained at {settings.get('wavelength_nm', '?')} nm"),
        authors=[spec.Author(name=a) for a in authors],
        cite=[spec.CiteEntry(text=CITATION, url=CITATION_URL)],
        license=spec.LicenseId("Apache-2.0"),
        documentation=spec.FileDescr(source=folder / "README.md"),
        covers=[spec.FileDescr(source=folder / "cover.png")],
        attachments=[spec.FileDescr(source=folder / "learned_psf.tif")],
        tags=["deconvolution", "fluorescence-light-microscopy", "3d" if ndim == 3 else "2d", "cyclegan", "onnx"],
        inputs=[inputs], outputs=[outputs],
        weights=spec.WeightsDescr(onnx=spec.OnnxWeightsDescr(source=folder / weights, opset_version=opset)),
        config=spec.Config(**config),
    )


def package(model_path: str | os.PathLike, output: str | os.PathLike, test_input: np.ndarray | None = None,
            name: str | None = None, authors: tuple[str, ...] = ("tf_otcycle",), check: bool = True) -> Path:
    """Write a BioImage Model Zoo package (zip) of an exported generator and test it.

    Args:
        model_path: ``generator.keras`` of a microscopy or deblur2d export (its ``config.json``
            and ``learned_psf.tif`` beside it).
        output: the ``.zip`` to write (atomically: an existing one is replaced only by a
            package that passed).
        test_input: a raw stack ``(D, H, W)`` (image ``(H, W)``) to take the test tile from
            (its centre, min-max normalised); default: a synthetic volume blurred by the PSF.
        check: run ``bioimageio.core``'s model test before the package is kept.

    Raises:
        ModelZooError: the export is not a deconvolution model, or the package fails its test.
    """
    import keras

    import tf_otcycle  # noqa: F401  (registers the custom objects)
    from tf_otcycle.data.tiff import read_stack
    from tf_otcycle.export import (
        ONNX_NAME,
        export_onnx,
        onnx_mismatch,
        onnx_reference,
        read_export_config,
    )
    from tf_otcycle.io_utils import atomic_path
    from tf_otcycle.models import input_multiple, predictor

    model_path, output = Path(model_path), Path(output)
    settings = read_export_config(model_path)
    task = settings.get("task")
    if task not in ("microscopy", "deblur2d"):
        raise ModelZooError(f"{model_path}: exported by the {task!r} task; packages are made of microscopy and "
                            "deblur2d generators")
    generator = keras.saving.load_model(model_path, safe_mode=True)
    ndim = len(generator.input_shape) - 2
    multiple = input_multiple(generator)
    tile = -(-int(settings.get("tile", 64)) // multiple) * multiple
    halo = int(settings.get("overlap", tile // 4)) // 2
    psf_path = model_path.with_name("learned_psf.tif")
    if not psf_path.is_file():
        raise ModelZooError(f"{psf_path}: missing (every microscopy/deblur2d export writes it beside the model)")
    psf = read_stack(psf_path)
    psf = psf[0] if ndim == 2 and psf.ndim == 3 else psf
    shape = (tile,) * ndim
    if test_input is None:
        x = test_volume(psf, shape)
    else:
        x = _unit_range(_centre(np.asarray(test_input, np.float32), shape))
    y = predictor(generator)(x[None, ..., None])
    name = name or f"tf_otcycle {task} deconvolution"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tensors = test_tensor_names(x)
        np.save(folder / tensors[0], x[None, ..., None])
        np.save(folder / tensors[1], np.asarray(y, np.float32))
        onnx_path = model_path.with_name(ONNX_NAME)
        if not onnx_path.is_file() or onnx_mismatch(onnx_path,
                                                    *onnx_reference(generator, _input_spec(ndim))) is not None:
            export_onnx(generator, onnx_path, _input_spec(ndim))  # checked; replaces a graph that is wrong
        onnx_bytes = onnx_path.read_bytes()
        weights = content_name("generator", ".onnx", onnx_bytes)  # unique, as the test tensors' names
        (folder / weights).write_bytes(onnx_bytes)
        (folder / "learned_psf.tif").write_bytes(psf_path.read_bytes())
        (folder / "README.md").write_text(readme(settings, name))
        cover(x, np.asarray(y)[0, ..., 0], folder / "cover.png")
        description = describe(folder, name, settings, ndim, multiple, tile, halo, _opset(onnx_path), list(authors),
                               tensors, weights)
        from bioimageio.spec import save_bioimageio_package

        with atomic_path(output) as tmp_zip:
            save_bioimageio_package(description, output_path=tmp_zip)
            if check:
                _check(tmp_zip, output)
    return output


def content_name(stem: str, suffix: str, data: bytes) -> str:
    """``<stem>_<12 hex digits of data's SHA-256><suffix>``: bioimageio.core caches a package's
    files by name, and two packages with a ``test_input.npy`` (or a ``generator.onnx``) each
    were measured here to swap them (a 2-D package tested with a 3-D input, or 3-D weights)."""
    import hashlib

    return f"{stem}_{hashlib.sha256(data).hexdigest()[:12]}{suffix}"


def test_tensor_names(x: np.ndarray) -> tuple[str, str]:
    """File names of the test input and output, unique to the input's content (:func:`content_name`)."""
    data = np.ascontiguousarray(x).tobytes()
    return content_name("test_input", ".npy", data), content_name("test_output", ".npy", data)


def _centre(volume: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The centre ``shape`` of ``volume`` (reflected up where it is smaller)."""
    volume = volume[0] if volume.ndim == len(shape) + 1 and volume.shape[0] == 1 else volume
    if volume.ndim != len(shape):
        raise ModelZooError(f"test input: a {volume.ndim}-D array for a model of {len(shape)}-D inputs")
    pads = [(0, max(0, s - n)) for s, n in zip(shape, volume.shape)]
    volume = np.pad(volume, pads, mode="symmetric") if any(p[1] for p in pads) else volume
    starts = [(n - s) // 2 for s, n in zip(shape, volume.shape)]
    return volume[tuple(slice(a, a + s) for a, s in zip(starts, shape))]


def _input_spec(ndim: int):
    import tensorflow as tf

    return tf.TensorSpec([None] * (ndim + 1) + [1], tf.float32, name="blurred")


def _opset(onnx_path: Path) -> int:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return max(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _check(zip_path: Path, shown_as: Path) -> None:
    """``bioimageio.core.test_model`` on the written zip; raise with the failed checks' messages."""
    from bioimageio.core import test_model

    # Tested under a name unique to its content: bioimageio caches what it unpacks by name,
    # and two packages written as model.zip one after the other were measured to mix.
    unique = zip_path.with_name(content_name("package", ".zip", zip_path.read_bytes()))
    shutil.copyfile(zip_path, unique)
    try:
        summary = test_model(unique)
    finally:
        unique.unlink(missing_ok=True)
    if summary.status != "passed":
        failed = [f"{d.name}: {'; '.join(str(e.msg) for e in d.errors)[:300]}" for d in summary.details
                  if d.status == "failed"]
        raise ModelZooError(f"{shown_as}: bioimageio.core's model test failed ({summary.status}): "
                            + " | ".join(failed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tf_otcycle.model_zoo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exported generator.keras (microscopy or deblur2d)")
    parser.add_argument("--output", required=True, help="the package to write (.zip)")
    parser.add_argument("--test_input", default=None,
                        help="a TIFF stack (or image) whose centre tile becomes the test input; default: synthetic")
    parser.add_argument("--name", default=None, help="the model's name in the zoo")
    parser.add_argument("--author", action="append", default=None, help="an author's name (repeat for several)")
    args = parser.parse_args(argv)
    if not args.output.endswith(".zip"):
        parser.error(f"--output: {args.output}: a package is a .zip file")
    if not Path(args.model).is_file():
        parser.error(f"--model: {args.model} does not exist")
    test_input = None
    if args.test_input:
        from tf_otcycle.data import images, tiff

        read = images.read_image if args.test_input.lower().endswith(".png") else tiff.read_stack
        try:
            test_input = read(args.test_input)
        except (tiff.TiffFormatError, ValueError) as e:
            parser.error(f"--test_input: {e}")
    try:
        path = package(args.model, args.output, test_input, args.name, tuple(args.author or ("tf_otcycle",)))
    except ImportError as e:
        print(f"error: {e}; install the extras: pip install 'tf_otcycle[bioimageio,onnx]'", file=sys.stderr)
        return 2
    except ModelZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{path}: BioImage Model Zoo package written; bioimageio.core's model test passed")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
