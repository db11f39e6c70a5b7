"""Unsupervised blind deconvolution microscopy with the OT-cycleGAN (paper 4.2, appendix D.2).

    python train/microscopy.py --flagfile=train/configs/microscopy.flags --run_dir=runs/microscopy

Learns the deconvolution network G (3-D U-Net) *and* the PSF h (``PSFConv3D``) from
unpaired blurred (--blurred_files) and sharp (--sharp_files) TIFF stacks, with two
multi-scale PatchGAN critics. Evaluates on --test_files (``NAME_blurred.tif`` beside
``NAME_gt.tif``), exports G and the learned PSF. Re-running the same command resumes.
"""

from __future__ import annotations

import json
from pathlib import Path

import common  # train/common.py: shared flags and run flow
import numpy as np
from absl import app, flags

from tf_otcycle import metrics
from tf_otcycle.data import tiff
from tf_otcycle.evaluation import (
    evaluate_microscopy,
    psf_panel,
    psf_similarity,
    volume_views,
    write_tables,
)
from tf_otcycle.export import export_microscopy_generator, export_settings
from tf_otcycle.io_utils import atomic_write_text, expand_files
from tf_otcycle.layers import PSFConv3D
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.models import build_multiscale_patchgan, build_unet
from tf_otcycle.physics.psf import born_wolf_psf, flat_psf, gaussian_psf
from tf_otcycle.schedules import LinearDecayAfter
from tf_otcycle.tiling import predict_tiled
from tf_otcycle.training import ValidationCallback, adam, relative_change

# === Flags (the contract of this entry point) ===
common.define(flags.DEFINE_string, "blurred_files", None, "Glob(s), comma-separated: blurred widefield TIFF stacks, the measurement domain Y.")
common.define(flags.DEFINE_string, "sharp_files", None, "Glob(s): sharp TIFF stacks of *other* samples, the image domain X.")
common.define(flags.DEFINE_string, "test_files", None, "Glob(s): blurred test stacks NAME_blurred.tif with NAME_gt.tif beside them.")
common.define(flags.DEFINE_string, "val_files", None, "Glob(s): validation stacks (NAME_blurred.tif [+ NAME_gt.tif]) for TensorBoard panels.")
common.define(flags.DEFINE_integer, "patch_size", 64, "Cubic training patch size (paper: 64); divisible by 2**depth.")
common.define(flags.DEFINE_integer, "psf_size", 20, "Size of the learned cubic PSF kernel (paper: 20).")
common.define(flags.DEFINE_enum, "psf_init", "born_wolf", ["born_wolf", "gaussian", "flat"], "Initial PSF.")
common.define(flags.DEFINE_float, "wavelength", 500.0, "Emission wavelength in nm for the Born & Wolf initial PSF.")
common.define(flags.DEFINE_float, "numerical_aperture", 1.4, "NA for the Born & Wolf initial PSF.")
common.define(flags.DEFINE_float, "refractive_index", 1.5, "Immersion refractive index for the Born & Wolf initial PSF.")
common.define(flags.DEFINE_string, "voxel_size", "0.2,0.1,0.1", "Voxel size dz,dy,dx in micrometres (Born & Wolf PSF, FWHM report).")
common.define(flags.DEFINE_string, "gaussian_sigma", "2,1,1", "Gaussian initial PSF sigma z,y,x in voxels.")
common.define(flags.DEFINE_string, "true_psf", None, "Optional TIFF of the true PSF, compared with the learned one.")
common.define(flags.DEFINE_float, "psf_learning_rate", None,
              "Adam learning rate of the learned PSF and gain; default --learning_rate. Blind starts "
              "(--psf_init=gaussian|flat) need a larger one: Adam moves each kernel value by about this much per step.")
common.define(flags.DEFINE_integer, "decay_epoch", 40, "Learning rate constant until this epoch, then linear to 0 at --epochs.")
common.define(flags.DEFINE_integer, "tile_overlap", None, "Overlap of inference tiles; default patch_size // 4.")
COMMON_DEFAULTS = dict(epochs=200, base_filters=32, depth=3, critic_filters=32, critic_layers=2)  # the shared training flags' defaults for this task
common.define_common_flags(**COMMON_DEFAULTS)

