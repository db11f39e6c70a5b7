"""Unsupervised accelerated MRI with the OT-cycleGAN (paper section 4.1, appendix D.1).

    python train/mri.py --flagfile=train/configs/mri.flags --run_dir=runs/mri

Trains G (2-D U-Net) on unpaired clean images (--clean_files) and undersampled
acquisitions of other subjects (--measured_files), evaluates on --test_files, and exports
G. Re-running the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import common  # train/common.py: shared flags and run flow
import numpy as np
from absl import app, flags

from tf_otcycle import metrics
from tf_otcycle.data import fastmri
from tf_otcycle.evaluation import (
    evaluate_mri,
    generator_method,
    prepare_volume,
    with_data_consistency,
    write_tables,
    zero_filled,
)
from tf_otcycle.export import export_mri_generator, export_settings
from tf_otcycle.layers import FFTMask
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.models import build_patchgan, build_unet
from tf_otcycle.physics.fft import channels_to_complex
from tf_otcycle.training import ValidationCallback, relative_change

# === Flags (the contract of this entry point) ===
common.define(flags.DEFINE_string, "clean_files", None, "Glob(s), comma-separated: fully sampled fastMRI files, the clean image domain X.")
common.define(flags.DEFINE_string, "measured_files", None, "Glob(s): fastMRI files of *other* subjects, undersampled to form the measurement domain Y.")
common.define(flags.DEFINE_string, "val_files", None, "Glob(s): validation files (fixed per-file masks), for TensorBoard metrics and panels.")
common.define(flags.DEFINE_string, "test_files", None, "Glob(s): test files evaluated after training (fastMRI metrics).")
common.define(flags.DEFINE_float, "acceleration", 4.0, "Undersampling factor R.")
common.define(flags.DEFINE_float, "center_fraction", 0.04, "Fraction of fully sampled centre (ACS) columns; paper 0.04, fastMRI default 0.08.")
common.define(flags.DEFINE_enum, "mask_type", "random", ["random", "equispaced"], "1-D Cartesian mask family (fastMRI algorithms).")
common.define(flags.DEFINE_integer, "crop_size", 320, "Centre crop of the images (crop_size x crop_size).")
common.define(flags.DEFINE_boolean, "residual", True, "Generator adds its input to its (linear) output.")
common.define(flags.DEFINE_boolean, "cache_images", False, "Keep the cropped training images in memory after the first epoch.")
common.define(flags.DEFINE_integer, "val_slices", 8, "Validation slices evaluated at each epoch end.")
COMMON_DEFAULTS = dict(epochs=100, base_filters=64, depth=4, critic_filters=64, critic_layers=3)  # the shared training flags' defaults for this task
common.define_common_flags(**COMMON_DEFAULTS)

FLAGS = flags.FLAGS
CONFIG_KEYS = common.COMMON_KEYS + [
    "clean_files", "measured_files", "val_files", "test_files", "acceleration", "center_fraction", "mask_type",
    "crop_size", "residual", "cache_images", "val_slices",
]


def validate(config: dict) -> list[str]:
    """All problems with the flag values, before any work."""
    errors = common.validate_common(config)
    if not config["test_files"]:
        errors.append("--test_files is required")
    if not config["eval_only"]:
        for name in ("clean_files", "measured_files"):
            if not config[name]:
                errors.append(f"--{name} is required for training")
    if not config["acceleration"] >= 1:
        errors.append(f"--acceleration must be >= 1, got {config['acceleration']}")
    if not 0 <= config["center_fraction"] < 1:
        errors.append(f"--center_fraction must be in [0, 1), got {config['center_fraction']}")
    elif config["acceleration"] >= 1 and config["center_fraction"] * config["acceleration"] > 1:
        errors.append("--center_fraction * --acceleration must be <= 1 (more ACS lines than the budget)")
    if config["crop_size"] < 1:
        errors.append(f"--crop_size must be >= 1, got {config['crop_size']}")
    elif config["depth"] >= 0 and config["crop_size"] % (2 ** config["depth"]):
        errors.append(f"--crop_size {config['crop_size']} must be divisible by 2**depth = {2 ** config['depth']}")
    return errors


def resolve_files(config: dict) -> dict[str, list[fastmri.FastMRIFile]]:
    """Expand the globs, inspect every file, check the domains are disjoint."""
    out = {}
    for name in ("clean_files", "measured_files", "val_files", "test_files"):
        if config[name] and (name in ("val_files", "test_files") or not config["eval_only"]):
            paths = fastmri.expand_files(config[name], f"--{name}")
            out[name] = fastmri.inspect_files(paths, config["crop_size"])
            if name in ("clean_files", "measured_files"):
                fastmri.check_fully_sampled(out[name], f"--{name} (training)")
            else:
                fastmri.check_scorable(out[name], f"--{name}")
    if "clean_files" in out and "measured_files" in out:
        clean = {os.path.realpath(i.path) for i in out["clean_files"]}
        shared = [i.path for i in out["measured_files"] if os.path.realpath(i.path) in clean]
        if shared:
            raise app.UsageError(f"--clean_files and --measured_files must be disjoint (unpaired domains); both hold {shared[:3]}")
    return out


def build_model(config: dict) -> OTCycleGAN:
    generator = build_unet(
        ndim=2, in_channels=2, depth=config["depth"], base_filters=config["base_filters"],
        activation="leaky_relu", residual=config["residual"], name="generator",
    )
    critic_x = build_patchgan(2, 2, config["critic_filters"], config["critic_layers"], norm=config["critic_norm"],
                              name="critic_x")
    model = OTCycleGAN(generator, FFTMask(name="forward_op"), critic_x, None, **common.gan_kwargs(config))
    model.compile(*optimizers(config))
    return model


def optimizers(config: dict, steps_per_epoch: int = 1) -> tuple:
    """Constant-rate Adam for G and the critic (paper D.1); every method of ``train/compare.py``
    trains with these. ``steps_per_epoch`` is unused (no schedule), kept for one signature."""
    return (*common.gan_optimizers(config), None)


def validation_fn(generator, infos, config):
    """Fixed validation slices -> callback computing PSNR/SSIM and image panels."""
    ys, targets = [], []
    for info in infos:
        vol = prepare_volume(info, config["crop_size"], config["mask_type"], config["acceleration"], config["center_fraction"])
        ys.append(vol["y"])
        targets.append(vol["target"] / vol["scale"][:, None, None])
        if sum(len(y) for y in ys) >= config["val_slices"]:
            break
    y = np.concatenate(ys)[: config["val_slices"]]
    target = np.concatenate(targets)[: config["val_slices"]].astype(np.float32)
    y_mag = np.abs(channels_to_complex(y).numpy())

    def evaluate():
        out = np.abs(channels_to_complex(generator(y, training=False)).numpy())
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


def inference_settings(config: dict) -> dict:
    """What ``python -m tf_otcycle.reconstruct`` needs to use the exported model as trained."""
    return export_settings(
        "mri", crop_size=config["crop_size"], acceleration=config["acceleration"],
        center_fraction=config["center_fraction"], mask_type=config["mask_type"],
        normalization="zero-filled image divided by std(|zero-filled|) per slice; outputs multiplied back",
    )


def evaluate_and_export(config: dict, files: dict, model: OTCycleGAN) -> str:
    run_dir = Path(config["run_dir"])
    reconstruct = generator_method(model.generator)
    methods = {"input": zero_filled, "ot_cyclegan": reconstruct, "ot_cyclegan+dc": with_data_consistency(reconstruct)}
    summary, per_volume = evaluate_mri(
        methods, files["test_files"], config["crop_size"], config["mask_type"], config["acceleration"],
        config["center_fraction"], panel_dir=run_dir / "eval", num_panels=config["num_panels"],
    )
    table = write_tables(summary, run_dir / "eval", ["method", "psnr", "ssim", "nmse", "volumes", "seconds_per_slice"])
    write_tables(per_volume, run_dir / "eval", ["method", "file", "psnr", "ssim", "nmse"], name="per_volume")
    lines = []
    if config["export"]:
        paths = export_mri_generator(model.generator, run_dir / "export", settings=inference_settings(config))
        lines.append(f"Exported {paths['keras']} and {paths['saved_model']}")
    lines.append(f"\nTest metrics ({len(files['test_files'])} volumes, x{config['acceleration']:g}, "
                 f"{config['center_fraction']:.0%} ACS), {run_dir / 'eval' / 'metrics.csv'}:\n{table}")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = common.read_config(CONFIG_KEYS)
    errors = validate(config)
    if errors:
        raise app.UsageError("bad flags:\n  " + "\n  ".join(errors))
    try:
        files = resolve_files(config)
    except (ValueError, fastmri.FastMRIFormatError) as e:
        raise app.UsageError(str(e)) from None

    def make_dataset():
        return fastmri.unpaired_mri_dataset(
            files["clean_files"], files["measured_files"], config["crop_size"], config["acceleration"],
            config["center_fraction"], config["mask_type"], config["batch_size"], config["seed"],
            cache=config["cache_images"],
        )

    def extra_callbacks(model):
        if not files.get("val_files"):
            return []
        evaluate = validation_fn(model.generator, files["val_files"], config)
        return [ValidationCallback(evaluate, Path(config["run_dir"]) / "logs")]

    steps = 1
    if not config["eval_only"]:
        steps = config["steps_per_epoch"] or max(1, sum(i.num_slices for i in files["measured_files"]) // config["batch_size"])
    common.run(config, build_model, make_dataset, steps, extra_callbacks,
               lambda model: evaluate_and_export(config, files, model))


if __name__ == "__main__":
    app.run(main)
