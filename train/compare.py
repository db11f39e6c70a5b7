"""The paper's comparisons on any data the package reads (table 1 for MRI, table 2 for microscopy).

    python train/compare.py --flagfile=train/configs/compare_mri_demo.flags --run_dir=runs/compare_mri
    python train/compare.py --flagfile=train/configs/compare_microscopy_demo.flags --run_dir=runs/compare_mic

Trains every learned method with the same budget (--epochs x --steps_per_epoch generator
steps, same optimiser) on the same split, runs all methods on the same test files and writes
``<run_dir>/eval/metrics.csv`` / ``metrics.md`` (one row per method), per-file metrics, PNG
panels with all methods side by side and their error maps, and each learned model under
``<run_dir>/<method>/generator.keras``. ``--eval_only`` rebuilds the table from those models.

Methods: ``input`` (zero-filled / blurred), ``supervised`` (same generator, matched pairs),
``cyclegan`` (conventional, two deep generators), ``pls_tv`` (MRI) or ``richardson_lucy``
(microscopy), ``ot_cyclegan`` (the paper's).
"""

from __future__ import annotations

import time
from pathlib import Path

import common  # train/common.py
import keras
import microscopy as mic_entry  # train/microscopy.py (flags are defined once, shared)
import mri as mri_entry  # train/mri.py
import numpy as np
import tensorflow as tf
from absl import app, flags

from tf_otcycle import baselines
from tf_otcycle.classical import pls_tv, richardson_lucy
from tf_otcycle.data import fastmri, tiff
from tf_otcycle.evaluation import (
    evaluate_microscopy,
    evaluate_mri,
    generator_method,
    with_data_consistency,
    write_tables,
    zero_filled,
)
from tf_otcycle.export import export_keras
from tf_otcycle.io_utils import expand_files
from tf_otcycle.models import build_multiscale_patchgan, build_patchgan, build_unet
from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels
from tf_otcycle.tiling import predict_tiled
from tf_otcycle.training import ValidationCallback

flags.DEFINE_enum("application", "mri", ["mri", "microscopy"], "Which inverse problem (selects the data flags).")
flags.DEFINE_list("methods", ["input", "supervised", "cyclegan", "classical", "ot_cyclegan"],
                  "Methods to compare; 'classical' is pls_tv (MRI) or richardson_lucy (microscopy).")
flags.DEFINE_enum("supervised_loss", "l1", ["l1", "l2"], "Loss of the supervised baseline.")
flags.DEFINE_float("pls_lambda", 0.02, "TV weight of PLS-TV (images normalised to unit std).")
flags.DEFINE_integer("pls_iterations", 100, "MFISTA iterations of PLS-TV.")
flags.DEFINE_integer("rl_iterations", 20, "Richardson-Lucy iterations.")
flags.DEFINE_enum("rl_psf", "true", ["true", "learned", "initial"],
                  "PSF for Richardson-Lucy: --true_psf, the OT-cycleGAN's learned PSF, or the --psf_init PSF.")

FLAGS = flags.FLAGS
COMPARE_KEYS = ["application", "methods", "supervised_loss", "pls_lambda", "pls_iterations", "rl_iterations", "rl_psf"]
KNOWN = {"input", "supervised", "cyclegan", "classical", "ot_cyclegan", "zeros", "mean"}


def train_generator(model, dataset, config, name, run_dir, callbacks=()) -> tuple[keras.Model, float]:
    """Fit ``model`` with the shared budget, save its generator; return it and the seconds taken."""
    print(f"\n=== {name}: {config['epochs']} epochs x {config['steps_per_epoch']} steps", flush=True)
    log = keras.callbacks.TensorBoard(str(run_dir / name / "logs"), update_freq="epoch", write_graph=False)
    start = time.perf_counter()
    model.fit(dataset, epochs=config["epochs"], steps_per_epoch=config["steps_per_epoch"], callbacks=[log, *callbacks],
              verbose=2)
    seconds = time.perf_counter() - start
    generator = model if name == "supervised" else model.generator
    export_keras(generator, run_dir / name / "generator.keras")
    return generator, seconds