FLAGS = flags.FLAGS
CONFIG_KEYS = common.COMMON_KEYS + [
    "blurred_files", "sharp_files", "test_files", "val_files", "patch_size", "psf_size", "psf_init", "wavelength",
    "numerical_aperture", "refractive_index", "voxel_size", "gaussian_sigma", "true_psf", "decay_epoch", "tile_overlap",
    "psf_learning_rate",
]


def _triple(text: str, name: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) <= 0:
        raise app.UsageError(f"--{name}: expected 3 positive comma-separated numbers, got {text!r}")
    return values  # type: ignore[return-value]


def validate(config: dict) -> list[str]:
    errors = common.validate_common(config)
    if not config["test_files"]:
        errors.append("--test_files is required")
    if not config["eval_only"]:
        for name in ("blurred_files", "sharp_files"):
            if not config[name]:
                errors.append(f"--{name} is required for training")
    if config["patch_size"] < 4:
        errors.append(f"--patch_size must be >= 4, got {config['patch_size']}")
    elif config["depth"] >= 0 and config["patch_size"] % (2 ** config["depth"]):
        errors.append(f"--patch_size {config['patch_size']} must be divisible by 2**depth = {2 ** config['depth']}")
    if config["psf_size"] < 1 or config["psf_size"] > config["patch_size"]:
        errors.append(f"--psf_size must be in [1, patch_size={config['patch_size']}], got {config['psf_size']}")
    if not 0 <= config["decay_epoch"] <= config["epochs"]:
        errors.append(f"--decay_epoch must be in [0, epochs={config['epochs']}], got {config['decay_epoch']}")
    if config["psf_learning_rate"] is not None and not config["psf_learning_rate"] > 0:
        errors.append(f"--psf_learning_rate must be > 0, got {config['psf_learning_rate']}")
    if not config["wavelength"] > 0:
        errors.append(f"--wavelength must be > 0 (nm), got {config['wavelength']}")
    if not 0 < config["numerical_aperture"] < config["refractive_index"]:
        errors.append("--numerical_aperture must be in (0, refractive_index)")
    return errors


def initial_psf(config: dict) -> np.ndarray:
    shape = (config["psf_size"],) * 3
    if config["psf_init"] == "born_wolf":
        return born_wolf_psf(shape, _triple(config["voxel_size"], "voxel_size"), config["wavelength"] / 1000,
                             config["numerical_aperture"], config["refractive_index"])
    if config["psf_init"] == "gaussian":
        return gaussian_psf(shape, _triple(config["gaussian_sigma"], "gaussian_sigma"))
    return flat_psf(shape)


def data_statistics(volumes: dict | None) -> dict:
    """Initial output bias (logit of the sharp domain's mean) and gain (blurred mean / sharp mean)."""
    if not volumes:
        return {"output_bias": 0.0, "gain": 1.0}
    mean_x = float(np.mean([v.mean() for v in volumes["sharp_files"]]))
    mean_y = float(np.mean([v.mean() for v in volumes["blurred_files"]]))
    return {"output_bias": logit(mean_x), "gain": max(mean_y, 1e-3) / min(max(mean_x, 1e-3), 1 - 1e-3)}


def logit(p: float, eps: float = 1e-3) -> float:
    """``log(p / (1 - p))`` with ``p`` clamped to ``[eps, 1 - eps]`` (finite for empty or saturated data)."""
    p = min(max(float(p), eps), 1 - eps)
    return float(np.log(p / (1 - p)))


