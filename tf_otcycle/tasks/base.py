"""What every task provides, and the parts all tasks share (after the Model Garden's ``base_task``).

A *task* is one inverse problem: its flags, its data (unpaired for the OT-cycleGAN, paired for
the supervised baseline), its networks and forward operator, its evaluation samples and
reference methods, its validation panels and its export. The run flow (strategy, model in
scope, resume, fit, evaluate, export) is written once, in :mod:`tf_otcycle.run`, against this
interface; ``train/compare.py`` builds every baseline from the same parts.

A task's configuration is a frozen dataclass of its flags (:mod:`tf_otcycle.tasks.config`,
``config.patch_size``), from which the entry points define the absl flags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_otcycle import metrics
from tf_otcycle.evaluation import Sample
from tf_otcycle.layers import FakePool
from tf_otcycle.model import OTCycleGAN
from tf_otcycle.schedules import LinearDecayAfter
from tf_otcycle.self_supervised import SelfSupervised
from tf_otcycle.tasks.config import (  # noqa: F401  (FlagSpec, COMMON_KEYS: public here before)
    COMMON_FLAGS,
    COMMON_KEYS,
    CommonConfig,
    Config,
    FlagSpec,
    config_from_specs,
    flag_specs,
    own_flags,
)
from tf_otcycle.training import adam, parse_threads, resolve_precision

Method = Callable[..., np.ndarray]



# How --help groups the shared flags (a task's own flags come first, as "data and physics").
HELP_GROUPS = (
    ("run", ("run_dir", "epochs", "steps_per_epoch", "batch_size", "seed", "select", "eval_only", "export",
             "num_panels", "checkpoint_every", "checkpoint_steps", "verbose")),
    ("networks", ("base_filters", "depth", "critic_filters", "critic_layers", "critic_norm")),
    ("objective", ("rho", "sigma", "cycle_gradients", "gp_weight", "gan_weight", "gan_warmup_steps",
                   "cycle_warmup_steps", "n_critic", "fake_pool")),
    ("optimisation", ("learning_rate", "critic_learning_rate", "decay_epoch", "beta_1", "beta_2", "ema_momentum")),
    ("runtime", ("threads", "strategy", "mixed_precision", "deterministic", "resume_replay", "on_nan")),
)


def flag_groups(task) -> list[tuple[str, list[FlagSpec]]]:
    """The flags of ``task``'s entry point in the groups ``--help`` shows: the task's own
    (data and physics) first, then :data:`HELP_GROUPS`, then any shared flag not listed."""
    common = {f.name: f for f in COMMON_FLAGS}
    groups = [(f"{task.name}: data and physics", list(task.flags))]
    groups += [(title, [common[n] for n in names if n in common]) for title, names in HELP_GROUPS]
    listed = {n for _, names in HELP_GROUPS for n in names}
    rest = [f for f in COMMON_FLAGS if f.name not in listed]
    return groups + ([("other", rest)] if rest else [])


def required_flags(task) -> dict[str, str]:
    """Flag name -> when it is required (shown by ``--help``)."""
    return {"run_dir": "required", **{n: "required to train" for n in task.training_files},
            "test_files": "required to evaluate"}


def ema_momentum_error(flag: str, value: float) -> str | None:
    """The problem with a weight-average momentum flag (``--ema_momentum`` and the like), or None:
    it must be in [0, 1)."""
    return None if 0.0 <= value < 1.0 else f"--{flag} must be in [0, 1), got {value}"


def validate_common(config: CommonConfig) -> list[str]:
    """Problems with the shared training flags."""
    errors = []
    if not config.run_dir:
        errors.append("--run_dir is required")
    for name in ("rho", "sigma", "gp_weight", "gan_weight", "gan_warmup_steps", "cycle_warmup_steps"):
        if config[name] < 0:
            errors.append(f"--{name} must be >= 0, got {config[name]}")
    for name in ("epochs", "batch_size", "base_filters", "critic_filters", "critic_layers", "n_critic",
                 "checkpoint_every"):
        if config[name] < 1:
            errors.append(f"--{name} must be >= 1, got {config[name]}")
    if config.depth < 0:
        errors.append(f"--depth must be >= 0, got {config.depth}")
    if error := ema_momentum_error("ema_momentum", config.ema_momentum):
        errors.append(error)
    if config.fake_pool < 0:
        errors.append(f"--fake_pool must be >= 0, got {config.fake_pool}")
    if config.checkpoint_steps < 0:
        errors.append(f"--checkpoint_steps must be >= 0, got {config.checkpoint_steps}")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        errors.append(f"--steps_per_epoch must be >= 1, got {config.steps_per_epoch}")
    try:
        parse_threads(config.threads)
    except ValueError as e:
        errors.append(str(e))
    if not config.learning_rate > 0:
        errors.append(f"--learning_rate must be > 0, got {config.learning_rate}")
    if config.critic_learning_rate is not None and not config.critic_learning_rate > 0:
        errors.append(f"--critic_learning_rate must be > 0, got {config.critic_learning_rate}")
    if config.decay_epoch is not None and not 0 <= config.decay_epoch <= config.epochs:
        errors.append(f"--decay_epoch must be in [0, epochs={config.epochs}], got {config.decay_epoch}")
    return errors


def learning_rate(config: CommonConfig, rate: float, steps_per_epoch: int, updates_per_step: int = 1):
    """``rate``, or with ``--decay_epoch`` a :class:`LinearDecayAfter` schedule counted in the
    optimizer's own updates (``updates_per_step`` per generator step, e.g. ``n_critic``)."""
    if config.decay_epoch is None:
        return rate
    steps = steps_per_epoch * updates_per_step
    return LinearDecayAfter(rate, config.decay_epoch * steps, config.epochs * steps)