def validation_callbacks(model, name, config, files, run_dir) -> list:
    """Validation PSNR per epoch (printed in the epoch line as ``val_psnr``) where the entry
    point's validation applies: every MRI generator, the microscopy OT-cycleGAN."""
    log_dir = run_dir / name / "logs"
    if FLAGS.application == "mri" and files.get("val_files"):
        generator = model if name == "supervised" else model.generator
        return [ValidationCallback(mri_entry.validation_fn(generator, files["val_files"], config), log_dir)]
    if FLAGS.application == "microscopy" and name == "ot_cyclegan":
        paths = files.get("val_files") or files["test_files"]
        return [ValidationCallback(mic_entry.validation_fn(model, paths, config), log_dir)]
    return []


def load_generator(run_dir: Path, name: str) -> keras.Model:
    path = run_dir / name / "generator.keras"
    if not path.exists():
        raise app.UsageError(f"--eval_only: {path} missing; train {name} first")
    return keras.saving.load_model(path)


# === MRI ===


def mri_models(config, files, run_dir):
    def unet(name):
        return build_unet(2, 2, depth=config["depth"], base_filters=config["base_filters"], residual=config["residual"], name=name)

    def critic(name):
        return build_patchgan(2, 2, config["critic_filters"], config["critic_layers"], norm=config["critic_norm"], name=name)

    data = dict(crop_size=config["crop_size"], acceleration=config["acceleration"],
                center_fraction=config["center_fraction"], mask_type=config["mask_type"],
                batch_size=config["batch_size"], seed=config["seed"], cache=config["cache_images"])
    gan = common.gan_kwargs(config)
    unpaired = lambda: fastmri.unpaired_mri_dataset(files["clean_files"], files["measured_files"], **data)  # noqa: E731
    builders = {
        "ot_cyclegan": lambda: (mri_entry.build_model(config), unpaired()),
        "cyclegan": lambda: (_compiled(baselines.conventional_cyclegan(
            unet("generator"), unet("inverse_generator"), critic("critic_x"), critic("critic_y"), **gan), config), unpaired()),
        # Pairs exist for the measured files (they are fully sampled): the supervised upper reference.
        "supervised": lambda: (baselines.supervised(unet("generator"), config["supervised_loss"], supervised_optimizer(config)),
                               baselines.as_pairs(fastmri.paired_mri_dataset(files["measured_files"], **data))),
    }
    return builders


def mri_methods(config, generators):
    methods = {}
    for name in config["methods"]:
        if name == "input":
            methods["input"] = zero_filled
        elif name == "classical":
            def pls(y, mask):
                x, _ = pls_tv(tf.constant(channels_to_complex(y)), tf.constant(mask), config["pls_lambda"], config["pls_iterations"])
                return complex_to_channels(x).numpy()
            methods["pls_tv"] = pls
        else:
            methods[name] = generator_method(generators[name])
            if name == "ot_cyclegan":  # the serving signature's data-consistency variant
                methods["ot_cyclegan+dc"] = with_data_consistency(methods[name])
    return methods


# === microscopy ===


