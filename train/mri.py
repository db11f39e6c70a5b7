"""Unsupervised accelerated MRI with the OT-cycleGAN (paper section 4.1, appendix D.1).

    python train/mri.py --flagfile=train/configs/mri.flags --run_dir=runs/mri

Trains G (2-D U-Net) on unpaired clean images (--clean_files) and undersampled
acquisitions of other subjects (--measured_files), evaluates on --test_files, and exports
G. Re-running the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from tf_otcycle import metrics  # noqa: E402
from tf_otcycle.data import fastmri  # noqa: E402
from tf_otcycle.evaluation import (  # noqa: E402
    evaluate_mri,
    generator_method,
    prepare_volume,
    write_tables,
    zero_filled,
)
from tf_otcycle.export import export_mri_generator  # noqa: E402
from tf_otcycle.layers import FFTMask  # noqa: E402
from tf_otcycle.model import OTCycleGAN  # noqa: E402
from tf_otcycle.models import build_patchgan, build_unet  # noqa: E402
from tf_otcycle.physics.fft import channels_to_complex  # noqa: E402
from tf_otcycle.training import (  # noqa: E402
    CheckpointCallback,
    TrainState,
    ValidationCallback,
    adam,
    is_chief,
    make_strategy,
    save_flags,
)

# === Flags (the contract of this entry point) ===
flags.DEFINE_string("run_dir", None, "Run directory: flags, TensorBoard logs, checkpoints, eval, export.")
flags.DEFINE_string("clean_files", None, "Glob(s), comma-separated: fully sampled fastMRI files, the clean image domain X.")
flags.DEFINE_string("measured_files", None, "Glob(s): fastMRI files of *other* subjects, undersampled to form the measurement domain Y.")
flags.DEFINE_string("val_files", None, "Glob(s): validation files (fixed per-file masks), for TensorBoard metrics and panels.")
flags.DEFINE_string("test_files", None, "Glob(s): test files evaluated after training (fastMRI metrics).")
flags.DEFINE_float("acceleration", 4.0, "Undersampling factor R.")
flags.DEFINE_float("center_fraction", 0.04, "Fraction of fully sampled centre (ACS) columns; paper 0.04, fastMRI default 0.08.")
flags.DEFINE_enum("mask_type", "random", ["random", "equispaced"], "1-D Cartesian mask family (fastMRI algorithms).")
flags.DEFINE_integer("crop_size", 320, "Centre crop of the images (crop_size x crop_size).")
flags.DEFINE_integer("epochs", 100, "Training epochs.")
flags.DEFINE_integer("steps_per_epoch", None, "Generator steps per epoch; default: measured slices // batch_size.")
flags.DEFINE_integer("batch_size", 1, "Global batch size (split over replicas).")
flags.DEFINE_integer("base_filters", 64, "Filters of the first U-Net level.")
flags.DEFINE_integer("depth", 4, "U-Net poolings; crop_size must be divisible by 2**depth.")
flags.DEFINE_boolean("residual", True, "Generator adds its input to its (linear) output.")
flags.DEFINE_integer("critic_filters", 64, "Filters of the first PatchGAN conv.")
flags.DEFINE_integer("critic_layers", 3, "Stride-2 conv layers of the PatchGAN.")
flags.DEFINE_integer("n_critic", 5, "Critic updates per generator update.")
flags.DEFINE_float("rho", 0.5, "Weight of the image cycle |x - G(Hx)|_1 (eq. 21).")
flags.DEFINE_float("sigma", 0.5, "Weight of the measurement cycle |y - H G(y)|_1 (eq. 21).")
flags.DEFINE_float("gp_weight", 10.0, "Gradient penalty weight.")
flags.DEFINE_float("gan_weight", 1.0, "Weight of the Wasserstein terms in the generator loss (eq. 19: 1).")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate (both optimizers).")
flags.DEFINE_float("beta_1", 0.5, "Adam beta_1.")
flags.DEFINE_float("beta_2", 0.9, "Adam beta_2.")
flags.DEFINE_integer("seed", 0, "Global seed (weights, data order, training masks).")
flags.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored", "multi_worker", "one_device"], "tf.distribute strategy.")
flags.DEFINE_boolean("eval_only", False, "Skip training: restore the latest checkpoint, evaluate and export.")
flags.DEFINE_boolean("cache_images", False, "Keep the cropped training images in memory after the first epoch.")
flags.DEFINE_integer("val_slices", 8, "Validation slices evaluated at each epoch end.")
flags.DEFINE_integer("num_panels", 2, "Test volumes that get a PNG panel (input | reconstruction | target, errors below).")
flags.DEFINE_integer("checkpoint_every", 1, "Epochs between checkpoints (the last epoch is always saved).")
flags.DEFINE_boolean("export", True, "Export the generator (.keras and a new SavedModel version) after evaluation.")

FLAGS = flags.FLAGS
CONFIG_KEYS = [
    "run_dir", "clean_files", "measured_files", "val_files", "test_files", "acceleration", "center_fraction",
    "mask_type", "crop_size", "epochs", "steps_per_epoch", "batch_size", "base_filters", "depth", "residual",
    "critic_filters", "critic_layers", "n_critic", "rho", "sigma", "gp_weight", "gan_weight", "learning_rate", "beta_1",
    "beta_2", "seed", "strategy", "eval_only", "cache_images", "val_slices", "num_panels", "checkpoint_every",
    "export",
]


def validate(config: dict) -> list[str]:
    """All problems with the flag values, before any work."""
    errors = []
    if not config["run_dir"]:
        errors.append("--run_dir is required")
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
    for name in ("rho", "sigma", "gp_weight", "gan_weight"):
        if config[name] < 0:
            errors.append(f"--{name} must be >= 0, got {config[name]}")
    for name in ("epochs", "batch_size", "base_filters", "critic_filters", "critic_layers", "n_critic", "crop_size", "checkpoint_every"):
        if config[name] < 1:
            errors.append(f"--{name} must be >= 1, got {config[name]}")
    if config["depth"] < 0:
        errors.append(f"--depth must be >= 0, got {config['depth']}")
    elif config["crop_size"] % (2 ** config["depth"]):
        errors.append(f"--crop_size {config['crop_size']} must be divisible by 2**depth = {2 ** config['depth']}")
    if config["steps_per_epoch"] is not None and config["steps_per_epoch"] < 1:
        errors.append(f"--steps_per_epoch must be >= 1, got {config['steps_per_epoch']}")
    if not config["learning_rate"] > 0:
        errors.append(f"--learning_rate must be > 0, got {config['learning_rate']}")
    return errors


def resolve_files(config: dict) -> dict[str, list[fastmri.FastMRIFile]]:
    """Expand the globs, inspect every file, check the domains are disjoint."""
    out = {}
    for name in ("clean_files", "measured_files", "val_files", "test_files"):
        if config[name] and (name in ("val_files", "test_files") or not config["eval_only"]):
            paths = fastmri.expand_files(config[name], f"--{name}")
            out[name] = fastmri.inspect_files(paths, config["crop_size"])
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
    critic_x = build_patchgan(2, 2, config["critic_filters"], config["critic_layers"], name="critic_x")
    model = OTCycleGAN(
        generator, FFTMask(name="forward_op"), critic_x, None, rho=config["rho"], sigma=config["sigma"],
        n_critic=config["n_critic"], gp_weight=config["gp_weight"], gan_weight=config["gan_weight"],
        seed=config["seed"],
    )
    model.compile(
        adam(config["learning_rate"], config["beta_1"], config["beta_2"]),
        adam(config["learning_rate"], config["beta_1"], config["beta_2"]),
    )
    return model


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
        }
        peak = target.max(axis=(1, 2), keepdims=True)
        panel = np.concatenate([y_mag / peak, out / peak, target / peak], axis=2)[..., None]
        return scalars, {"val/input_output_target": panel}

    return evaluate


def train(config: dict, files: dict, model: OTCycleGAN, state: TrainState, strategy, chief: bool) -> None:
    initial_epoch = state.restore(log=logging.info if not chief else print)
    if initial_epoch >= config["epochs"]:
        print(f"Training already complete ({initial_epoch} epochs).")
        return
    dataset = fastmri.unpaired_mri_dataset(
        files["clean_files"], files["measured_files"], config["crop_size"], config["acceleration"],
        config["center_fraction"], config["mask_type"], config["batch_size"], config["seed"],
        cache=config["cache_images"],
    )
    steps = config["steps_per_epoch"] or max(1, sum(i.num_slices for i in files["measured_files"]) // config["batch_size"])
    run_dir = Path(config["run_dir"])
    callbacks = [
        keras.callbacks.TensorBoard(str(run_dir / "logs"), update_freq="epoch", write_graph=False),
        CheckpointCallback(state, config["checkpoint_every"], write=chief),
    ]
    if files.get("val_files"):
        callbacks.append(ValidationCallback(validation_fn(model.generator, files["val_files"], config), run_dir / "logs"))
    model.fit(dataset, epochs=config["epochs"], steps_per_epoch=steps, initial_epoch=initial_epoch,
              callbacks=callbacks, verbose=2)


def evaluate_and_export(config: dict, files: dict, model: OTCycleGAN) -> str:
    run_dir = Path(config["run_dir"])
    methods = {"input": zero_filled, "ot_cyclegan": generator_method(model.generator)}
    summary, per_volume = evaluate_mri(
        methods, files["test_files"], config["crop_size"], config["mask_type"], config["acceleration"],
        config["center_fraction"], panel_dir=run_dir / "eval", num_panels=config["num_panels"],
    )
    table = write_tables(summary, run_dir / "eval", ["method", "psnr", "ssim", "nmse", "volumes", "seconds_per_slice"])
    write_tables(per_volume, run_dir / "eval", ["method", "file", "psnr", "ssim", "nmse"], name="per_volume")
    if config["export"]:
        paths = export_mri_generator(model.generator, run_dir / "export")
        print(f"Exported {paths['keras']} and {paths['saved_model']}")
    return table


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = {k: FLAGS[k].value for k in CONFIG_KEYS}
    errors = validate(config)
    if errors:
        raise app.UsageError("bad flags:\n  " + "\n  ".join(errors))
    try:
        files = resolve_files(config)
    except (ValueError, fastmri.FastMRIFormatError) as e:
        raise app.UsageError(str(e)) from None
    keras.utils.set_random_seed(config["seed"])
    tf.config.optimizer.set_experimental_options({"remapping": False})  # avoids a noisy grappler error
    strategy = make_strategy(config["strategy"])
    chief = is_chief(strategy)
    run_dir = Path(config["run_dir"])
    with strategy.scope():
        model = build_model(config)
        state = TrainState(model, run_dir / "checkpoints")
    if chief:
        flags_text = "\n".join(f"--{k}={'' if v is None else v}" for k, v in config.items() if v is not None) + "\n"
        save_flags(run_dir, flags_text, config)
    if config["eval_only"]:
        if state.restore() == 0 and state.manager.latest_checkpoint is None:
            raise app.UsageError(f"--eval_only: no checkpoint in {run_dir / 'checkpoints'}")
    else:
        train(config, files, model, state, strategy, chief)
    if chief:
        table = evaluate_and_export(config, files, model)
        print(f"\nTest metrics ({len(files['test_files'])} volumes, x{config['acceleration']:g}, "
              f"{config['center_fraction']:.0%} ACS), {run_dir / 'eval' / 'metrics.csv'}:\n{table}")


if __name__ == "__main__":
    flags.mark_flags_as_required([])
    app.run(main, argv=sys.argv)
