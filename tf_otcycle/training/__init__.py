"""Training infrastructure shared by the entry points, one concern per module: the runtime
(:mod:`.runtime`: strategies, threads), optimisers (:mod:`.optimizers`), whole-state
checkpoints with automatic resume (:mod:`.checkpoints`), callbacks (:mod:`.callbacks`) and
the run records (:mod:`.records`). Every public name imports from ``tf_otcycle.training``.

Nothing here reads flags; ``train/*.py`` pass plain values.
"""

from tf_otcycle.training.callbacks import (  # noqa: F401
    PROGRESS_KEYS,
    AtEpochEnd,
    AveragedWeights,
    Progress,
    TrainingDiagnostics,
    TrainScalars,
    ValidationCallback,
    relative_change,
)
from tf_otcycle.training.checkpoints import (  # noqa: F401
    CRITERIA,
    BestCheckpoint,
    CheckpointCallback,
    NonFiniteGuard,
    TrainState,
    random_states,
    select_networks,
    settled_epoch,
    weights_finite,
)
from tf_otcycle.training.optimizers import (  # noqa: F401
    adam,
    average_pairs,
    averaging_optimizer,
    generator_step,
    reset_average,
)
from tf_otcycle.training.records import (  # noqa: F401
    environment,
    probe_writable,
    recorded_differences,
    save_flags,
)
from tf_otcycle.training.runtime import (  # noqa: F401
    AUTO_THREADS_WORK,
    cpu_flags,
    cpuinfo_field,
    is_chief,
    make_strategy,
    parse_threads,
    read_cpuinfo,
    resolve_precision,
    set_threads,
)

__all__ = [
    "AUTO_THREADS_WORK",
    "AtEpochEnd",
    "AveragedWeights",
    "BestCheckpoint",
    "CRITERIA",
    "CheckpointCallback",
    "NonFiniteGuard",
    "PROGRESS_KEYS",
    "Progress",
    "TrainScalars",
    "TrainState",
    "TrainingDiagnostics",
    "ValidationCallback",
    "adam",
    "average_pairs",
    "averaging_optimizer",
    "cpu_flags",
    "cpuinfo_field",
    "environment",
    "generator_step",
    "is_chief",
    "make_strategy",
    "parse_threads",
    "probe_writable",
    "random_states",
    "read_cpuinfo",
    "recorded_differences",
    "relative_change",
    "reset_average",
    "resolve_precision",
    "save_flags",
    "select_networks",
    "set_threads",
    "settled_epoch",
    "weights_finite",
]