def microscopy_models(config, files, volumes, run_dir):
    p = config["patch_size"]
    stats = mic_entry.data_statistics(volumes)

    def unet(name, bias):
        return build_unet(3, 1, depth=config["depth"], base_filters=config["base_filters"], bottleneck_convs=1,
                          activation="relu", output_activation="sigmoid", output_bias=bias, name=name)

    def critic(name, i):
        return build_multiscale_patchgan(3, 1, config["critic_filters"], config["critic_layers"], spatial_shape=(p, p, p),
                                         seed=config["seed"] + 10 * i, norm=config["critic_norm"], name=name)

    gan = common.gan_kwargs(config)
    unpaired = lambda: tiff.unpaired_volume_dataset(volumes["sharp_files"], volumes["blurred_files"], p,  # noqa: E731
                                                    config["batch_size"], config["seed"])
    mean_y = float(np.mean([v.mean() for v in volumes["blurred_files"]]))
    bias_y = mic_entry.logit(mean_y)

    def paired():
        gts = [tiff.gt_path_for(f) for f in files["blurred_files"]]
        missing = [str(g) for g in gts if not g.exists()]
        if missing:
            raise app.UsageError(f"supervised: no ground truth {missing[0]} beside its blurred file")
        sharp = tiff.load_domain([str(g) for g in gts], p, config["psf_size"], "ground truth of --blurred_files")
        return baselines.as_pairs(tiff.paired_volume_dataset(sharp, volumes["blurred_files"], p, config["batch_size"], config["seed"]))

    return {
        "ot_cyclegan": lambda: (mic_entry.build_model(config, config["steps_per_epoch"], stats), unpaired()),
        "cyclegan": lambda: (_compiled(baselines.conventional_cyclegan(
            unet("generator", stats["output_bias"]), unet("inverse_generator", bias_y), critic("critic_x", 0),
            critic("critic_y", 1), **gan), config), unpaired()),
        "supervised": lambda: (baselines.supervised(unet("generator", stats["output_bias"]), config["supervised_loss"],
                                                    supervised_optimizer(config)),
                               paired()),
    }


def microscopy_methods(config, generators, learned_psf, mean_sharp):
    overlap = mic_entry.tile_overlap(config)
    methods = {}
    for name in config["methods"]:
        if name == "input":
            methods["input"] = lambda v: v
        elif name == "zeros":  # trivial reference: sparse ground truth scores well against an empty volume
            methods["zeros"] = np.zeros_like
        elif name == "mean":  # trivial reference: the clean domain's mean intensity everywhere
            methods["mean"] = lambda v: np.full_like(v, mean_sharp)
        elif name == "classical":
            if config["rl_psf"] == "true":
                if not config["true_psf"]:
                    raise app.UsageError("--rl_psf=true needs --true_psf")
                psf = tiff.read_stack(config["true_psf"]).astype(np.float32)
            elif config["rl_psf"] == "learned":
                if learned_psf is None:
                    raise app.UsageError("--rl_psf=learned needs the ot_cyclegan method")
                psf = learned_psf
            else:
                psf = mic_entry.initial_psf(config)
            # RL preserves flux, not the [0, 1] range: rescale its output like every input.
            methods["richardson_lucy"] = lambda v, psf=psf: tiff.normalize(richardson_lucy(v, psf, config["rl_iterations"]))
        else:
            g = generators[name]
            methods[name] = lambda v, g=g: predict_tiled(lambda b: g(b, training=False), v, config["patch_size"], overlap)
    return methods


def _compiled(model, config):
    """Compile a GAN baseline with the task's optimizers (the OT-cycleGAN's, schedule included)."""
    g_optimizer, d_optimizer, _ = entry_point().optimizers(config, config["steps_per_epoch"])
    model.compile(g_optimizer, d_optimizer)
    return model


def supervised_optimizer(config):
    """The generator optimizer of the task (schedule included), for the supervised baseline."""
    return entry_point().optimizers(config, config["steps_per_epoch"])[0]


def entry_point():
    """The chosen application's entry point module (its flags, data and model builders)."""
    return mri_entry if FLAGS.application == "mri" else mic_entry


def _mean_sharp(config, volumes) -> float:
    """Mean intensity of the normalised clean (sharp) training volumes."""
    sharp = volumes.get("sharp_files") if volumes else None
    if sharp is None:
        sharp = [tiff.normalize(tiff.read_stack(p)) for p in expand_files(config["sharp_files"], "--sharp_files")]
    return float(np.mean([v.mean() for v in sharp]))


