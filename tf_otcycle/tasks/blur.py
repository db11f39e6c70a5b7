"""What the blur tasks share (3-D microscopy, 2-D deblurring): ``H x = g (h * x) + b`` with a
learned non-negative PSF, sigmoid U-Nets, multi-scale PatchGAN critics, images normalised to
[0, 1], linear learning-rate decay, tiled inference, Richardson-Lucy (with and without TV) as
the classical baseline, and the zeros / mean references. A subclass gives the dimension, the
PSF layer and its start, the pixel size and, where not TIFF, the reader.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from tf_otcycle import metrics
from tf_otcycle.classical import richardson_lucy
from tf_otcycle.data import tiff
from tf_otcycle.evaluation import Sample, volume_views, write_psf_panel, write_tables
from tf_otcycle.export import export_microscopy_generator
from tf_otcycle.io_utils import atomic_write_text, exists, expand_files
from tf_otcycle.layers import PSFConv2D, PSFConv3D
from tf_otcycle.models import build_multiscale_patchgan, build_unet, predictor
from tf_otcycle.physics.beads import OFFSET_FRACTION, median_fraction
from tf_otcycle.physics.convolution import SYMMETRIES
from tf_otcycle.physics.noise import (
    affine_match,
    chi_square,
    estimate_background,
    estimate_poisson_gaussian,
    parse_noise,
)
from tf_otcycle.physics.psf import (
    blur,
    file_kernel,
    psf_similarity,
)
from tf_otcycle.tasks.base import (
    Task,
    batch_size,
    divisible,
    grid_values,
    learning_rate,
    logit,
    pipeline_seed,
    shard,
)
from tf_otcycle.tasks.config import CommonConfig, boolean, enum, integer, own_flags, real, reset, string
from tf_otcycle.tiling import predict_tiled
from tf_otcycle.training import adam, relative_change


@dataclasses.dataclass(frozen=True)
class BlurConfig(CommonConfig):
    """The flags the blur tasks share: their objective and schedule defaults, data, PSF and baseline."""

    decay_epoch: int | None = reset("decay_epoch", 40)  # paper D.2.1
    # the blur tasks' objective: split cycle gradients and a light adversarial weight
    # (benchmarks/QUALITY.md, microscopy notes; docs/objective.md)
    cycle_gradients: str = reset("cycle_gradients", "split")
    gan_weight: float = reset("gan_weight", 0.1)
    blurred_files: str | None = string(
        None, "Glob(s), comma-separated: blurred widefield files, the measurement domain Y.")
    sharp_files: str | None = string(None, "Glob(s): sharp files of *other* samples, the image domain X.")
    test_files: str | None = string(
        None, "Glob(s): blurred test files NAME_blurred.<ext> with NAME_gt.<ext> beside them.", may_change=True)
    val_files: str | None = string(
        None, "Glob(s): validation files (NAME_blurred [+ NAME_gt]) for TensorBoard panels.", may_change=True)
    patch_size: int = integer(64, "Training patch size (paper: 64); divisible by 2**depth.")
    psf_size: int | None = integer(
        None, "Size of the learned PSF kernel per axis; default --patch_size, the largest that fits a training patch: "
        "a widefield PSF spreads its light over every defocused plane, and a smaller kernel truncates it, so the "
        "learned PSF drifts toward its window's edges and G is trained against a wrong H (paper: 20; "
        "benchmarks/ABLATION_microscopy.md).", before=20)
    psf_init: str = enum(
        "born_wolf", ("born_wolf", "gaussian", "flat", "file"),
        "Initial PSF: born_wolf (--wavelength, --numerical_aperture, --refractive_index), gaussian, "
        "flat, or file (--psf_file: a measured PSF). With the emission wavelength unknown, a Born & Wolf start "
        "at a guessed one (509 nm, the minimax over 400-700 nm) lost at most 0.27 dB against the true "
        "wavelength's start on the microscopy benchmark sets (three-seed means), a flat start up to 0.43 dB (one "
        "seed; benchmarks/ABLATION_microscopy.md).")
    wavelength: float = real(500.0, "Emission wavelength in nm for the Born & Wolf initial PSF.")
    numerical_aperture: float = real(1.4, "NA for the Born & Wolf initial PSF.")
    refractive_index: float = real(1.5, "Immersion refractive index for the Born & Wolf initial PSF.")
    psf_file: str | None = string(
        None, "With --psf_init=file: TIFF of the PSF to start from (e.g. measured from sub-resolution beads, "
        "background subtracted): resampled to --voxel_size when its own metadata gives another, centred on its "
        "peak, cropped or padded to --psf_size, normalised to unit sum. A field of beads: the sum of the kernels "
        "about each bead alone in the kernel's window.", before=None)
    true_psf: str | None = string(
        None, "Optional TIFF of the true PSF, compared with the learned one (and Richardson-Lucy's).", may_change=True)
    psf_symmetry: str = enum(
        "none", SYMMETRIES,
        "Symmetry imposed on the learned PSF: none (the paper's free kernel) or lateral (the mean over the lateral "
        "flips and quarter turns about the optical axis, the symmetries of an aberration-free widefield PSF).",
        before="none")
    psf_learning_rate: float | None = real(
        None, "Adam learning rate of the learned PSF and gain; default --learning_rate. Blind starts "
        "(--psf_init=gaussian|flat) need a larger one: Adam moves each kernel value by about this much per step.")
    measurement_noise: str = string(
        "auto",
        "Noise drawn on the simulated measurement Hx in training, Var = GAIN * Hx + VARIANCE (normalised units): "
        "auto (estimated from --blurred_files), none (the paper's noise-free Hx) or GAIN,VARIANCE.", before="none")
    learn_background: bool = boolean(
        True,
        "Learn an additive background b in H x = g (h * x) + b (not in the paper): the camera offset and haze of "
        "widefield stacks, which no blur of a clean image reproduces; started from the blurred stacks' darkest "
        "local mean. false: the paper's H x = h * x (with a gain).", before=False)
    scale_augment: str = enum(
        "both", tiff.SCALE_AUGMENT,
        "Which training patches are also zoomed by 0.8-1.25 (besides flips, lateral 90-degree rotations and "
        "translation): both (the paper), sharp (the image domain only; a zoomed measurement has another PSF than "
        "the one H learns) or none.", before="both")
    tile_overlap: int | None = integer(None, "Overlap of inference tiles; default patch_size // 4.", may_change=True)
    rl_iterations: int = integer(
        20, "Richardson-Lucy iterations (the classical baseline) when not tuned.", may_change=True)
    rl_iterations_grid: str = string(
        "5,10,20,40,80,160",
        "Richardson-Lucy iteration counts to choose from by validation PSNR (--val_files with NAME_gt), as a user "
        "tunes the classical baseline; empty: --rl_iterations.", may_change=True)
    rl_tv_weight: float = real(
        0.002, "TV weight of Richardson-Lucy-TV (richardson_lucy_tv) when not tuned.", may_change=True)
    rl_tv_weight_grid: str = string(
        "0.001,0.002,0.005,0.01,0.02,0.05",
        "Richardson-Lucy-TV weights to choose from by validation PSNR, with each --rl_iterations_grid count; "
        "empty: --rl_tv_weight.", may_change=True)
    rl_psf: str = enum(
        "true", ("true", "learned", "initial"),
        "PSF for Richardson-Lucy: --true_psf, the OT-cycleGAN's learned PSF, or the --psf_init PSF.", may_change=True)


BLUR_FLAGS = own_flags(BlurConfig)
BLUR_OBJECTIVE = dict(cycle_gradients="split", gan_weight=0.1)  # the resets above, for scripts that read it


class BlurTask(Task):
    """What the 3-D microscopy and 2-D deblurring tasks share: a learned PSF, sigmoid U-Nets,
    multi-scale PatchGANs, [0, 1] images, linear learning-rate decay, tiled inference,
    Richardson-Lucy, and the zeros / mean references. Subclasses set ``ndim`` and the data."""

    config_class = BlurConfig
    ndim = 3
    unit = "volume"
    classical_name = "richardson_lucy"
    classical_names = ("richardson_lucy", "richardson_lucy_tv")
    training_files = ("blurred_files", "sharp_files")
    # deconvolution is judged after an affine intensity fit: G's output scale drifts against
    # H's learned gain, and the plain PSNR chose epochs by that drift (ABLATION_microscopy.md)
    quality_key = "val_psnr_affine"
    symmetry_axes = (2, 3)  # (B, D, H, W, C): the lateral plane, which a widefield PSF commutes with

    # --- shared flag checks ------------------------------------------------------------------
    def validate(self, config):
        errors = super().validate(config)
        if config.patch_size < 4:
            errors.append(f"--patch_size must be >= 4, got {config.patch_size}")
        else:
            errors += divisible("patch_size", config.patch_size, config.depth)
        if config.psf_size is not None and not 1 <= config.psf_size <= config.patch_size:
            errors.append(f"--psf_size must be in [1, patch_size={config.patch_size}], got {config.psf_size}")
        if config.psf_learning_rate is not None and not config.psf_learning_rate > 0:
            errors.append(f"--psf_learning_rate must be > 0, got {config.psf_learning_rate}")
        if config.tile_overlap is not None and not 0 <= config.tile_overlap <= config.patch_size // 2:
            errors.append(f"--tile_overlap must be in [0, patch_size // 2 = {config.patch_size // 2}], "
                          f"got {config.tile_overlap}")
        if (config.psf_init == "file") != bool(config.psf_file):
            errors.append("--psf_init=file and --psf_file go together: give both or neither, got "
                          f"--psf_init={config.psf_init} --psf_file={config.psf_file or ''}")
        if not config.wavelength > 0:
            errors.append(f"--wavelength must be > 0 (nm), got {config.wavelength}")
        if not 0 < config.numerical_aperture < config.refractive_index:
            errors.append("--numerical_aperture must be in (0, refractive_index)")
        for check in (lambda: parse_noise(config.measurement_noise), lambda: rl_grid(config),
                      lambda: grid_values(config.rl_tv_weight_grid, "rl_tv_weight_grid")):
            try:
                check()
            except ValueError as e:
                errors.append(str(e))
        return errors

    # --- data ----------------------------------------------------------------------------------
    def read(self, path, config: BlurConfig | None = None) -> np.ndarray:
        """One file of the task, checked, in its stored dtype (``config``: the data's
        ``--channel`` for multi-channel stacks; PSFs are read without it)."""
        return tiff.read_stack(path, None if config is None else self.channel(config))

    def psf_size(self, config: BlurConfig) -> int:
        """The learned PSF's size per axis: ``--psf_size``, by default the patch size."""
        return config.psf_size or config.patch_size

    def channel(self, config: BlurConfig) -> int | None:
        """The channel of multi-channel files to read (microscopy's ``--channel``); none here."""
        return None

    def gt_path(self, path) -> str:
        return tiff.gt_path_for(path)

    def load_domain(self, paths, config, what) -> list[np.ndarray]:
        return tiff.load_domain(paths, config.patch_size, self.psf_size(config), what, self.channel(config))

    def resolve_data(self, config):
        """Expand and check the file flags; read and normalise the training files."""
        files = {"test_files": expand_files(config.test_files, "--test_files") if config.test_files else []}
        for path in files["test_files"]:  # before training: evaluation needs every ground truth
            gt = self.gt_path(path)
            if not exists(gt):
                raise ValueError(f"{path}: no ground truth {Path(gt).name} beside it (--test_files need NAME_gt)")
        if config.true_psf:
            psf = self.read(config.true_psf)  # names the file if it is not a PSF of this task's rank
            if psf.min() < 0 or psf.sum() <= 0:
                raise ValueError(f"{config.true_psf}: a PSF must be non-negative with a positive sum")
        if config.psf_file:
            image = self.read(config.psf_file)
            _, beads = self.psf_file_kernel(config, image)  # before training: names the file if it is no usable PSF
            found, used = self.file_voxel_size(config.psf_file), self.voxel_size(config)
            stored = f"{found} in its metadata" if found else "not in its metadata"
            print(f"--psf_file {config.psf_file}: voxel size {stored}; H's kernel is sampled at {used}, "
                  f"from {beads} bead{'s' if beads > 1 else ''} alone in its window", flush=True)
            background = median_fraction(image)
            if background > OFFSET_FRACTION:
                fit = ", or add --psf_file_fit (it fits a background)" if hasattr(config, "psf_file_fit") else ""
                print(f"WARNING: --psf_file {config.psf_file}: its median is {background:.1%} of its "
                      "maximum (a widefield PSF's own defocused light: 0.1-1.3 % on the fields measured): a camera "
                      "offset is likely left in it, and it becomes a flat part of H's kernel. Subtract the dark offset "
                      f"first{fit}.", flush=True)
        if config.val_files:
            files["val_files"] = expand_files(config.val_files, "--val_files")
        volumes = {}
        if not config.eval_only:
            for name in ("blurred_files", "sharp_files"):
                files[name] = expand_files(config[name], f"--{name}")
                volumes[name] = self.load_domain(files[name], config, f"--{name}")
            overlap = set(map(str, files["blurred_files"])) & set(map(str, files["sharp_files"]))
            if overlap:
                raise ValueError(f"--blurred_files and --sharp_files must be disjoint; both hold {sorted(overlap)[:3]}")
        stats = data_statistics(volumes)
        if volumes and parse_noise(config.measurement_noise) is None:
            stats["noise"] = estimate_poisson_gaussian(volumes["blurred_files"])
            print(f"Measurement noise estimated from the {len(volumes['blurred_files'])} --blurred_files: "
                  f"Var(y) = {stats['noise'][0]:.4g} * E[y] {'-' if stats['noise'][1] < 0 else '+'} "
                  f"{abs(stats['noise'][1]):.3g} (normalised units; a negative term: a camera offset; "
                  "--measurement_noise=none for the paper's noise-free Hx)", flush=True)
        if volumes and config.learn_background:
            print(f"Background of the --blurred_files (start of H's learned background): {stats['background']:.4g} "
                  "(normalised units; --nolearn_background for the paper's H x = h * x)", flush=True)
        return {"files": files, "volumes": volumes, "stats": stats}

    def sample_voxels(self, config):
        return config.patch_size ** self.ndim

    def sample_shape(self, config):
        return (config.patch_size,) * self.ndim + (1,)

    def steps_per_epoch(self, config, data):
        if config.steps_per_epoch:
            return config.steps_per_epoch
        voxels = sum(v.size for v in data["volumes"]["blurred_files"])
        return max(1, voxels // config.patch_size ** self.ndim // config.batch_size)

    def unpaired_dataset(self, config, data, input_context=None):
        v = data["volumes"]
        return tiff.unpaired_volume_dataset(shard(v["sharp_files"], input_context),
                                            shard(v["blurred_files"], input_context),
                                            config.patch_size, batch_size(config, input_context),
                                            pipeline_seed(config, input_context), scale_augment=config.scale_augment)

    def paired_dataset(self, config, data):
        gts = [self.gt_path(f) for f in data["files"]["blurred_files"]]
        missing = [g for g in gts if not exists(g)]
        if missing:
            raise ValueError(f"supervised: no ground truth {missing[0]} beside its blurred file")
        sharp = self.load_domain([str(g) for g in gts], config, "ground truth of --blurred_files")
        ds = tiff.paired_volume_dataset(sharp, data["volumes"]["blurred_files"], config.patch_size,
                                        config.batch_size,
                                        config.seed)
        return ds.map(lambda d: (d["y"], d["x"]))

    # --- networks and the physics ----------------------------------------------------------
    def generator(self, config, data, name="generator", domain="x"):
        stats = (data or {}).get("stats") or data_statistics(None)
        bias = stats["output_bias"] if domain == "x" else stats["input_bias"]
        return build_unet(ndim=self.ndim, in_channels=1, depth=config.depth, base_filters=config.base_filters,
                          convs_per_level=2, bottleneck_convs=1, activation="relu", output_activation="sigmoid",
                          output_bias=bias, name=name)

    def critic(self, config, domain):
        p = config.patch_size
        return build_multiscale_patchgan(self.ndim, 1, config.critic_filters, config.critic_layers,
                                         spatial_shape=(p,) * self.ndim,
                                         seed=config.seed + (0 if domain == "x" else 10),
                                         norm=config.critic_norm, name=f"critic_{domain}")

    def psf_layer(self, config):
        """H's layer (``PSFConv2D`` / ``PSFConv3D`` by the task's ``ndim``), before its PSF, gain and
        background are set."""
        layer = {2: PSFConv2D, 3: PSFConv3D}[self.ndim]
        return layer(self.psf_size(config), implementation="fft", learn_gain=True,
                     learn_background=config.learn_background, symmetry=config.psf_symmetry, name="forward_op")

    def forward_op(self, config, data):
        """H: the initial PSF, the gain (and with --learn_background the background) from the
        training data's statistics."""
        stats = (data or {}).get("stats") or data_statistics(None)
        layer = self.psf_layer(config)
        layer.set_psf(self.initial_psf(config))
        if config.learn_background:
            layer.set_background(stats["background"])
            layer.set_gain(stats["gain_above_background"])
        else:
            layer.set_gain(stats["gain"])
        return layer

    def initial_psf(self, config) -> np.ndarray:
        """H's PSF at the start (``--psf_init``): the ``--psf_file`` kernel, or the task's model."""
        return self.file_psf(config) if config.psf_init == "file" else self.model_psf(config)

    def file_psf(self, config) -> np.ndarray:
        """The ``--psf_file`` PSF as H's kernel."""
        return self.psf_file_kernel(config, self.read(config.psf_file))[0]

    def psf_file_kernel(self, config, image: np.ndarray) -> tuple[np.ndarray, int]:
        """``image`` (the ``--psf_file``'s contents) as H's kernel, and the number of beads in it
        (:func:`tf_otcycle.physics.psf.file_kernel`)."""
        return file_kernel(image, (self.psf_size(config),) * self.ndim, self.file_voxel_size(config.psf_file),
                           self.voxel_size(config), config.psf_file)

    def model_psf(self, config) -> np.ndarray:
        """The ``--psf_init=born_wolf|gaussian|flat`` PSF of the task's rank, unit sum."""
        raise NotImplementedError

    def file_voxel_size(self, path) -> tuple[float, ...] | None:
        """The voxel size stored in a PSF file's metadata (None: unknown, used as it is)."""
        return None

    def noise(self, config, data):
        """``--measurement_noise``: given, none, or (auto) estimated from the normalised
        ``--blurred_files`` (:func:`estimate_poisson_gaussian`, in ``data["stats"]``)."""
        given = parse_noise(config.measurement_noise)
        gain, floor = given if given is not None else ((data or {}).get("stats") or {}).get("noise", (0.0, 0.0))
        return {"noise_gain": gain, "noise_floor": floor}

    def optimizers(self, config, steps_per_epoch):
        """The shared optimizers (decaying after --decay_epoch, paper D.2.1) and Adam for the
        PSF with the same schedule (None without --psf_learning_rate: G's optimizer updates it)."""
        g_optimizer, d_optimizer, _ = super().optimizers(config, steps_per_epoch)
        rate = config.psf_learning_rate
        h_optimizer = adam(learning_rate(config, rate, steps_per_epoch), config.beta_1,
                           config.beta_2) if rate else None
        return g_optimizer, d_optimizer, h_optimizer

    # --- evaluation --------------------------------------------------------------------------
    def samples(self, config, data, split="test_files"):
        for path in data["files"][split]:
            blurred = tiff.normalize(self.read(path, config))
            gt_path = self.gt_path(path)
            if not exists(gt_path):
                raise ValueError(f"{path}: no ground truth {Path(gt_path).name} beside it")
            gt = tiff.normalize(self.read(gt_path, config))
            if gt.shape != blurred.shape:
                raise ValueError(f"{gt_path}: shape {gt.shape} differs from {path} {blurred.shape}")
            yield Sample(name=Path(path).name, group=Path(path).parent.name, inputs=(blurred,), target=gt,
                         panel="volume" if self.ndim == 3 else "image")

    def tile_overlap(self, config) -> int:
        return config.tile_overlap if config.tile_overlap is not None else config.patch_size // 4

    def generator_method(self, config, generator):
        overlap = self.tile_overlap(config)
        return lambda v: predict_tiled(predictor(generator), v, config.patch_size, overlap)

    def reference_methods(self, config, data, names):
        methods = {}
        if "zeros" in names:  # sparse ground truth scores well against an empty volume
            methods["zeros"] = np.zeros_like
        if "mean" in names:  # the clean domain's mean intensity everywhere
            mean = mean_sharp(config, data, self)
            methods["mean"] = lambda v: np.full_like(v, mean)
        return methods

    def classical_grid(self, config, name):
        """Richardson-Lucy's iteration counts (and RL-TV's weights) of the grid flags."""
        counts = [{"rl_iterations": n} for n in rl_grid(config)]
        if name != "richardson_lucy_tv":
            return counts
        weights = grid_values(config.rl_tv_weight_grid, "rl_tv_weight_grid")
        if not counts and not weights:
            return []
        counts = counts or [{"rl_iterations": config.rl_iterations}]
        return [{**c, "rl_tv_weight": w} for c in counts for w in (weights or [config.rl_tv_weight])]

    def classical_method(self, config, data, model=None, name=None):
        tv_weight = config.rl_tv_weight if name == "richardson_lucy_tv" else 0.0
        if config.rl_psf == "true":
            if not config.true_psf:
                raise ValueError("--rl_psf=true needs --true_psf")
            psf = self.read_psf(config.true_psf)
        elif config.rl_psf == "learned":
            if model is None:
                raise ValueError("--rl_psf=learned needs the ot_cyclegan method")
            psf = model.forward_op.psf
        else:
            psf = self.initial_psf(config)
        # RL preserves flux, not the [0, 1] range: rescale its output like every input.
        return lambda v: tiff.normalize(richardson_lucy(v, psf, config.rl_iterations, tv_weight))

    def write_psf(self, path, psf, config) -> None:
        tiff.write_stack(path, psf, self.voxel_size(config) if psf.ndim == 3 else None)

    def read_psf(self, path) -> np.ndarray:
        psf = np.asarray(self.read(path), np.float32)
        return psf / psf.sum()

    def validation(self, config, data, model):
        """Panels of the first validation file (or test file) and, for the OT model, the PSF."""
        paths = data["files"].get("val_files") or data["files"]["test_files"]
        if not paths:
            return None
        blurred = tiff.normalize(self.read(paths[0], config))
        gt_path = self.gt_path(paths[0]) if str(paths[0]).rsplit(".", 1)[0].endswith("_blurred") else None
        gt = tiff.normalize(self.read(gt_path, config)) if gt_path is not None and exists(gt_path) else None
        generator = model.generator if hasattr(model, "generator") else model
        predict = self.generator_method(config, generator)
        views = volume_views if self.ndim == 3 else (lambda a: a)
        forward_op = getattr(model, "forward_op", None)
        noise = estimate_poisson_gaussian([blurred])  # of this file, in its normalised units
        true_psf = self.read_psf(config.true_psf) if config.true_psf else None

        def evaluate():
            out = predict(blurred)
            psf = getattr(forward_op, "psf", None)  # the OT model's learned PSF (a deep F has none)
            h = psf if psf is not None else self.initial_psf(config)
            # G's output is known up to an affine intensity map: its offset blurs to offset * (h * 1)
            chi2 = chi_square(blurred, affine_match(blur(out, h), blurred, blur(np.ones_like(out), h)), *noise)
            scalars = {"val/change": relative_change(out, blurred), "val/chi2": chi2,
                       "val/consistency": -abs(float(np.log(max(chi2, 1e-12))))}
            panels = [views(blurred), views(out)]
            if gt is not None:
                scalars.update({"val/psnr": metrics.psnr(gt, out, 1.0),
                                "val/psnr_input": metrics.psnr(gt, blurred, 1.0),
                                "val/psnr_affine": metrics.psnr_affine(gt, out, 1.0)})
                panels.append(views(gt))
            images = {"val/input_output_target": np.concatenate(panels, axis=1)[None, ..., None]}
            if psf is not None and true_psf is not None:  # does the learned PSF stay (or become) correct?
                scalars.update(psf_scalars(psf, true_psf, self.voxel_size(config)))
            if psf is not None:
                if psf.ndim == 3:
                    c = [n // 2 for n in psf.shape]
                    psf = np.concatenate([psf[c[0]], psf[:, c[1], :]], axis=1)
                images["psf/sections"] = (psf / psf.max())[None, ..., None]
            return scalars, images

        return evaluate

    # --- results and export --------------------------------------------------------------
    def voxel_size(self, config) -> tuple[float, ...]:
        """The pixel or voxel size per axis, micrometres."""
        raise NotImplementedError

    def report_model(self, model, config, data, run_dir):
        """The learned PSF as TIFF, its sections, and its similarity to --true_psf."""
        learned = model.forward_op.psf
        psf_dir = Path(run_dir) / "psf"
        self.write_psf(psf_dir / "learned_psf.tif", learned, config)
        shown, lines = {"learned": learned}, []
        if config.true_psf:
            true = self.read_psf(config.true_psf)
            sim = psf_similarity(learned, true, self.voxel_size(config))
            sim["ncc_initial"] = psf_similarity(self.initial_psf(config), true, self.voxel_size(config))["ncc"]
            atomic_write_text(psf_dir / "similarity.json", json.dumps(sim, indent=2) + "\n")
            write_tables([sim], psf_dir, list(sim), name="similarity")
            shown["true"] = true
            axes = "zyx"[-learned.ndim:]

            def widths(kind):
                return ",".join(f"{sim['fwhm_' + a + '_' + kind]:.3f}" for a in axes)

            lines.append(f"PSF: NCC learned/true {sim['ncc']:.4f} (initial {sim['ncc_initial']:.4f}); FWHM "
                         f"{','.join(axes)} learned {widths('learned')} true {widths('true')} um")
        write_psf_panel(psf_dir / "psf_sections.png", shown)
        if model.forward_op.learn_background:
            lines.append(f"H: gain {model.forward_op.gain:.4g}, background {model.forward_op.background:.4g} "
                         "(normalised units of the blurred stacks)")
        return lines

    def export(self, model, config, export_dir):
        generator = model.generator if hasattr(model, "generator") else model
        psf = model.forward_op.psf if hasattr(model, "forward_op") else self.initial_psf(config)
        return export_microscopy_generator(generator, psf, export_dir, settings=self.inference_settings(config))

    def describe(self, config, data):
        return f"{len(data['files']['test_files'])} files"


def psf_scalars(learned: np.ndarray, true: np.ndarray, voxel_size) -> dict[str, float]:
    """``val/psf_ncc`` (normalised cross-correlation) and ``val/psf_fwhm_error`` (the largest
    relative FWHM error over the axes) of a learned PSF against the true one."""
    sim = psf_similarity(learned, true, voxel_size)
    axes = "zyx"[-learned.ndim:]
    errors = [abs(sim[f"fwhm_{a}_learned"] / sim[f"fwhm_{a}_true"] - 1) for a in axes if sim[f"fwhm_{a}_true"] > 0]
    return {"val/psf_ncc": sim["ncc"], "val/psf_fwhm_error": max(errors, default=float("nan"))}


def rl_grid(config: BlurConfig) -> list[int]:
    """``--rl_iterations_grid`` as whole numbers; ``ValueError`` naming the flag."""
    counts = grid_values(config.rl_iterations_grid, "rl_iterations_grid")
    if any(not float(n).is_integer() for n in counts):
        raise ValueError(f"--rl_iterations_grid: expected whole numbers, got {config.rl_iterations_grid!r}")
    return [int(n) for n in counts]


def data_statistics(volumes: dict | None) -> dict:
    """Initial output biases (logits of the sharp and blurred domains' means), the blurred
    domain's background (:func:`estimate_background`) and the gain of the learned PSF:
    blurred mean / sharp mean, and the same above the background."""
    if not volumes:
        return {"output_bias": 0.0, "input_bias": 0.0, "gain": 1.0, "background": 0.0, "gain_above_background": 1.0}
    mean_x = float(np.mean([v.mean() for v in volumes["sharp_files"]]))
    mean_y = float(np.mean([v.mean() for v in volumes["blurred_files"]]))
    background = min(estimate_background(volumes["blurred_files"]), 0.9 * mean_y)
    clean = min(max(mean_x, 1e-3), 1 - 1e-3)
    return {"output_bias": logit(mean_x), "input_bias": logit(mean_y), "gain": max(mean_y, 1e-3) / clean,
            "background": background, "gain_above_background": max(mean_y - background, 1e-3) / clean}


def mean_sharp(config, data, task) -> float:
    """Mean intensity of the normalised clean (sharp) training files."""
    sharp = data.get("volumes", {}).get("sharp_files")
    if sharp is None:
        sharp = [tiff.normalize(task.read(p)) for p in expand_files(config.sharp_files, "--sharp_files")]
    return float(np.mean([v.mean() for v in sharp]))
