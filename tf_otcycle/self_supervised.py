"""Self-supervised baselines: the generator learns from measurements alone (no clean images),
with the same generator and operator objects (and per-sample masks) as the OT-cycleGAN.

Squared errors, as Chen et al. and deepinv's ``MCLoss`` / ``EILoss``: with the L1 error of the
cycle losses EI stays at the identity (``benchmarks/QUALITY.md``, Notes).

* ``mc``, measurement consistency: ``mean (H G(y) - y)^2``. The lower reference: any G with
  ``H G(y) = y`` minimises it (for MRI's zero-filled input, the identity does), so it learns
  nothing about what H removes.
* ``ei``, equivariant imaging (Chen, Tachella & Davies, ICCV 2021): MC plus
  ``ei_weight * mean (T x - G(H T x))^2`` with ``x = G(y)`` and ``T`` a random element of a group
  the images are assumed invariant to: 90-degree rotations and flips of two spatial axes
  (MRI: the image plane; microscopy: the lateral axes, which a widefield PSF commutes with)
  and, where the operator is circular (MRI's FFT), cyclic shifts. The gradient flows
  through both ``T x`` and ``G(H T x)``, as in deepinv's ``EILoss``.
* ``ssdu``, self-supervision via data undersampling (Yaman et al., MRM 2020), MRI only: each
  step the measured k-space columns Ω are split at random into Θ (G's input) and Λ (the loss
  set, ``|Λ| = round(ratio |Ω|)``, ratio 0.4, drawn with Gaussian weights around the
  k-space centre, the autocalibration (ACS) columns kept in Θ); G sees the zero-filled Θ
  columns and is scored on the Λ columns by the normalised L1-L2 loss. At inference G sees
  all of Ω; the comparison's ``ssdu+dc`` row then puts the measured columns back, as the
  data-consistency layer that ends Yaman et al.'s network does (it never touches Λ, so
  training is the same with or without it). That network is also what validation, and so
  ``--select``, scores (:attr:`SelfSupervised.ends_in_data_consistency`): G alone is never
  asked to keep the columns it is given (no loss touches Θ), so its own output drifts there
  while the network's improves (``benchmarks/QUALITY.md``, Notes, 2026-12-05).

Shapes: images and measurements ``(B, *spatial, C)`` float32; MRI masks ``(B, W)``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_otcycle.batches import params_of, unwrap
from tf_otcycle.distributed import global_mean, step_logs
from tf_otcycle.losses import l2_per_sample
from tf_otcycle.physics.fft import channels_to_complex, fft2c

METHODS = ("mc", "ei", "ssdu")


# --- losses (pure functions, per sample) -------------------------------------------------
def measurement_consistency(y: tf.Tensor, hx: tf.Tensor) -> tf.Tensor:
    """``mean (H x - y)^2`` per sample, ``(B,)``: zero when ``x`` explains the measurement."""
    return l2_per_sample(tf.cast(y, tf.float32), tf.cast(hx, tf.float32))


def equivariance(tx: tf.Tensor, g_htx: tf.Tensor) -> tf.Tensor:
    """``mean (T x - G(H T x))^2`` per sample, ``(B,)``: zero when G inverts H on ``T x``."""
    return l2_per_sample(tf.cast(tx, tf.float32), tf.cast(g_htx, tf.float32))


def ssdu_loss(x: tf.Tensor, y: tf.Tensor, loss_mask: tf.Tensor) -> tf.Tensor:
    """Normalised L1-L2 k-space loss on the loss columns Λ (Yaman et al.), ``(B,)``:
    ``||P_Λ (F x - F y)||_2 / ||P_Λ F y||_2 + ||P_Λ (F x - F y)||_1 / ||P_Λ F y||_1``.

    Args:
        x: ``(B, H, W, 2)`` G's output (real, imag).
        y: ``(B, H, W, 2)`` the zero-filled measurement (all of Ω).
        loss_mask: ``(B, W)`` 0/1, the columns Λ.
    """
    m = tf.cast(loss_mask, tf.complex64)[:, None, :]
    k = m * fft2c(channels_to_complex(y))
    diff = m * fft2c(channels_to_complex(tf.cast(x, tf.float32))) - k
    eps = 1e-12

    def norm2(a):
        return tf.sqrt(tf.reduce_sum(tf.abs(a) ** 2, axis=[1, 2]))

    def norm1(a):
        return tf.reduce_sum(tf.abs(a), axis=[1, 2])

    return norm2(diff) / (norm2(k) + eps) + norm1(diff) / (norm1(k) + eps)


# --- the transforms of equivariant imaging -------------------------------------------------
def rotate90(x: tf.Tensor, axes: tuple[int, int]) -> tf.Tensor:
    """Rotate by 90 degrees in the plane of ``axes`` (equal sizes): transpose, then reverse the first."""
    perm = list(range(x.shape.rank))
    perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
    return tf.reverse(tf.transpose(x, perm), [axes[0]])


def transform(x: tf.Tensor, turns: tf.Tensor, flip: tf.Tensor, shifts: tf.Tensor, axes: tuple[int, int]) -> tf.Tensor:
    """``T x``: ``turns`` (0-3) quarter turns in the plane of ``axes``, then a reversal of
    ``axes[1]`` where ``flip``, then a cyclic shift by ``shifts`` ``(2,)`` along ``axes``.
    One T for the whole batch (every sample of the batch is transformed alike)."""
    branches = [lambda: x, lambda: rotate90(x, axes), lambda: rotate90(rotate90(x, axes), axes),
                lambda: rotate90(rotate90(rotate90(x, axes), axes), axes)]
    out = tf.switch_case(tf.cast(turns, tf.int32), branches)
    out = tf.cond(tf.cast(flip, tf.bool), lambda: tf.reverse(out, [axes[1]]), lambda: out)
    return tf.roll(out, tf.cast(shifts, tf.int32), list(axes))


def random_transform(x: tf.Tensor, axes: tuple[int, int], shift: bool, seed: keras.random.SeedGenerator
                     ) -> tf.Tensor:
    """``T x`` for a T drawn uniformly from the group (quarter turns x flips [x cyclic shifts])."""
    turns = keras.random.randint((), 0, 4, seed=seed)
    flip = keras.random.randint((), 0, 2, seed=seed)
    if shift:
        sizes = tf.shape(x)[axes[0]], tf.shape(x)[axes[1]]
        shifts = tf.stack([keras.random.randint((), 0, sizes[0], seed=seed),
                           keras.random.randint((), 0, sizes[1], seed=seed)])
    else:
        shifts = tf.zeros([2], tf.int32)
    return transform(x, turns, flip, shifts, axes)


# --- SSDU's split of the measured columns --------------------------------------------------
def ssdu_split(mask: tf.Tensor, acs: tuple[int, int], ratio: float, seed: keras.random.SeedGenerator,
               std_fraction: float = 0.25) -> tuple[tf.Tensor, tf.Tensor]:
    """``(theta, lam)``, each ``(B, W)`` 0/1 with ``theta + lam = mask``: ``lam`` holds
    ``round(ratio * |mask|)`` measured columns outside ``acs = (start, stop)`` per sample
    (fewer if fewer are there), drawn without replacement with weights
    ``exp(-(c - W/2)^2 / (2 (std_fraction W)^2))`` (Gumbel top-k)."""
    mask = tf.cast(mask, tf.float32)
    width = tf.shape(mask)[1]
    columns = tf.cast(tf.range(width), tf.float32)
    centre, std = tf.cast(width // 2, tf.float32), std_fraction * tf.cast(width, tf.float32)
    log_weight = -0.5 * ((columns - centre) / std) ** 2
    in_acs = tf.cast((tf.range(width) >= acs[0]) & (tf.range(width) < acs[1]), tf.float32)
    candidates = mask * (1.0 - in_acs)[None, :]
    u = keras.random.uniform(tf.shape(mask), minval=1e-9, maxval=1.0, seed=seed)
    keys = tf.where(candidates > 0, log_weight[None, :] - tf.math.log(-tf.math.log(u)), -1e30)
    count = tf.minimum(tf.round(ratio * tf.reduce_sum(mask, 1)), tf.reduce_sum(candidates, 1))
    ranks = tf.argsort(tf.argsort(keys, axis=1, direction="DESCENDING"), axis=1)
    lam = tf.cast(tf.cast(ranks, tf.float32) < count[:, None], tf.float32) * candidates
    return mask - lam, lam


# --- the training model ---------------------------------------------------------------------
class SelfSupervised(keras.Model):
    """A generator trained by one self-supervised loss (``method`` of :data:`METHODS`).

    The ``train_step`` reads ``data["y"]`` (and ``data["y_params"]``, the operator's per-sample
    parameters such as ``{"mask": (B, W)}``) of the task's unpaired batches; ``data["x"]``
    (the clean images) is never used. Only the generator trains: the operator is given
    (MRI's undersampling; microscopy's PSF, gain and background as the task starts them).

    Args:
        generator: G, measurement -> image.
        forward_op: H, called ``H(x)`` or ``H(x, params)``.
        method: ``'mc'``, ``'ei'`` or ``'ssdu'``.
        ei_weight: weight of the equivariance term (``ei``; 1 as in Chen et al.).
        axes: the two spatial axes of the transforms (``ei``), e.g. ``(1, 2)`` for ``(B, H, W, C)``.
        shift: also draw cyclic shifts (``ei``; for circular operators).
        ratio: ``|Λ| / |Ω|`` (``ssdu``; 0.4 as in Yaman et al.).
        acs: ``(start, stop)`` of the ACS columns kept in Θ (``ssdu``).
        seed: seed of the transforms and splits.
    """

    def __init__(self, generator: keras.Model, forward_op: keras.layers.Layer, method: str, ei_weight: float = 1.0,
                 axes: tuple[int, int] = (1, 2), shift: bool = False, ratio: float = 0.4,
                 acs: tuple[int, int] = (0, 0), seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if method == "ssdu" and "mask" not in getattr(forward_op, "param_keys", ()):
            raise ValueError("method 'ssdu' splits k-space columns: it needs an operator with per-sample masks (MRI)")
        if not 0 < ratio < 1:
            raise ValueError(f"ratio: expected a value in (0, 1), got {ratio!r}")
        self.generator, self.forward_op, self.method = generator, forward_op, method
        self.forward_op.trainable = False
        self.ei_weight, self.axes, self.shift = float(ei_weight), tuple(axes), bool(shift)
        self.ratio, self.acs = float(ratio), tuple(int(a) for a in acs)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "mc", "ei", "ssdu")}
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def ends_in_data_consistency(self) -> bool:
        """Whether the method's network is G followed by data consistency on the measured
        columns (``ssdu``, as Yaman et al.'s): validation scores that network, not G alone."""
        return self.method == "ssdu"

    def _forward(self, x, params=None):
        x = tf.cast(x, tf.float32)
        return self.forward_op(x) if params is None else self.forward_op(x, params)

    def losses_of(self, y: tf.Tensor, params: dict | None = None) -> tuple[tf.Tensor, dict]:
        """The loss per sample ``(B,)`` and its parts (see the module docstring)."""
        if self.method == "ssdu":
            theta, lam = ssdu_split(params["mask"], self.acs, self.ratio, self.seed_generator)
            x = self.generator(self._forward(y, {**params, "mask": theta}), training=True)
            loss = ssdu_loss(x, y, lam)
            return loss, {"ssdu": loss}
        x = self.generator(y, training=True)
        mc = measurement_consistency(y, self._forward(x, params))
        if self.method == "mc":
            return mc, {"mc": mc}
        tx = random_transform(tf.cast(x, tf.float32), self.axes, self.shift, self.seed_generator)
        ei = equivariance(tx, self.generator(self._forward(tx, params), training=True))
        return mc + self.ei_weight * ei, {"mc": mc, "ei": ei}

    def train_step(self, data):
        data = unwrap(data, ("y",))
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            loss, parts = self.losses_of(data["y"], params_of(data, "y"))
            scaled = self.optimizer.scale_loss(global_mean(loss))
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self.trackers["loss"].update_state(tf.reduce_mean(loss))
        for name, value in parts.items():
            self.trackers[name].update_state(tf.reduce_mean(value))
        return step_logs({"loss": self.trackers["loss"].result(), **{k: self.trackers[k].result() for k in parts}})

    def call(self, y, training=False):
        return self.generator(y, training=training)


__all__ = ["METHODS", "SelfSupervised", "equivariance", "measurement_consistency", "random_transform", "rotate90",
           "ssdu_loss", "ssdu_split", "transform"]