def critic_learning_rate(config: CommonConfig) -> float:
    """``--critic_learning_rate``, defaulting to ``--learning_rate``."""
    return config.critic_learning_rate or config.learning_rate


def gan_kwargs(config: CommonConfig) -> dict:
    """The :class:`OTCycleGAN` hyper-parameters from the flags."""
    keys = ("rho", "sigma", "n_critic", "gp_weight", "gan_weight", "gan_warmup_steps", "cycle_warmup_steps",
            "cycle_gradients", "seed")
    return {k: config[k] for k in keys}


def logit(p: float, eps: float = 1e-3) -> float:
    """``log(p / (1 - p))`` with ``p`` clamped to ``[eps, 1 - eps]`` (finite for empty or saturated data)."""
    p = min(max(float(p), eps), 1 - eps)
    return float(np.log(p / (1 - p)))


def with_loss_scaling(optimizers, config: CommonConfig) -> tuple:
    """Wrap each optimizer in ``LossScaleOptimizer`` under ``--mixed_precision=mixed_float16``."""
    if config.mixed_precision != "mixed_float16":
        return tuple(optimizers)
    return tuple(None if o is None else keras.optimizers.LossScaleOptimizer(o) for o in optimizers)


def set_precision(config: CommonConfig, work: int | None = None) -> str:
    """The global Keras dtype policy from ``--mixed_precision`` (before any model is built);
    ``auto`` resolved for a step of ``work`` (:func:`~tf_otcycle.training.runtime.resolve_precision`).
    Returns the policy set, ``'none'`` for float32 (printed when ``auto`` chose it)."""
    precision = resolve_precision(config.mixed_precision, work)
    keras.mixed_precision.set_global_policy("float32" if precision == "none" else precision)
    if config.mixed_precision == "auto":
        print(f"--mixed_precision=auto: {'float32' if precision == 'none' else precision}", flush=True)
    return precision


def shard(items: list, input_context: tf.distribute.InputContext | None) -> list:
    """This input pipeline's files (every n-th), or all of them when there are fewer files
    than pipelines (each pipeline then still draws its own random samples)."""
    if input_context is None or input_context.num_input_pipelines <= 1:
        return list(items)
    n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
    return list(items)[i::n] if len(items) >= n else list(items)


