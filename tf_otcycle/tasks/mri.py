"""Accelerated MRI (paper section 4.1, appendix D.1): fastMRI files, ``H = F^H P F``, one critic.

Unpaired domains: fully sampled clean files (X) and retrospectively undersampled files of
other subjects (Y), each slice with its own random Cartesian mask (fastMRI's algorithms).
Images are centre-cropped, complex as two channels, each slice divided by the standard
deviation of its zero-filled magnitude. Evaluation undersamples each test file with its
reproducible per-file mask and scores magnitudes in file units (fastMRI's conventions).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_otcycle import metrics
from tf_otcycle.classical import pls_tv
from tf_otcycle.data import fastmri
from tf_otcycle.evaluation import Sample
from tf_otcycle.export import export_mri_generator, export_settings
from tf_otcycle.layers import FFTMask
from tf_otcycle.models import build_patchgan, build_unet, predictor
from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels, data_consistency, fft2c
from tf_otcycle.physics.masks import MaskSpec, acs_columns, mask_problems, sampled_acceleration
from tf_otcycle.tasks.base import (
    Method,
    Task,
    batch_size,
    divisible,
    grid_values,
    pipeline_seed,
    shard,
)
from tf_otcycle.tasks.config import CommonConfig, boolean, enum, integer, real, reset, string
from tf_otcycle.training import relative_change


def mask_spec(config: MRIConfig) -> MaskSpec:
    """The masks of ``--mask_type``, ``--acceleration`` and ``--center_fraction``."""
    return MaskSpec(config.mask_type, config.acceleration, config.center_fraction)


def prepare_volume(info: fastmri.FastMRIFile, crop_size: int, sampling: MaskSpec) -> dict[str, np.ndarray]:
    """Undersample a test volume with its per-file mask (``sampling`` drawn with the file's
    seed); normalise each slice.

    A file that holds its own undersampled acquisition (a ``mask`` dataset) is not
    undersampled again: its measurement is ``H_m`` of its zero-filled crop under its own mask
    on the crop (:func:`tf_otcycle.data.fastmri.acquired_mask`, as training and ``reconstruct``
    use it), scored against its ``reconstruction_*`` target, and refused without one (nothing
    to score against).

    Returns:
        dict with ``y`` ``(S, crop, crop, 2)`` normalised input, ``mask`` ``(S, crop)``,
        ``scale`` ``(S,)`` (multiply to get back to file units) and ``target``
        ``(S, crop, crop)`` (the file's reconstruction, or ``|x|`` when absent).
    """
    images, target = fastmri.read_volume(info, crop_size)
    fastmri.check_scorable([info])
    mask = fastmri.measurement_mask(info, sampling, crop_size)
    _, y, scale = fastmri.normalize_pair(tf.constant(images), mask)  # per slice, as in training
    if target is None:
        target = np.abs(images).astype(np.float32)
    return {
        "y": complex_to_channels(y).numpy(),
        "mask": np.repeat(mask[None], len(images), axis=0),
        "scale": scale.numpy(),
        "target": target,
    }


def report_acquisitions(infos: list[fastmri.FastMRIFile], config: MRIConfig) -> None:
    """Print how the measured files are used: how many are acquisitions with their own masks and the
    acceleration those realise on the crop, with a warning when their average differs from the one
    the image cycle simulates (``--acceleration``) by more than 20 %."""
    acquired = [i for i in infos if i.has_mask]
    if not acquired:
        return
    fractions = [1.0 / sampled_acceleration(fastmri.acquired_mask(i, config.crop_size)) for i in acquired]
    average = 1.0 / float(np.mean(fractions))
    inexact = sum(i.kspace_shape[-1] != config.crop_size for i in acquired)
    print(f"--measured_files: {len(acquired)} of {len(infos)} files hold their own acquisition, used as acquired "
          f"(acceleration on the {config.crop_size}-column crop {average:.2f} on average, "
          f"{1 / max(fractions):.2f}-{1 / min(fractions):.2f}); "
          + (f"{inexact} of them have k-space wider than --crop_size, so their masks on the crop are the "
             "nearest-frequency approximation" if inexact else "their masks on the crop are exact"), flush=True)
    if abs(average / config.acceleration - 1) > 0.2:
        print(f"WARNING: the acquisitions realise an acceleration of {average:.2f} on average on the crop, while the "
              f"image cycle G(Hx) simulates --acceleration={config.acceleration:g}: set it (and --center_fraction) "
              "to match the acquisitions", flush=True)


def file_units(scale: np.ndarray):
    """Output ``(S, H, W, 2)`` -> magnitudes ``(S, H, W)`` in the file's units (``scale``: ``(S,)``)."""

    def to_target(out: np.ndarray) -> np.ndarray:
        return np.abs(channels_to_complex(out).numpy()) * scale[:, None, None]

    return to_target


def zero_filled(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The input itself: the zero-filled inverse FFT."""
    return y


def generator_method(generator, batch_size: int = 8) -> Method:
    """A Keras generator ``(B, H, W, 2) -> (B, H, W, 2)`` as a method ``(y, mask) -> x``."""

    predict = predictor(generator)

    def run(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.concatenate([predict(y[i : i + batch_size]) for i in range(0, len(y), batch_size)])

    return run


def with_data_consistency(method: Method) -> Method:
    """``method`` followed by data consistency: the measured k-space lines of the input put back."""

    def run(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
        y_c = channels_to_complex(tf.constant(y))
        out = channels_to_complex(tf.constant(method(y, mask)))
        return complex_to_channels(data_consistency(out, fft2c(y_c), tf.constant(mask))).numpy()

    return run


@dataclasses.dataclass(frozen=True)
class MRIConfig(CommonConfig):
    """The MRI task's flags: the shared training flags (some with other defaults) and its own."""

    epochs: int = reset("epochs", 100)
    base_filters: int = reset("base_filters", 64)
    depth: int = reset("depth", 4)
    critic_filters: int = reset("critic_filters", 64)
    critic_layers: int = reset("critic_layers", 3)
    clean_files: str | None = string(
        None, "Glob(s), comma-separated: fully sampled fastMRI files, the clean image domain X.")
    measured_files: str | None = string(
        None, "Glob(s): fastMRI files of *other* subjects, the measurement domain Y: fully sampled files are "
        "undersampled with --mask_type/--acceleration/--center_fraction; files holding their own acquisition (a "
        "'mask' dataset, as fastMRI's challenge files; single-coil) are used as acquired.")
    val_files: str | None = string(
        None, "Glob(s): validation files (fixed per-file masks), for TensorBoard metrics and panels.", may_change=True)
    test_files: str | None = string(
        None, "Glob(s): test files evaluated after training (fastMRI metrics).", may_change=True)
    acceleration: float = real(4.0, "Undersampling factor R.")
    center_fraction: float = real(
        0.04, "Fraction of fully sampled centre (ACS) columns; paper 0.04, fastMRI default 0.08.")
    mask_type: str = enum("random", ("random", "equispaced"), "1-D Cartesian mask family (fastMRI algorithms).")
    crop_size: int = integer(320, "Centre crop of the images (crop_size x crop_size).")
    residual: bool = boolean(True, "Generator adds its input to its (linear) output.")
    augment_flip: bool = boolean(
        False, "Training images are also flipped up-down and left-right at random before they are undersampled "
        "(acquisitions with their masks; not in the paper). Off by default: every published number was measured "
        "without flips.")
    augment_rotation: float = real(
        0.0, "Training images are also rotated by a random angle within +- this many degrees before they are "
        "undersampled (not in the paper; fully sampled files only): more to learn from few "
        "slices. 0: off.")
    augment_zoom: float = real(
        0.0, "Training images are also zoomed by a random factor within 1 +- this before they are undersampled. "
        "0: off.")
    cache_images: bool = boolean(
        False, "Keep the cropped training images in memory after the first epoch.", may_change=True)
    val_slices: int = integer(8, "Validation slices evaluated at each epoch end.", may_change=True)
    pls_lambda: float = real(
        0.02, "TV weight of the PLS-TV baseline (images normalised to unit std) when not tuned.", may_change=True)
    pls_lambda_grid: str = string(
        "0.002,0.005,0.01,0.02,0.05,0.1",
        "PLS-TV weights to choose from by validation PSNR (--val_files), as a user tunes the classical baseline; "
        "empty: --pls_lambda.", may_change=True)
    pls_iterations: int = integer(100, "MFISTA iterations of the PLS-TV baseline.", may_change=True)


class MRITask(Task):
    name = "mri"
    config_class = MRIConfig
    uses_critic_y = False  # H is fixed: the y-side GAN term does not depend on G (paper D.1)
    training_files = ("clean_files", "measured_files")
    unit = "slice"
    classical_name = "pls_tv"
    circular = True  # the FFT is circular: equivariant imaging also draws cyclic shifts
    splittable = True  # k-space columns under per-sample masks: SSDU applies

    # --- configuration and data ----------------------------------------------------------
    def validate(self, config):
        errors = super().validate(config)
        errors += mask_problems(config.mask_type, config.acceleration, config.center_fraction)
        if config.select == "consistency":
            errors.append("--select=consistency: the mri task has no measurement-consistency score; use best or last")
        try:
            grid_values(config.pls_lambda_grid, "pls_lambda_grid")
        except ValueError as e:
            errors.append(str(e))
        if not 0.0 <= config.augment_rotation <= 180.0:
            errors.append(f"--augment_rotation must be in [0, 180] degrees, got {config.augment_rotation}")
        if not 0.0 <= config.augment_zoom < 1.0:
            errors.append(f"--augment_zoom must be in [0, 1), got {config.augment_zoom}")
        if config.crop_size < 1:
            errors.append(f"--crop_size must be >= 1, got {config.crop_size}")
        else:
            errors += divisible("crop_size", config.crop_size, config.depth)
        return errors

    def resolve_data(self, config):
        """Inspect every file (format, sizes), check the training files are fully sampled and
        the test files scorable, and that the two domains are disjoint."""
        files = {}
        for name in ("clean_files", "measured_files", "val_files", "test_files"):
            if config[name] and (name in ("val_files", "test_files") or not config.eval_only):
                infos = fastmri.inspect_files(fastmri.expand_files(config[name], f"--{name}"), config.crop_size)
                if name == "clean_files":
                    fastmri.check_fully_sampled(infos, "--clean_files (clean images)")
                elif name == "measured_files":
                    fastmri.check_acquisitions([i for i in infos if i.has_mask])
                    report_acquisitions(infos, config)
                else:
                    fastmri.check_scorable(infos, f"--{name}")
                files[name] = infos
        if "clean_files" in files and "measured_files" in files:
            clean = {os.path.realpath(i.path) for i in files["clean_files"]}
            shared = [i.path for i in files["measured_files"] if os.path.realpath(i.path) in clean]
            if shared:
                raise ValueError("--clean_files and --measured_files must be disjoint (unpaired domains); both hold "
                                 f"{shared[:3]}")
        files.setdefault("test_files", [])  # training alone evaluates nothing
        return {"files": files}

    def sample_voxels(self, config):
        return config.crop_size ** 2

    def sample_shape(self, config):
        return (config.crop_size, config.crop_size, 2)

    def steps_per_epoch(self, config, data):
        if config.steps_per_epoch:
            return config.steps_per_epoch
        return max(1, sum(i.num_slices for i in data["files"]["measured_files"]) // config.batch_size)

    def _pipeline_args(self, config, input_context=None):
        return dict(crop_size=config.crop_size, sampling=mask_spec(config),
                    batch_size=batch_size(config, input_context), seed=pipeline_seed(config, input_context),
                    cache=config.cache_images, flip=config.augment_flip, rotation=config.augment_rotation,
                    zoom=config.augment_zoom)

    def unpaired_dataset(self, config, data, input_context=None):
        files = data["files"]
        return fastmri.unpaired_mri_dataset(shard(files["clean_files"], input_context),
                                            shard(files["measured_files"], input_context),
                                            **self._pipeline_args(config, input_context))

    def paired_problems(self, data):
        acquired = [i.path for i in data["files"].get("measured_files", []) if i.has_mask]
        if acquired:
            return [f"supervised learning needs fully sampled --measured_files (matched pairs); {acquired[0]} and "
                    f"{len(acquired) - 1} more hold only their acquisition"]
        return []

    def paired_dataset(self, config, data):
        # The measured files are fully sampled: their pairs are the supervised upper reference.
        ds = fastmri.paired_mri_dataset(data["files"]["measured_files"], **self._pipeline_args(config))
        return ds.map(lambda d: (d["y"], d["x"]))

    # --- networks and the physics ----------------------------------------------------------
    def generator(self, config, data, name="generator", domain="x"):
        return build_unet(ndim=2, in_channels=2, depth=config.depth, base_filters=config.base_filters,
                          activation="leaky_relu", residual=config.residual, name=name)

    def critic(self, config, domain):
        return build_patchgan(2, 2, config.critic_filters, config.critic_layers, norm=config.critic_norm,
                              name=f"critic_{domain}")

    def forward_op(self, config, data):
        return FFTMask(name="forward_op")

    def acs(self, config):
        return acs_columns(config.crop_size, config.center_fraction)

    # --- evaluation --------------------------------------------------------------------------
    def samples(self, config, data, split="test_files"):
        for info in data["files"][split]:
            vol = prepare_volume(info, config.crop_size, mask_spec(config))
            yield Sample(
                name=Path(info.path).name, group=Path(info.path).parent.name, inputs=(vol["y"], vol["mask"]),
                target=vol["target"], to_target=file_units(vol["scale"]), panel="slices", units=len(vol["y"]),
            )

    def input_method(self, config):
        return zero_filled

    def generator_method(self, config, generator):
        return generator_method(generator)

    def variants(self, name, method):
        # ot_cyclegan: the serving signature's data-consistency variant. ssdu: Yaman et al.'s
        # network ends in data consistency on the columns it is given; training is unchanged
        # by it (the loss columns are never put back), at inference it keeps all of Ω.
        if name in ("ot_cyclegan", "ssdu"):
            return {f"{name}+dc": with_data_consistency(method)}
        return {}

    def classical_grid(self, config, name):
        return [{"pls_lambda": w} for w in grid_values(config.pls_lambda_grid, "pls_lambda_grid")]

    def classical_method(self, config, data, model=None, name=None):
        def pls(y, mask):
            x, _ = pls_tv(tf.constant(channels_to_complex(y)), tf.constant(mask), config.pls_lambda,
                          config.pls_iterations)
            return complex_to_channels(x).numpy()

        return pls

    def validation(self, config, data, model):
        """Fixed validation slices -> PSNR/SSIM next to the input's, and image panels.

        Scores the model's network: G, followed by data consistency where the model's network
        ends in it (``model.ends_in_data_consistency``: SSDU)."""
        infos = data["files"].get("val_files")
        if not infos:
            return None
        generator = model.generator if hasattr(model, "generator") else model

        def network(y, mask):
            return np.asarray(generator(y, training=False))

        if getattr(model, "ends_in_data_consistency", False):
            network = with_data_consistency(network)
        ys, masks, targets = [], [], []
        for info in infos:
            vol = prepare_volume(info, config.crop_size, mask_spec(config))
            ys.append(vol["y"])
            masks.append(vol["mask"])
            targets.append(vol["target"] / vol["scale"][:, None, None])
            if sum(len(y) for y in ys) >= config.val_slices:
                break
        y = np.concatenate(ys)[: config.val_slices]
        mask = np.concatenate(masks)[: config.val_slices].astype(np.float32)
        target = np.concatenate(targets)[: config.val_slices].astype(np.float32)
        y_mag = np.abs(channels_to_complex(y).numpy())

        def evaluate():
            out = np.abs(channels_to_complex(network(y, mask)).numpy())
            scalars = {
                "val/psnr": float(np.mean(metrics.psnr_tf(target, out))),
                "val/ssim": float(np.mean(metrics.ssim_tf(target, out))),
                "val/psnr_input": float(np.mean(metrics.psnr_tf(target, y_mag))),
                "val/ssim_input": float(np.mean(metrics.ssim_tf(target, y_mag))),
                "val/change": relative_change(out, y_mag),
            }
            peak = target.max(axis=(1, 2), keepdims=True)
            panel = np.concatenate([y_mag / peak, out / peak, target / peak], axis=2)[..., None]
            return scalars, {"val/input_output_target": panel}

        return evaluate

    # --- export ------------------------------------------------------------------------------
    def inference_settings(self, config):
        return export_settings(
            "mri", crop_size=config.crop_size, acceleration=config.acceleration,
            center_fraction=config.center_fraction, mask_type=config.mask_type,
            normalization="zero-filled image divided by std(|zero-filled|) per slice; outputs multiplied back",
        )

    def export(self, model, config, export_dir):
        generator = model.generator if hasattr(model, "generator") else model
        return export_mri_generator(generator, export_dir, settings=self.inference_settings(config))

    def describe(self, config, data) -> str:
        return (f"{len(data['files']['test_files'])} volumes, x{config.acceleration:g}, "
                f"{config.center_fraction:.0%} ACS")


TASK = MRITask()
__all__ = ["TASK", "MRIConfig", "MRITask", "generator_method", "mask_spec", "prepare_volume", "with_data_consistency",
           "zero_filled"]