def build_model(config: dict, steps_per_epoch: int = 1, stats: dict | None = None) -> OTCycleGAN:
    p = config["patch_size"]
    stats = stats or data_statistics(None)
    generator = build_unet(
        ndim=3, in_channels=1, depth=config["depth"], base_filters=config["base_filters"], convs_per_level=2,
        bottleneck_convs=1, activation="relu", output_activation="sigmoid", output_bias=stats["output_bias"],
        name="generator",
    )
    forward_op = PSFConv3D(config["psf_size"], implementation="fft", learn_gain=True, name="forward_op")
    forward_op.set_psf(initial_psf(config))
    forward_op.set_gain(stats["gain"])
    critics = [
        build_multiscale_patchgan(3, 1, config["critic_filters"], config["critic_layers"], spatial_shape=(p, p, p),
                                  seed=config["seed"] + 10 * i, norm=config["critic_norm"], name=name)
        for i, name in enumerate(("critic_x", "critic_y"))
    ]
    model = OTCycleGAN(generator, forward_op, critics[0], critics[1], **common.gan_kwargs(config))
    model.compile(*optimizers(config, steps_per_epoch))
    return model


def optimizers(config: dict, steps_per_epoch: int) -> tuple:
    """Adam for G, the critics and the PSF (None without --psf_learning_rate), each constant
    until --decay_epoch, then linear to 0 at --epochs (paper D.2.1); every method of
    ``train/compare.py`` trains with these."""

    def schedule(rate, updates_per_step):
        steps = steps_per_epoch * updates_per_step
        return LinearDecayAfter(rate, config["decay_epoch"] * steps, config["epochs"] * steps)

    betas = (config["beta_1"], config["beta_2"])
    h_optimizer = adam(schedule(config["psf_learning_rate"], 1), *betas) if config["psf_learning_rate"] else None
    return (adam(schedule(config["learning_rate"], 1), *betas),
            adam(schedule(common.critic_learning_rate(config), config["n_critic"]), *betas), h_optimizer)


def tiled(generator, config):
    overlap = tile_overlap(config)

    def run(volume):
        return predict_tiled(lambda b: generator(b, training=False), volume, config["patch_size"], overlap)

    return run