def pipeline_seed(config: CommonConfig, input_context: tf.distribute.InputContext | None) -> int:
    """``--seed``, distinct per input pipeline (distinct masks, patches and augmentation)."""
    return config.seed + (7919 * input_context.input_pipeline_id if input_context is not None else 0)


def batch_size(config: CommonConfig, input_context: tf.distribute.InputContext | None) -> int:
    """The per-replica batch of the global ``--batch_size`` (the whole batch without a context)."""
    if input_context is None:
        return config.batch_size
    return input_context.get_per_replica_batch_size(config.batch_size)


def numbers(text: str, name: str, count: int) -> tuple[float, ...]:
    """``"a,b,c"`` -> ``count`` positive floats; ``ValueError`` naming the flag otherwise."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or min(values) <= 0:
        raise ValueError(f"--{name}: expected {count} positive comma-separated numbers, got {text!r}")
    return values


def grid_values(text: str | None, name: str) -> list[float]:
    """A grid flag's comma-separated positive numbers, in order; empty for an empty flag;
    ``ValueError`` naming the flag otherwise."""
    return list(numbers(text, name, len(text.split(",")))) if text else []


def divisible(name: str, size: int, depth: int) -> list[str]:
    """The error for a size the U-Net cannot pool ``depth`` times, if any."""
    if depth >= 0 and size % (2**depth):
        return [f"--{name} {size} must be divisible by 2**depth = {2 ** depth}"]
    return []


def _settings_text(settings: dict) -> str:
    return ", ".join(f"--{k}={v:g}" if isinstance(v, float) else f"--{k}={v}" for k, v in settings.items())


class Task:
    """One inverse problem. Subclasses define the abstract parts; the rest is shared.

    ``config_class`` is the task's frozen configuration (:class:`CommonConfig` and the task's
    own fields); its flags, ``--help`` and the resume rules derive from it. A subclass written
    the earlier way, with a ``flags`` tuple of :class:`FlagSpec` and a ``common_defaults``
    dict, gets a configuration class built from those.
    """

    name: str = ""
    config_class: type[CommonConfig] = CommonConfig
    uses_critic_y: bool = True  # a learned H needs the measurement critic ψ; a fixed one does not
    training_files: tuple[str, ...] = ()  # the flags of the two unpaired training domains
    unit: str = "file"  # what evaluation times are reported per (slice, volume, image)
    classical_name: str = "classical"  # the name of the classical baseline in tables
    classical_names: tuple[str, ...] = ()  # every classical row of --methods=classical; default (classical_name,)
    quality_key: str = "val_psnr"  # the validation log key --select=best keeps the epoch by, given targets
    symmetry_axes: tuple[int, int] = (1, 2)  # the plane of equivariant imaging's quarter turns and flips
    circular: bool = False  # the operator is circular: equivariant imaging also draws cyclic shifts
    splittable: bool = False  # measurements are k-space columns that SSDU can split (per-sample masks)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "config_class" not in cls.__dict__ and ("flags" in cls.__dict__ or "common_defaults" in cls.__dict__):
            specs = cls.__dict__.get("flags", own_flags(cls.config_class))
            cls.config_class = config_from_specs(f"{cls.__name__}Config", tuple(specs),
                                                 cls.__dict__.get("common_defaults", {}))

    @property
    def flags(self) -> tuple[FlagSpec, ...]:
        """The task's own flags (data and physics), after the shared ones."""
        return own_flags(self.config_class)

    @property
    def common_defaults(self) -> dict:
        """Every shared training flag's default for this task (``train/compare.py`` applies the
        chosen task's over the task that defined the flags first)."""
        common = {f.name for f in COMMON_FLAGS}
        return {f.name: f.default for f in flag_specs(self.config_class) if f.name in common}

    @property
    def config_keys(self) -> list[str]:
        return [f.name for f in self.all_flags]

    @property
    def all_flags(self) -> tuple[FlagSpec, ...]:
        """The shared training flags (with this task's defaults) and the task's own."""
        return flag_specs(self.config_class)

    # --- configuration and data ----------------------------------------------------------
    def sample_voxels(self, config: CommonConfig) -> int:
        """Pixels or voxels of one training sample (sizes the work of a step, ``--threads=auto``)."""
        raise NotImplementedError

    def step_work(self, config: CommonConfig) -> int:
        """Work of one training step for ``--threads=auto``: voxels times the first level's filters."""
        return self.sample_voxels(config) * config.base_filters

    def default_config(self, **overrides) -> CommonConfig:
        """This task's configuration: every flag at its default but ``overrides``
        (``ValueError`` naming an unknown flag)."""
        return self.config_class.from_values(overrides)

    def make_config(self, values: dict) -> CommonConfig:
        """The configuration of parsed flag values (flag name -> value)."""
        return self.config_class.from_values(values)

    def validate(self, config: CommonConfig) -> list[str]:
        """Every problem with the flag values, before any work (the task adds its own)."""
        errors = validate_common(config)
        if not config.test_files and config.eval_only:
            errors.append("--test_files is required with --eval_only")
        if not config.eval_only:
            for name in self.training_files:
                if not config[name]:
                    errors.append(f"--{name} is required for training")
        return errors

    def resolve_data(self, config: CommonConfig) -> dict:
        """Expand and check the file flags, read what training needs; ``ValueError`` naming
        the file and the problem. Returns the task's data dict (``files`` at least)."""
        raise NotImplementedError

    def settle(self, config: CommonConfig, data: dict) -> CommonConfig:
        """``config`` with what :meth:`resolve_data` found in the files for flags left unset
        (the microscopy voxel size from the stacks' metadata, the wavelength fitted to a PSF
        file); unchanged by default."""
        return config

    def steps_per_epoch(self, config: CommonConfig, data: dict) -> int:
        """``--steps_per_epoch`` or one pass over the measurement domain."""
        raise NotImplementedError

    def unpaired_dataset(self, config: CommonConfig, data: dict, input_context: tf.distribute.InputContext | None = None
                         ) -> tf.data.Dataset:
        """Infinite batches ``{"x", "y"[, "x_params", "y_params"]}`` of unrelated samples;
        with an ``input_context`` (``strategy.distribute_datasets_from_function``) this
        input pipeline's share: its files, its own random stream, the per-replica batch."""
        raise NotImplementedError

    def paired_dataset(self, config: CommonConfig, data: dict) -> tf.data.Dataset:
        """Infinite batches ``(y, x)`` of matched samples (the supervised baseline)."""
        raise NotImplementedError

    def paired_problems(self, data: dict) -> list[str]:
        """Why :meth:`paired_dataset` cannot be built from ``data`` (empty: it can)."""
        return []

    # --- networks and the physics ----------------------------------------------------------
    def generator(self, config: CommonConfig, data: dict | None, name: str = "generator", domain: str = "x"
                  ) -> keras.Model:
        """A deep network producing ``domain``'s samples (G: y -> x; the conventional
        cycleGAN's F: x -> y with ``domain="y"``)."""
        raise NotImplementedError

    def critic(self, config: CommonConfig, domain: str) -> keras.Model:
        """The Kantorovich potential on ``domain`` (``"x"``: φ, ``"y"``: ψ)."""
        raise NotImplementedError

    def forward_op(self, config: CommonConfig, data: dict | None) -> keras.layers.Layer:
        """The physics layer H: x -> y (fixed or learned)."""
        raise NotImplementedError

    def sample_shape(self, config: CommonConfig) -> tuple[int, ...]:
        """Shape of one training sample, ``(*spatial, channels)``, the same for x and y."""
        raise NotImplementedError

    def fake_pools(self, config: CommonConfig, critic_y: bool) -> dict:
        """``pool_x`` (and ``pool_y`` when there is a ψ critic) of ``--fake_pool`` past fakes; none when 0."""
        if not config.fake_pool:
            return {}
        names = ("pool_x", "pool_y") if critic_y else ("pool_x",)
        return {name: FakePool(config.fake_pool, self.sample_shape(config), seed=config.seed + 20 + k, name=name)
                for k, name in enumerate(names)}

    def noise(self, config: CommonConfig, data: dict | None) -> dict:
        """The measurement noise drawn on ``Hx`` (``OTCycleGAN``'s ``noise_gain``/``noise_floor``); none by default."""
        return {}

    def optimizers(self, config: CommonConfig, steps_per_epoch: int) -> tuple:
        """``(g_optimizer, d_optimizer, h_optimizer or None)``: Adam, constant or decaying
        linearly after ``--decay_epoch``, G's (and H's when it has no optimizer of its own) with
        the weight average of ``--ema_momentum``; every method of ``train/compare.py`` trains with these."""
        betas = (config.beta_1, config.beta_2)
        return (adam(learning_rate(config, config.learning_rate, steps_per_epoch), *betas,
                     ema_momentum=config.ema_momentum),
                adam(learning_rate(config, critic_learning_rate(config), steps_per_epoch, config.n_critic), *betas),
                None)

    def build_model(self, config: CommonConfig, data: dict | None = None, steps_per_epoch: int = 1) -> OTCycleGAN:
        """The compiled OT-cycleGAN of this task (call inside ``strategy.scope()``)."""
        # Built in this order (G, H, φ, ψ): the seeded initial weights then match earlier versions.
        generator, forward_op = self.generator(config, data), self.forward_op(config, data)
        critic_x = self.critic(config, "x")
        critic_y = self.critic(config, "y") if self.uses_critic_y else None
        model = OTCycleGAN(generator, forward_op, critic_x, critic_y, **gan_kwargs(config), **self.noise(config, data),
                           **self.fake_pools(config, critic_y is not None))
        model.compile(*with_loss_scaling(self.optimizers(config, steps_per_epoch), config))
        return model

    def build_self_supervised(self, config: CommonConfig, data: dict | None, method: str, steps_per_epoch: int = 1
                              ) -> SelfSupervised:
        """The compiled self-supervised baseline ``method`` (``mc``, ``ei``, ``ssdu``) on this
        task's generator and operator, with G's optimizer of :meth:`optimizers`."""
        model = SelfSupervised(self.generator(config, data), self.forward_op(config, data), method,
                               axes=self.symmetry_axes, shift=self.circular, acs=self.acs(config), seed=config.seed)
        g_optimizer, _, _ = with_loss_scaling(self.optimizers(config, steps_per_epoch), config)
        model.compile(optimizer=g_optimizer)
        return model

    def acs(self, config: CommonConfig) -> tuple[int, int]:
        """``(start, stop)`` of the measurement's always-sampled centre (MRI's ACS columns); none here."""
        return (0, 0)

    def callbacks(self, config: CommonConfig, data: dict, model: keras.Model,
                  out_dir: Path | None) -> list[keras.callbacks.Callback]:
        """What the task adds to the training of ``model`` (any method), placed before the
        checkpoint; ``out_dir``: where to write what they report (None on non-chief workers)."""
        return []

    # --- evaluation --------------------------------------------------------------------------
    def samples(self, config: CommonConfig, data: dict, split: str = "test_files") -> Iterable[Sample]:
        """The evaluation samples of ``split`` (read lazily, one file at a time)."""
        raise NotImplementedError

    def input_method(self, config: CommonConfig) -> Method:
        """The method that returns its input (the zero-filled or blurred measurement)."""
        return lambda y, *rest: y

    def generator_method(self, config: CommonConfig, generator: keras.Model) -> Method:
        """A trained generator as an evaluation method."""
        raise NotImplementedError

    def variants(self, name: str, method: Method) -> dict[str, Method]:
        """Further rows derived from a learned method (MRI: ``+dc``); none by default."""
        return {}

    def reference_methods(self, config: CommonConfig, data: dict, names: Iterable[str]) -> dict[str, Method]:
        """Trivial references the task offers (``zeros``, ``mean``), for those in ``names``."""
        return {}

    def classical_method(self, config: CommonConfig, data: dict, model: OTCycleGAN | None = None,
                         name: str | None = None) -> Method:
        """The classical solver ``name`` (one of :meth:`classical_rows`; default the first) with
        the settings in ``config``, given the trained OT model if any."""
        raise NotImplementedError

    def classical_rows(self) -> tuple[str, ...]:
        """The classical solvers' table names (PLS-TV; Richardson-Lucy with and without TV)."""
        return self.classical_names or (self.classical_name,)

    def classical_grid(self, config: CommonConfig, name: str) -> list[dict]:
        """Settings (flag -> value) of solver ``name`` to choose from on the validation files;
        empty: use ``config``'s."""
        return []

    def tuned_classical(self, config: CommonConfig, data: dict, model: OTCycleGAN | None = None, name: str | None = None
                        ) -> tuple[Method, str]:
        """Solver ``name`` with the settings of :meth:`classical_grid` that give the highest mean
        PSNR on the ``--val_files`` (as a user tunes a classical method on data with ground
        truth), and a line saying what was chosen; ``config``'s settings when there is no grid
        or no validation file with a target."""
        name = name or self.classical_rows()[0]
        grid = self.classical_grid(config, name)
        fixed = self.classical_method(config, data, model, name)
        if not grid or not data["files"].get("val_files"):
            return fixed, f"{name}: flag settings (not tuned: {'no grid' if not grid else 'no --val_files'})"
        try:
            samples = list(self.samples(config, data, "val_files"))
        except ValueError as e:  # validation files without ground truth
            return fixed, f"{name}: flag settings (not tuned: {e})"
        scores = []
        for settings in grid:
            method = self.classical_method(config.replace(**settings), data, model, name)
            psnr = np.mean([metrics.psnr(s.target, s.to_target(method(*s.inputs))) for s in samples])
            scores.append((float(psnr), settings))
        best_psnr, best = max(scores, key=lambda t: t[0])
        tried = "; ".join(f"{_settings_text(st)}: {p:.2f}" for p, st in scores)
        edges = [k for k, v in best.items()
                 if len(values := sorted({g[k] for g in grid})) > 2 and v in (values[0], values[-1])]
        edge = f" (at the grid's edge of {', '.join('--' + k for k in edges)})" if edges else ""
        line = (f"{name}: {_settings_text(best)} chosen on {len(samples)} --val_files file(s), validation PSNR "
                f"{best_psnr:.2f} dB{edge} (tried {tried})")
        return self.classical_method(config.replace(**best), data, model, name), line

    def validation(self, config: CommonConfig, data: dict, model: keras.Model
                   ) -> Callable[[], tuple[dict, dict]] | None:
        """Per-epoch validation scalars and panels for a model (OT or baseline), or None."""
        return None

    # --- results and export --------------------------------------------------------------
    def describe(self, config: CommonConfig, data: dict) -> str:
        """One line on the test set, printed above the metrics table."""
        return f"{len(data['files']['test_files'])} files"

    def report_model(self, model: OTCycleGAN, config: CommonConfig, data: dict, run_dir: Path) -> list[str]:
        """Write what the trained model learned besides G (e.g. the PSF); lines to print."""
        return []

    def inference_settings(self, config: CommonConfig) -> dict:
        """What the inference command needs to use the exported model as trained."""
        return {}

    def export(self, model: OTCycleGAN, config: CommonConfig, export_dir: Path) -> dict[str, Path]:
        """Export G (``.keras`` + a new SavedModel version, with :meth:`inference_settings`)."""
        raise NotImplementedError
