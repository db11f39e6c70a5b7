"""Typed, frozen run configurations: a task's flags are the fields of one dataclass.

Each field is declared once with its type, default, help text and resume rule
(:func:`string`, :func:`integer`, :func:`real`, :func:`boolean`, :func:`enum`, :func:`strings`);
the command-line flags (:class:`FlagSpec`), ``--help``, ``flags.txt`` / ``config.json`` and
the resume check are all derived from these declarations. A task's configuration subclasses
:class:`CommonConfig` (the training flags every task shares) and may give a shared flag
another default with :func:`reset`::

    @dataclasses.dataclass(frozen=True)
    class MRIConfig(CommonConfig):
        epochs: int = reset("epochs", 100)
        crop_size: int = integer(320, "Centre crop of the images.")

Fields are read by name (``config.crop_size``); a configuration is never changed in place
(``config.replace(steps_per_epoch=100)`` returns a new one). Read access by key
(``config["crop_size"]``, ``config.get``, ``**config``) is kept for scripts written when
configurations were dicts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from tf_otcycle.model import CYCLE_GRADIENTS

C = TypeVar("C", bound="Config")

__all__ = ["COMMON_FLAGS", "COMMON_KEYS", "CommonConfig", "Config", "FlagSpec", "boolean", "config_from_specs",
           "enum", "flag_specs", "integer", "own_flags", "real", "reset", "string", "strings"]


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """One command-line flag: ``kind`` is string, integer, float, boolean, enum or list.

    What a resumed run may change follows from the flags themselves
    (:func:`tf_otcycle.training.recorded_differences`): ``may_change`` flags (epochs, evaluation,
    export, runtime) may differ from the recorded run; every other flag defines the model and
    must match. ``before``: for a model-defining flag added after runs were recorded, the value
    that gives a run recorded without it its behaviour (None: such a run resumes only where the
    flag is None now, its "off"; otherwise it is refused, naming the flag).
    """

    name: str
    kind: str
    default: object
    help: str
    choices: tuple[str, ...] = ()
    may_change: bool = False
    before: object = None


_META = "tf_otcycle.flag"


def _field(kind: str, default: Any, help: str, choices: tuple[str, ...] = (), may_change: bool = False,
           before: Any = None) -> Any:
    spec = FlagSpec("", kind, default, help, tuple(choices), may_change, before)
    if isinstance(default, list):  # a dataclass default must not be mutable
        return dataclasses.field(default_factory=lambda: list(default), metadata={_META: spec})
    return dataclasses.field(default=default, metadata={_META: spec})


def string(default: str | None, help: str, *, may_change: bool = False, before: Any = None) -> Any:
    """A string flag (file globs, comma-separated numbers)."""
    return _field("string", default, help, may_change=may_change, before=before)


def integer(default: int | None, help: str, *, may_change: bool = False, before: Any = None) -> Any:
    """An integer flag."""
    return _field("integer", default, help, may_change=may_change, before=before)


def real(default: float | None, help: str, *, may_change: bool = False, before: Any = None) -> Any:
    """A float flag."""
    return _field("float", default, help, may_change=may_change, before=before)


def boolean(default: bool, help: str, *, may_change: bool = False, before: Any = None) -> Any:
    """A boolean flag (``--name`` / ``--noname``)."""
    return _field("boolean", default, help, may_change=may_change, before=before)


def enum(default: str, choices: tuple[str, ...], help: str, *, may_change: bool = False, before: Any = None) -> Any:
    """A flag with one of ``choices``."""
    return _field("enum", default, help, choices, may_change=may_change, before=before)


def strings(default: list[str], help: str, *, may_change: bool = False, before: Any = None) -> Any:
    """A comma-separated list flag (a ``list[str]`` value)."""
    return _field("list", list(default), help, may_change=may_change, before=before)


def _spec(field: dataclasses.Field) -> FlagSpec:
    default = field.default_factory() if field.default is dataclasses.MISSING else field.default
    return dataclasses.replace(field.metadata[_META], name=field.name, default=default)


def flag_specs(config_class: type[Config]) -> tuple[FlagSpec, ...]:
    """Every flag of ``config_class``, in declaration order (the shared flags first)."""
    return tuple(_spec(f) for f in dataclasses.fields(config_class))


def own_flags(config_class: type[Config]) -> tuple[FlagSpec, ...]:
    """The flags ``config_class`` adds to :class:`CommonConfig` (a task's "data and physics")."""
    common = {f.name for f in dataclasses.fields(CommonConfig)}
    return tuple(s for s in flag_specs(config_class) if s.name not in common)


@dataclasses.dataclass(frozen=True)
class Config(Mapping):
    """Base of every configuration: frozen fields, read by name; by key for older scripts."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` (flag name -> value); ``ValueError`` naming an unknown flag."""
        unknown = sorted(set(changes) - set(self.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown flag(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Flag name -> value (what ``config.json`` records)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_values(cls: type[C], values: Mapping[str, Any]) -> C:
        """The configuration of ``values`` (flag name -> value, e.g. the parsed flags): the
        fields it names, every other at its default; ``ValueError`` naming unknown flags."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown flag(s) {unknown}")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class CommonConfig(Config):
    """The training flags every task shares (run, networks, objective, optimisation, runtime)."""

    run_dir: str | None = string(None, "Run directory: flags, TensorBoard logs, checkpoints, eval, export.",
                                 may_change=True)
    epochs: int = integer(100, "Training epochs.", may_change=True)
    steps_per_epoch: int | None = integer(
        None, "Generator steps per epoch; default: one pass over the measurement domain.")
    batch_size: int = integer(1, "Global batch size (split over replicas); paper: 1.")
    base_filters: int = integer(32, "Filters of the first U-Net level.")
    depth: int = integer(3, "U-Net poolings; input sizes must be divisible by 2**depth.")
    critic_filters: int = integer(32, "Filters of the first PatchGAN conv.")
    critic_layers: int = integer(2, "Stride-2 conv layers of each PatchGAN.")
    critic_norm: str = enum(
        "none", ("none", "layer", "instance"),
        "Normalisation inside the critics (WGAN-GP: none or layer; the authors' code: instance).")
    n_critic: int = integer(5, "Critic updates per generator update.")
    rho: float = real(0.5, "Weight of the image cycle |x - G(Hx)|_1 (eq. 21).")
    sigma: float = real(0.5, "Weight of the measurement cycle |y - H G(y)|_1 (eq. 21).")
    cycle_gradients: str = enum(
        "joint", CYCLE_GRADIENTS,
        "Which maps each cycle term trains: joint (the paper: both cycles train G and H) or split (the image "
        "cycle |x - G(Hx)| trains G only, the measurement cycle |y - H G(y)| trains H only).", before="joint")
    gp_weight: float = real(10.0, "Gradient penalty weight.")
    gan_weight: float = real(
        1.0, "Weight of the adversarial term, potentials in per-element (RMS) units (see OTCycleGAN).")
    gan_warmup_steps: int = integer(
        500, "Generator steps over which the adversarial weight ramps linearly from 0 to --gan_weight.")
    cycle_warmup_steps: int = integer(
        500, "Generator steps over which sigma (the measurement cycle) ramps linearly from 0 to --sigma.")
    fake_pool: int = integer(
        0, "Past fakes each critic is shown half the time (the authors' ImagePool: 50); 0: off. One replica only.",
        before=0)
    ema_momentum: float = real(
        0.99, "Momentum of an exponential moving average of the generator's weights (every learned method; not in "
        "the paper): validation, --select and the exports use the average, training goes on with the raw "
        "weights. It spans about 1/(1 - m) generator steps (100 at 0.99): for runs of a few hundred steps use "
        "less or 0 (off; benchmarks/QUALITY.md).", before=0.0)
    learning_rate: float = real(1e-4, "Adam learning rate of the generator (and of H when learned).")
    critic_learning_rate: float | None = real(None, "Adam learning rate of the critics; default --learning_rate.")
    decay_epoch: int | None = integer(
        None, "Learning rates constant until this epoch, then linear to 0 at --epochs (every network, every method "
        "of train/compare.py); default: the task's (MRI: none, as the authors' code; microscopy: 40, paper "
        "D.2.1).")
    beta_1: float = real(0.5, "Adam beta_1.")
    beta_2: float = real(0.9, "Adam beta_2.")
    seed: int = integer(0, "Global seed (weights, data order, random masks/patches).")
    mixed_precision: str = enum(
        "none", ("none", "auto", "mixed_float16", "mixed_bfloat16"),
        "Keras dtype policy of the networks: none (float32), mixed_float16 (GPUs, with loss scaling), "
        "mixed_bfloat16, or auto (mixed_bfloat16 for paper-size steps on a CPU with AMX-BF16, 1.9-2.8x faster "
        "there; float32 elsewhere; measured in benchmarks/RESULTS.md); the physics, the critics' scores, G's output "
        "and the losses stay float32.", may_change=True)
    threads: str = string(
        "auto", "CPU thread pools: auto (small steps: one thread per op, one op per core; large steps: TensorFlow's "
        "defaults; measured in benchmarks/RESULTS.md), tensorflow (TensorFlow's defaults) or INTRA,INTER.",
        may_change=True)
    strategy: str = enum("auto", ("auto", "default", "mirrored", "multi_worker", "one_device"),
                         "tf.distribute strategy.", may_change=True)
    deterministic: bool = boolean(
        False, "Op determinism (tf.config.experimental.enable_op_determinism): the same --seed gives bit-identical "
        "runs, and a resumed run the weights of an uninterrupted one; some ops run slower.", may_change=True)
    resume_replay: bool = boolean(
        True, "On resume, replay the input pipeline to the restored step, so the run sees the batches an "
        "uninterrupted run would (the data are read again, not trained on); off: the data start afresh.",
        may_change=True)
    on_nan: str = enum(
        "stop", ("stop", "rollback"),
        "When a loss turns NaN/Inf: stop (keeping the last good checkpoint), or rollback to it with halved "
        "learning rates (at most 3 times, then stop).", may_change=True)
    eval_only: bool = boolean(False, "Skip training: restore the latest checkpoint, evaluate and export.",
                              may_change=True)
    num_panels: int = integer(2, "Test files that get a PNG panel.", may_change=True)
    verbose: bool = boolean(False, "Show TensorFlow's C++ and INFO logs and every metric in the progress line.",
                            may_change=True)
    checkpoint_every: int = integer(1, "Epochs between checkpoints (the last epoch is always saved).",
                                    may_change=True)
    checkpoint_steps: int = integer(
        0, "Also save a checkpoint every N generator steps (0: only at epoch ends); a rerun resumes inside the "
        "epoch.", may_change=True)
    select: str = enum(
        "best", ("best", "consistency", "last"),
        "The networks evaluated and exported: best (the epoch of highest validation PSNR, for the blur tasks "
        "after an affine intensity fit, kept in RUN/best/; where the --val_files have no targets, the last), "
        "consistency (the epoch of best measurement consistency, which needs no targets, where the task has it, "
        "among the epochs after the GAN's warm-ups and the last) or last.", may_change=True)
    export: bool = boolean(
        True, "Export the generator (.keras and a new SavedModel version) after evaluation.", may_change=True)


def reset(name: str, default: Any) -> Any:
    """The shared flag ``name`` of :class:`CommonConfig` with a task's own ``default``."""
    spec = CommonConfig.__dataclass_fields__[name].metadata[_META]
    return _field(spec.kind, default, spec.help, spec.choices, spec.may_change, spec.before)


COMMON_FLAGS: tuple[FlagSpec, ...] = flag_specs(CommonConfig)
COMMON_KEYS = [f.name for f in COMMON_FLAGS]

_TYPES = {"string": "str | None", "integer": "int | None", "float": "float | None", "boolean": "bool",
          "enum": "str", "list": "list[str]"}


def config_from_specs(name: str, specs: tuple[FlagSpec, ...], common_defaults: Mapping[str, Any] | None = None,
                      base: type[Config] = CommonConfig) -> type[Config]:
    """A configuration class for a task declared the earlier way (a tuple of :class:`FlagSpec`
    and a ``common_defaults`` dict) rather than with a dataclass."""
    fields = [(n, _TYPES["string"], reset(n, v)) for n, v in (common_defaults or {}).items()]
    fields += [(s.name, _TYPES[s.kind], _field(s.kind, s.default, s.help, s.choices, s.may_change, s.before))
               for s in specs]
    return dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True)