def _params(generators: dict, name: str) -> int:
    if name in generators:
        return int(generators[name].count_params())
    return 0


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    entry = entry_point()
    common.apply_defaults(entry.COMMON_DEFAULTS)
    config = common.read_config(entry.CONFIG_KEYS + COMPARE_KEYS)
    unknown = set(config["methods"]) - KNOWN
    errors = entry.validate(config) + ([f"--methods: unknown {sorted(unknown)}; choose from {sorted(KNOWN)}"] if unknown else [])
    if errors:
        raise app.UsageError("bad flags:\n  " + "\n  ".join(errors))
    run_dir = Path(config["run_dir"])
    keras.utils.set_random_seed(config["seed"])
    tf.config.optimizer.set_experimental_options({"remapping": False})
    if FLAGS.application == "mri":
        try:
            files = mri_entry.resolve_files(config)
        except (ValueError, fastmri.FastMRIFormatError) as e:
            raise app.UsageError(str(e)) from None
        volumes = None
        if config["steps_per_epoch"] is None and not config["eval_only"]:
            config["steps_per_epoch"] = max(1, sum(i.num_slices for i in files["measured_files"]) // config["batch_size"])
    else:
        files, volumes = mic_entry.resolve_data(config)
        if config["steps_per_epoch"] is None and not config["eval_only"]:
            voxels = sum(v.size for v in volumes["blurred_files"])
            config["steps_per_epoch"] = max(1, voxels // config["patch_size"] ** 3 // config["batch_size"])
    if not config["eval_only"]:  # the training run's flags.txt stays the record of training
        common.save_flags(run_dir, common.flags_text(config), config)

    learned = [m for m in ("supervised", "cyclegan", "ot_cyclegan") if m in config["methods"]]
    generators, learned_psf, train_seconds = {}, None, {}
    if config["eval_only"]:
        generators = {m: load_generator(run_dir, m) for m in learned}
        psf_path = run_dir / "ot_cyclegan" / "learned_psf.tif"
        if psf_path.exists():
            learned_psf = tiff.read_stack(psf_path)
    else:
        builders = mri_models(config, files, run_dir) if FLAGS.application == "mri" else microscopy_models(config, files, volumes, run_dir)
        for name in learned:
            keras.utils.set_random_seed(config["seed"])
            model, dataset = builders[name]()
            callbacks = validation_callbacks(model, name, config, files, run_dir)
            generators[name], train_seconds[name] = train_generator(model, dataset, config, name, run_dir, callbacks)
            if name == "ot_cyclegan" and FLAGS.application == "microscopy":
                learned_psf = model.forward_op.psf
                tiff.write_stack(run_dir / name / "learned_psf.tif", learned_psf)

    eval_dir = run_dir / "eval"
    if FLAGS.application == "mri":
        methods = mri_methods(config, generators)
        summary, per_file = evaluate_mri(methods, files["test_files"], config["crop_size"], config["mask_type"],
                                         config["acceleration"], config["center_fraction"], eval_dir, config["num_panels"])
        time_key = "seconds_per_slice"
    else:
        methods = microscopy_methods(config, generators, learned_psf, _mean_sharp(config, volumes))
        per_file, _ = evaluate_microscopy(methods, files["test_files"], eval_dir, config["num_panels"])
        summary = []
        for name in methods:
            rows = [r for r in per_file if r["method"] == name]
            summary.append({"method": name, **{k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim", "nmse")},
                            "seconds_per_volume": float(np.mean([r["seconds"] for r in rows])), "volumes": len(rows)})
        time_key = "seconds_per_volume"
    for row in summary:
        row["params"] = _params(generators, row["method"])
        row["train_seconds"] = train_seconds.get(row["method"])
    table = write_tables(summary, eval_dir, ["method", "psnr", "ssim", "nmse", time_key, "params", "train_seconds", "volumes"])
    write_tables(per_file, eval_dir, ["method", "file", "psnr", "ssim", "nmse"], name="per_file")
    print(f"\nComparison on {len(files['test_files'])} test files ({eval_dir / 'metrics.csv'}):\n{table}")


if __name__ == "__main__":
    app.run(main)