def validation_fn(model, paths, config):
    """Panels of the first validation stack (centre patch) and the current PSF."""
    blurred = tiff.normalize(tiff.read_stack(paths[0]))
    gt_path = tiff.gt_path_for(paths[0]) if paths[0].endswith(("_blurred.tif", "_blurred.tiff")) else None
    gt = tiff.normalize(tiff.read_stack(gt_path)) if gt_path is not None and gt_path.exists() else None
    predict = tiled(model.generator, config)

    def evaluate():
        out = predict(blurred)
        scalars = {"val/change": relative_change(out, blurred)}
        panels = [volume_views(blurred), volume_views(out)]
        if gt is not None:
            scalars.update({"val/psnr": metrics.psnr(gt, out, 1.0), "val/psnr_input": metrics.psnr(gt, blurred, 1.0)})
            panels.append(volume_views(gt))
        row = np.concatenate(panels, axis=1)[None, ..., None]
        psf = model.forward_op.psf
        c = [n // 2 for n in psf.shape]
        sections = np.concatenate([psf[c[0]], psf[:, c[1], :]], axis=1)
        return scalars, {"val/xy_yz_xz_input_output_target": row,
                         "psf/xy_xz_sections": (sections / sections.max())[None, ..., None]}

    return evaluate


def inference_settings(config: dict) -> dict:
    """What ``python -m tf_otcycle.deconvolve`` needs to use the exported model as trained."""
    return export_settings(
        "microscopy", tile=config["patch_size"], overlap=tile_overlap(config),
        voxel_size=list(_triple(config["voxel_size"], "voxel_size")), wavelength_nm=config["wavelength"],
        psf_size=config["psf_size"], normalization="min-max per volume to [0, 1]",
    )


def tile_overlap(config: dict) -> int:
    """``--tile_overlap``, default a quarter of the patch."""
    return config["tile_overlap"] if config["tile_overlap"] is not None else config["patch_size"] // 4


def evaluate_and_export(config: dict, files: dict, model: OTCycleGAN) -> str:
    run_dir = Path(config["run_dir"])
    methods = {"input": lambda v: v, "ot_cyclegan": tiled(model.generator, config)}
    rows, summary = evaluate_microscopy(methods, files["test_files"], panel_dir=run_dir / "eval", num_panels=config["num_panels"])
    write_tables(rows, run_dir / "eval", ["method", "file", "psnr", "ssim"])
    table = write_tables(summary, run_dir / "eval", ["method", "file", "psnr", "ssim", "volumes"], name="summary")
    # The learned PSF, beside the true one when known.
    learned = model.forward_op.psf
    psf_dir = run_dir / "psf"
    tiff.write_stack(psf_dir / "learned_psf.tif", learned)
    shown = [learned]
    lines = []
    if config["true_psf"]:
        true = tiff.read_stack(config["true_psf"]).astype(np.float32)
        true = true / true.sum()
        sim = psf_similarity(learned, true, _triple(config["voxel_size"], "voxel_size"))
        sim_init = psf_similarity(initial_psf(config), true, _triple(config["voxel_size"], "voxel_size"))
        sim["ncc_initial"] = sim_init["ncc"]
        atomic_write_text(psf_dir / "similarity.json", json.dumps(sim, indent=2) + "\n")
        write_tables([sim], psf_dir, list(sim), name="similarity")
        shown.append(true)
        lines.append(f"PSF: NCC learned/true {sim['ncc']:.4f} (initial {sim['ncc_initial']:.4f}); FWHM z,y,x "
                     f"learned {sim['fwhm_z_learned']:.3f},{sim['fwhm_y_learned']:.3f},{sim['fwhm_x_learned']:.3f} "
                     f"true {sim['fwhm_z_true']:.3f},{sim['fwhm_y_true']:.3f},{sim['fwhm_x_true']:.3f} um")
    psf_panel(psf_dir / "psf_sections.png", shown)
    if config["export"]:
        paths = export_microscopy_generator(model.generator, learned, run_dir / "export",
                                            settings=inference_settings(config))
        lines.append(f"Exported {paths['keras']}, {paths['saved_model']} and {paths['psf']}")
    lines.append(f"\nTest metrics per folder ({run_dir / 'eval' / 'metrics.csv'} has one row per file):\n{table}")
    return "\n".join(lines)


def resolve_data(config: dict) -> tuple[dict, dict]:
    """Expand and check the file flags; read and normalise the training volumes."""
    _triple(config["voxel_size"], "voxel_size")
    try:
        files = {"test_files": expand_files(config["test_files"], "--test_files")}
        for path in files["test_files"]:
            tiff.gt_path_for(path)
        if config["val_files"]:
            files["val_files"] = expand_files(config["val_files"], "--val_files")
        volumes = {}
        if not config["eval_only"]:
            for name in ("blurred_files", "sharp_files"):
                files[name] = expand_files(config[name], f"--{name}")
                volumes[name] = tiff.load_domain(files[name], config["patch_size"], config["psf_size"], f"--{name}")
            overlap = set(map(str, files["blurred_files"])) & set(map(str, files["sharp_files"]))
            if overlap:
                raise ValueError(f"--blurred_files and --sharp_files must be disjoint; both hold {sorted(overlap)[:3]}")
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    return files, volumes


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = common.read_config(CONFIG_KEYS)
    errors = validate(config)
    if errors:
        raise app.UsageError("bad flags:\n  " + "\n  ".join(errors))
    files, volumes = resolve_data(config)
    steps = 1
    if not config["eval_only"]:
        voxels = sum(v.size for v in volumes["blurred_files"])
        steps = config["steps_per_epoch"] or max(1, voxels // config["patch_size"] ** 3 // config["batch_size"])

    def make_dataset():
        return tiff.unpaired_volume_dataset(volumes["sharp_files"], volumes["blurred_files"], config["patch_size"],
                                            config["batch_size"], config["seed"])

    def extra_callbacks(model):
        paths = files.get("val_files") or files["test_files"]
        return [ValidationCallback(validation_fn(model, paths, config), Path(config["run_dir"]) / "logs")]

    stats = data_statistics(volumes)
    common.run(config, lambda c: build_model(c, steps, stats), make_dataset, steps, extra_callbacks,
               lambda model: evaluate_and_export(config, files, model))


if __name__ == "__main__":
    app.run(main)
