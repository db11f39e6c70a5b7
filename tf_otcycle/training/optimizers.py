"""The optimisers of every learned method (Adam, the paper's betas) and their weight average (``--ema_momentum``)."""

from __future__ import annotations

import keras


def adam(learning_rate, beta_1: float = 0.5, beta_2: float = 0.9, ema_momentum: float = 0.0) -> keras.optimizers.Adam:
    """The paper's optimiser: Adam(lr, beta_1=0.5, beta_2=0.9).

    With ``ema_momentum`` > 0 it also keeps an exponential moving average of the variables it
    updates, ``average = m * average + (1 - m) * variable`` after every update (Keras'
    ``use_ema``; the averages are optimizer variables, so checkpoints hold them), which
    :class:`AveragedWeights` puts into the networks for validation, selection and export.
    """
    if not 0.0 <= ema_momentum < 1.0:
        raise ValueError(f"ema_momentum: expected in [0, 1), got {ema_momentum}")
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, use_ema=ema_momentum > 0,
                                 ema_momentum=ema_momentum)


def averaging_optimizer(optimizer) -> keras.optimizers.Optimizer | None:
    """``optimizer`` (or the one a ``LossScaleOptimizer`` wraps) when it keeps weight averages, else None."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return inner if getattr(inner, "use_ema", False) else None


def average_pairs(optimizer) -> list:
    """``(variable, moving average)`` of each variable an averaging optimizer updates (Keras'
    ``use_ema`` layout, as ``SwapEMAWeights`` reads it)."""
    return list(zip(optimizer._trainable_variables, optimizer._model_variables_moving_average))


def reset_average(optimizer, variable) -> None:
    """Set the moving average ``optimizer`` keeps of ``variable`` (``--ema_momentum``) to the
    variable's value, after an assignment from outside training (e.g. a refitted PSF), so the
    average does not blend the old value back in. Nothing when it keeps none of ``variable``."""
    inner = averaging_optimizer(optimizer)
    if inner is None:
        return
    for var, average in average_pairs(inner):
        if var.path == variable.path:
            average.assign(var)


def generator_step(model) -> int:
    """Generator updates so far (a GAN's ``g_optimizer``, else the model's own optimizer)."""
    optimizer = model.g_optimizer if hasattr(model, "g_optimizer") else model.optimizer
    return int(optimizer.iterations.numpy())
