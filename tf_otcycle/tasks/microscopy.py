"""Blind deconvolution microscopy (paper section 4.2, appendix D.2): TIFF stacks, a learned
non-negative 3-D PSF, a 3-D U-Net and two multi-scale 3-D PatchGAN critics.

Unpaired domains: blurred widefield stacks (Y) and sharp stacks of other samples (X), each
normalised to [0, 1] by its own minimum and maximum, cut into random augmented cubic
patches. Test files are ``NAME_blurred.tif`` beside ``NAME_gt.tif``; whole volumes are
deconvolved tile by tile.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from tf_otcycle.data import tiff
from tf_otcycle.export import export_settings
from tf_otcycle.io_utils import atomic_write_text
from tf_otcycle.layers import PSFConv3D
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.physics.psf import (
    born_wolf_psf,
    centre_to,
    flat_psf,
    gaussian_psf,
)
from tf_otcycle.physics.psf_fit import WavelengthFit, fit_bead, fit_wavelength, minimax_wavelength
from tf_otcycle.tasks.base import (
    numbers,
)
from tf_otcycle.tasks.blur import BlurConfig, BlurTask
from tf_otcycle.tasks.config import boolean, integer, reset, string
from tf_otcycle.training import AtEpochEnd, reset_average


def triple(text: str, name: str) -> tuple[float, float, float]:
    """``"a,b,c"`` -> three positive floats; ``ValueError`` naming the flag otherwise."""
    return numbers(text, name, 3)  # type: ignore[return-value]
DEFAULT_VOXEL_SIZE = "0.2,0.1,0.1"  # micrometres, dz,dy,dx (the simulated data's)
# --psf_init values that start H from the optics (not replaced by an unreliable wavelength fit)
PHYSICAL_STARTS = ("born_wolf", "file")
FIT_MAX_SHAPE = (64, 256, 256)  # voxels of each stack the wavelength fit reads (its centre): seconds, not minutes


def fit_record_path(out_dir) -> Path:
    """``out_dir/psf/wavelength_fit.json``: every ``--psf_fit_epochs`` fit of a run, in epoch order."""
    return Path(out_dir) / "psf" / "wavelength_fit.json"


def fit_epochs(config: MicroscopyConfig) -> list[int]:
    """``--psf_fit_epochs`` as sorted epoch numbers in ``[1, --epochs]`` (empty when off);
    ``ValueError`` naming the flag."""
    text = config.psf_fit_epochs
    if not text:
        return []
    try:
        epochs = sorted({int(e) for e in str(text).split(",")})
    except ValueError:
        epochs = [0]
    if not 1 <= epochs[0] <= epochs[-1] <= config.epochs:
        raise ValueError(f"--psf_fit_epochs: expected comma-separated epochs in [1, epochs={config.epochs}], got "
                         f"{text!r}")
    return epochs


def wavelengths(config: MicroscopyConfig) -> list[float]:
    """``--psf_fit_wavelengths`` in nm; ``ValueError`` naming the flag."""
    text = config.psf_fit_wavelengths or ""
    values = numbers(text, "psf_fit_wavelengths", len(text.split(",")))
    return sorted(set(values))


@dataclasses.dataclass(frozen=True)
class MicroscopyConfig(BlurConfig):
    """The microscopy task's flags: the blur tasks' and its own."""

    epochs: int = reset("epochs", 200)
    voxel_size: str | None = string(
        None,
        "Voxel size dz,dy,dx in micrometres (Born & Wolf PSF, FWHM report); default: the ImageJ metadata of the "
        "first --blurred_files (or --test_files) stack, else 0.2,0.1,0.1.")
    gaussian_sigma: str = string("2,1,1", "Gaussian initial PSF sigma z,y,x in voxels.")
    psf_fit_epochs: str | None = string(
        None, "Semi-blind PSF (not in the paper): after each of these epochs (comma-separated), fit the emission "
        "wavelength of a Born & Wolf PSF (--numerical_aperture and --refractive_index known) to the measurement "
        "cycle mean|y - g h * G(y)| with the current G, and go on from that PSF; for a --psf_init=gaussian|flat "
        "start when the wavelength is unknown (benchmarks/QUALITY.md). A fit whose minimum lies on the grid's edge"
        " or is not significant (t < 3 over 16 blocks) is logged as UNRELIABLE and not used: a non-physical start "
        "goes on from the range's minimax wavelength instead (509 nm for 400-700 nm), a physical PSF stays. "
        "Default: off.")
    psf_fit_wavelengths: str = string(
        "400,450,500,550,600,650,700",
        "Candidate emission wavelengths (nm) of --psf_fit_epochs; the best is refined between its neighbours.",
        before="400,450,500,550,600,650,700")
    psf_fit_size: int = integer(
        32, "PSF cube (voxels) of the wavelength fit; it must hold the PSF's halo (a 20^3 crop biases the fit toward "
        "wider PSFs). The learned PSF keeps --psf_size.", before=32)
    psf_fit_files: int = integer(4, "How many of the --blurred_files volumes the wavelength fit uses.", before=4)
    psf_file_fit: bool = boolean(
        False, "With --psf_init=file: fit the emission wavelength of a Born & Wolf PSF (--numerical_aperture, "
        "--refractive_index) to the file, scale and background by least squares over --psf_fit_wavelengths, and "
        "start H from that noise-free model PSF instead of the file's voxels (a single bead's noise and background "
        "cost up to 1 dB on the benchmark sets; the model has no aberrations). Sets --wavelength.", before=False)
    channel: int | None = integer(
        None, "Channel (0-based) of multi-channel stacks (axes ZCYX etc. in the ImageJ/OME metadata); single-channel "
        "stacks and 2-D planes need none.")


class MicroscopyTask(BlurTask):
    name = "microscopy"
    config_class = MicroscopyConfig

    def validate(self, config):
        errors = super().validate(config)
        for name in ("voxel_size", "gaussian_sigma"):
            try:
                if config[name] is not None:
                    triple(config[name], name)
            except ValueError as e:
                errors.append(str(e))
        for parse in (fit_epochs, wavelengths):
            try:
                parse(config)
            except ValueError as e:
                errors.append(str(e))
        for name in ("psf_fit_size", "psf_fit_files"):
            if config[name] < 1:
                errors.append(f"--{name} must be >= 1, got {config[name]}")
        if config.psf_file_fit and config.psf_init != "file":
            errors.append(f"--psf_file_fit needs --psf_init=file, got --psf_init={config.psf_init}")
        return errors

    def settle_voxel_size(self, config, data):
        """``--voxel_size`` left unset: the first stack's own, as Fiji wrote it (else the default)."""
        if config.voxel_size is not None:
            return config
        first = (data["files"].get("blurred_files") or data["files"]["test_files"])[0]
        found = tiff.read_voxel_size(first)
        config = config.replace(voxel_size=",".join(f"{v:g}" for v in found) if found else DEFAULT_VOXEL_SIZE)
        print(f"--voxel_size={config.voxel_size} ({'from ' + str(first) if found else 'default'})", flush=True)
        return config

    def settle(self, config, data):
        """``--voxel_size`` left unset: the first stack's own, as Fiji wrote it (else the default);
        ``--psf_file_fit``: ``--wavelength`` fitted to the ``--psf_file`` (:func:`fit_bead`)."""
        config = self.settle_voxel_size(config, data)
        if not config.psf_file_fit:
            return config
        grid = [w / 1000 for w in wavelengths(config)]  # micrometres
        wavelength, misfits = fit_bead(self.file_psf(config), self.voxel_size(config), grid,
                                       config.numerical_aperture, config.refractive_index)
        edge = " (on the grid's edge: widen --psf_fit_wavelengths)" if wavelength in (grid[0], grid[-1]) else ""
        print(f"--psf_file_fit: the Born & Wolf PSF that best matches {config.psf_file} has the emission wavelength "
              f"{wavelength * 1000:.1f} nm ({len(misfits)} wavelengths tried){edge}; H starts from it", flush=True)
        return config.replace(wavelength=round(wavelength * 1000, 1))

    def initial_psf(self, config):
        """``--psf_file_fit``: the Born & Wolf PSF at the wavelength fitted to the file; else the blur tasks'."""
        if config.psf_init == "file" and config.psf_file_fit:
            return self.model_psf(config.replace(psf_init="born_wolf"))
        return super().initial_psf(config)

    def channel(self, config):
        return config.channel

    def file_voxel_size(self, path):
        return tiff.read_voxel_size(path)

    def voxel_size(self, config):
        return triple(config.voxel_size or DEFAULT_VOXEL_SIZE, "voxel_size")

    def model_psf(self, config):
        shape = (self.psf_size(config),) * 3
        if config.psf_init == "born_wolf":
            return born_wolf_psf(shape, self.voxel_size(config), config.wavelength / 1000,
                                 config.numerical_aperture, config.refractive_index)
        if config.psf_init == "gaussian":
            return gaussian_psf(shape, triple(config.gaussian_sigma, "gaussian_sigma"))
        return flat_psf(shape)

    def callbacks(self, config, data, model, out_dir):
        """``--psf_fit_epochs``: the wavelength fit (:meth:`fit_psf`) after those epochs, for the OT model."""
        ot_model = isinstance(model, OTCycleGAN) and isinstance(model.forward_op, PSFConv3D)
        if not config.psf_fit_epochs or not ot_model:  # not the self-supervised ones' given PSF
            return []
        record = fit_record_path(out_dir) if out_dir is not None else None
        applied_before = record is not None and record.exists() and any(  # a resumed run
            f.get("applied", True) for f in json.loads(record.read_text()))
        physical = [config.psf_init in PHYSICAL_STARTS or applied_before]  # a physical start, or a fit applied

        def fit(epoch: int) -> None:
            self.fit_psf(config, data, model, out_dir, epoch, physical=physical[0])
            physical[0] = True  # the first fit is always applied from a non-physical start

        return [AtEpochEnd(fit_epochs(config), fit)]

    def fit_psf(self, config, data, model, out_dir=None, epoch: int = 0, physical: bool | None = None) -> WavelengthFit:
        """Fit the emission wavelength of a Born & Wolf PSF to ``mean|y - g h * G(y)|`` on the
        first ``--psf_fit_files`` measurements (their centres, at most :data:`FIT_MAX_SHAPE`)
        with the current G (:func:`fit_wavelength`), set H's PSF to it (``--psf_size``) and add
        it to ``out_dir/psf/wavelength_fit.json``.

        An unreliable fit (its minimum on the grid's edge, or not singled out by the misfit) is
        logged as such and not used. While H's PSF is not ``physical`` yet (default: a
        ``--psf_init=gaussian|flat`` start) H goes on from the Born & Wolf PSF at the searched
        range's minimax wavelength (:func:`minimax_wavelength`): any Born & Wolf PSF is nearer
        the truth than a flat one, the later fits, with a G trained against it, can converge
        (QUALITY.md), and an unreliable minimum followed the noise to the grid's edge on the
        benchmark sets (75 % off at worst, the minimax wavelength 27 %); from a physical PSF, H
        keeps its PSF. The record's ``applied_wavelength`` is the wavelength H went on from."""
        volumes = data["volumes"]["blurred_files"][: config.psf_fit_files]
        measurements = [centre_to(y, np.minimum(y.shape, FIT_MAX_SHAPE)) for y in volumes]
        predict = self.generator_method(config, model.generator)
        optics = (config.numerical_aperture, config.refractive_index)
        grid = [w / 1000 for w in wavelengths(config)]  # micrometres
        fit = fit_wavelength(measurements, [predict(y) for y in measurements], self.voxel_size(config),
                             grid, *optics, kernel_size=config.psf_fit_size,
                             offset=model.forward_op.background)  # H's learned background (0 without it)
        misfit, gain = fit.misfits[fit.wavelength]
        found = (f"\n--psf_fit_epochs, epoch {epoch}: emission wavelength {fit.wavelength * 1000:.1f} nm (misfit "
                 f"{misfit:.5f}, gain {gain:.3f}; {len(fit.misfits)} wavelengths tried)")
        physical = config.psf_init in PHYSICAL_STARTS if physical is None else physical
        applied = fit.reliable or not physical
        prior, worst = minimax_wavelength(grid[0], grid[-1])
        wavelength = fit.wavelength if fit.reliable else prior
        if applied:
            layer = model.forward_op
            layer.set_psf(born_wolf_psf(layer.kernel_size, self.voxel_size(config), wavelength, *optics))
            reset_average(model.g_optimizer, layer.kernel)  # --ema_momentum: the average starts from the new PSF
        unreliable = f"{found} is UNRELIABLE (wavelengths in micrometres): {fit.reason}"
        if fit.reliable:
            print(f"{found}; the PSF goes on from it", flush=True)
        elif applied:
            print(f"{unreliable}; not used: H goes on from {wavelength * 1000:.1f} nm, the wavelength whose FWHMs are "
                  f"at most {worst:.0%} off anywhere in {grid[0] * 1000:g}-{grid[-1] * 1000:g} nm (give --wavelength "
                  "if you know the dye's emission)", flush=True)
        else:
            print(f"{unreliable}; H keeps its PSF", flush=True)
        if out_dir is not None:
            path = fit_record_path(out_dir)
            fits = [f for f in (json.loads(path.read_text()) if path.exists() else []) if f["epoch"] < epoch]
            fits.append({"epoch": epoch, **fit.as_dict(), "applied": applied,
                         "applied_wavelength": wavelength if applied else None, "unit": "micrometre",
                         "files": [str(f) for f in data["files"]["blurred_files"][: config.psf_fit_files]]})
            atomic_write_text(path, json.dumps(fits, indent=2) + "\n")
        return fit

    def inference_settings(self, config):
        return export_settings(
            "microscopy", tile=config.patch_size, overlap=self.tile_overlap(config),
            voxel_size=list(self.voxel_size(config)), wavelength_nm=config.wavelength, psf_size=self.psf_size(config),
            psf_init=config.psf_init, psf_file=config.psf_file, psf_file_fit=config.psf_file_fit,
            psf_fit_epochs=config.psf_fit_epochs,  # fitted wavelengths: psf/wavelength_fit.json
            normalization="min-max per volume to [0, 1]",
        )


TASK = MicroscopyTask()
