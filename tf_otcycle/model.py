"""The OT-cycleGAN: one deep generator, the physics as the other direction, WGAN-GP critics."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tf_otcycle import losses
from tf_otcycle.batches import params_of, unwrap
from tf_otcycle.distributed import global_mean, step_logs
from tf_otcycle.physics.noise import poisson_gaussian

CYCLE_GRADIENTS = ("joint", "split")  # which maps each cycle term trains (OTCycleGAN, cycle_gradients)


@keras.saving.register_keras_serializable(package="tf_otcycle")
class OTCycleGAN(keras.Model):
    """Optimal-transport cycleGAN (the dual of the PLS transport cost, paper eqs. 18-21).

    Names follow the paper; x is an image, y a measurement:

    * ``generator`` G_Θ: y -> x, a deep network (the only one).
    * ``forward_op`` H: x -> y, the physics; fixed (MRI: ``FFTMask``) or trainable
      (microscopy: ``PSFConv3D``, then updated with the generator).
    * ``critic_x`` φ: Kantorovich potential on images; ``critic_y`` ψ: on measurements,
      optional (with a fixed H the y-side GAN term does not depend on G and is dropped).
    * ``rho``, ``sigma``: cycle weights of eq. (21),
      ``l_cycle = rho |x - G(Hx)|_1 + sigma |y - H G(y)|_1``.
    * eq. (20): ``l_GAN = (1-rho) φ(x) - (1-sigma) φ(G(y)) + (1-sigma) ψ(y) - (1-rho) ψ(Hx)``,
      maximised by the critics (each trained on its unweighted Wasserstein loss plus
      ``gp_weight`` times the gradient penalty) and minimised by G and H.

    Scale (how the implementation relates to eq. 19): the paper writes L1 *norms* of whole
    samples and 1-Lipschitz critics. Summed norms grow like N (elements per sample) and a
    1-Lipschitz (L2) potential like sqrt(N), so their balance would change with the image
    size. The implementation uses means, as the authors' code does, and measures the
    potentials in the same per-element units::

        l_cycle = rho * mean|x - G(Hx)| + sigma * mean|y - H G(y)|
        l_adv   = -(1-sigma) * φ(G(y)) / sqrt(N_x)  [ - (1-rho) * ψ(Hx) / sqrt(N_y) ]
        L_G     = l_cycle + gan_weight * ramp(step) * l_adv

    ``φ / sqrt(N)`` is 1-Lipschitz in the RMS norm ``||v||_2 / sqrt(N)``, which bounds the
    mean absolute error, so the two terms keep their ratio at 64^2, 320^2 or 64^3. The
    critics' own terms in eq. (20) (``φ(x)``, ``ψ(y)``) do not depend on G and drop out of
    its gradient. ``ramp`` rises linearly from 0 to 1 over ``gan_warmup_steps`` generator
    steps (the cycle terms first pull G to a reconstruction, the critics then refine it).
    The authors' code (``CycleGAN_AccMRI_fft``) weights ``-mean D(G(y))`` by 1 without the
    ``1/sqrt(N)``, which lets its critic dominate G at these sizes (``docs/objective.md``).

    Critics minimise ``(φ(G(y)) - φ(x)) / sqrt(N_x) + gp_weight * gp`` (and the ψ side):
    the WGAN-GP loss of eq. (20) per potential with the gap in the same RMS units. This is
    what keeps them near 1-Lipschitz at every size: a critic of slope k gains about
    ``k * D`` in gap (D the distance of the two domains) and pays ``gp_weight * (k - 1)^2``,
    so its best slope is ``1 + D / (2 gp_weight)``. With the raw gap D is an L2 distance of
    order sqrt(N) (~180 at 128^2 x 2) and the slope runs to ~10; in RMS units D is of order 1
    and the slope stays near 1. A critic's score is the mean of its
    PatchGAN map.

    One ``train_step`` = ``n_critic`` critic updates on the batch (fresh interpolation
    weights each time), then one update of G (and of H when trainable). Losses are computed
    per sample and divided by the *global* batch size, as Keras sums gradients across
    replicas. Logged: ``g_loss``, ``cycle_x``, ``cycle_y``, ``adversarial`` (``l_adv``
    before weighting), ``gan_weight`` (with the ramp), ``critic_loss``, ``wasserstein``
    (``(φ(x) - φ(G(y))) / sqrt(N_x)``, the critic's estimate of W1 in RMS units),
    ``critic_gap`` (the same, unscaled), ``gp`` and the gradient norms ``g_grad_norm`` and
    ``d_grad_norm``.

    Measurement noise (``noise_gain`` a, ``noise_floor`` b; 0 by default): the simulated
    measurement of the training step is ``Hx + n`` with ``Var(n) = max(a * Hx + b, 0)`` (b < 0
    where a camera offset lifts the measurements)
    (:func:`tf_otcycle.physics.noise.poisson_gaussian`), so that ``Hx`` is drawn from the
    measurement domain as the real ``y`` are: the image cycle ``|x - G(Hx + n)|`` then teaches
    G to denoise as well as to invert H, and ψ compares like with like. The paper's H is
    noise-free (``a = b = 0``); ``H G(y)`` in the measurement cycle stays noise-free (the
    expected value of ``y``). Used for fluorescence microscopy (``--measurement_noise``,
    estimated from the measurements); MRI's clean images carry the scanner's noise already.

    Which maps each cycle trains (``cycle_gradients``): ``"joint"``, the paper's, minimises
    every term over G and H together. ``"split"`` (not in the paper) keeps the same loss
    values but lets each cycle train only the map whose output it compares with real data:
    the image cycle ``|x - G(Hx)|`` trains G (``Hx`` held fixed), the measurement cycle
    ``|y - H G(y)|`` trains H (``G(y)`` held fixed); the adversarial terms are unchanged (φ
    trains G, ψ trains H). Why: with noisy measurements the measurement cycle's gradient
    into G rewards a G(y) whose blur reproduces the noise of y (noise fitting, the classic
    data-consistency failure), and the image cycle's gradient into H rewards a PSF that is
    easy to invert (``docs/objective.md`` has the ablations). With a fixed H (MRI) ``split``
    leaves the measurement cycle nothing to train.

    Data: a dict with ``"x"`` (clean images) and ``"y"`` (measurements) of equal batch size,
    unpaired; optional ``"x_params"`` / ``"y_params"``, dicts of per-sample tensors, are
    passed to ``forward_op`` as its second argument without the model knowing their names
    (MRI: ``{"mask": (B, W)}``, the sampling masks of x's simulated and y's real
    acquisitions). A ``forward_op`` takes them when it declares ``param_keys`` (the physics
    layers do; a deep F does not). ``"x_mask"`` / ``"y_mask"`` are read as ``{"mask": ...}``.
    """

    def __init__(
        self,
        generator: keras.Model,
        forward_op: keras.layers.Layer,
        critic_x: keras.Model,
        critic_y: keras.Model | None = None,
        rho: float = 0.5,
        sigma: float = 0.5,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        gan_weight: float = 1.0,
        gan_warmup_steps: int = 0,
        cycle_warmup_steps: int = 0,
        noise_gain: float = 0.0,
        noise_floor: float = 0.0,
        cycle_gradients: str = "joint",
        pool_x: keras.layers.Layer | None = None,
        pool_y: keras.layers.Layer | None = None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if rho < 0 or sigma < 0:
            raise ValueError(f"rho/sigma: expected >= 0, got {rho}/{sigma}")
        if n_critic < 1:
            raise ValueError(f"n_critic: expected >= 1, got {n_critic}")
        if gp_weight < 0:
            raise ValueError(f"gp_weight: expected >= 0, got {gp_weight}")
        if gan_weight < 0:
            raise ValueError(f"gan_weight: expected >= 0, got {gan_weight}")
        if gan_warmup_steps < 0 or cycle_warmup_steps < 0:
            raise ValueError(f"gan/cycle_warmup_steps: expected >= 0, got {gan_warmup_steps}/{cycle_warmup_steps}")
        if not (noise_gain >= 0 and math.isfinite(noise_floor)):
            raise ValueError(f"noise_gain/noise_floor: expected >= 0 and finite, got {noise_gain}/{noise_floor}")
        if cycle_gradients not in CYCLE_GRADIENTS:
            raise ValueError(f"cycle_gradients: expected one of {CYCLE_GRADIENTS}, got {cycle_gradients!r}")
        self.generator = generator
        self.forward_op = forward_op
        # Physics layers declare their per-sample parameters; a deep F (conventional cycleGAN) has none.
        self._takes_params = bool(getattr(forward_op, "param_keys", ()))
        self.critic_x = critic_x
        self.critic_y = critic_y
        self.rho = float(rho)
        self.sigma = float(sigma)
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.gan_weight = float(gan_weight)
        self.gan_warmup_steps = int(gan_warmup_steps)
        self.cycle_warmup_steps = int(cycle_warmup_steps)
        self.pool_x = pool_x
        self.pool_y = pool_y
        self.noise_gain = float(noise_gain)
        self.noise_floor = float(noise_floor)
        self.cycle_gradients = cycle_gradients
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("g_loss", "cycle_x", "cycle_y", "adversarial", "gan_weight", "sigma", "critic_loss",
                         "wasserstein",
                         "critic_gap", "gp", "g_grad_norm", "d_grad_norm")
        }
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def metrics(self):
        return list(self.trackers.values())

    _NETWORKS = ("generator", "forward_op", "critic_x", "critic_y", "pool_x", "pool_y")
    _SETTINGS = ("rho", "sigma", "n_critic", "gp_weight", "gan_weight", "gan_warmup_steps", "cycle_warmup_steps",
                 "noise_gain", "noise_floor", "cycle_gradients")

    def get_config(self) -> dict:
        """Networks (serialised Keras objects) and the objective's settings; the optimizers
        are not part of it (``compile`` again after loading to train on)."""
        config = super().get_config()
        config.update({name: keras.saving.serialize_keras_object(getattr(self, name)) for name in self._NETWORKS})
        config.update({name: getattr(self, name) for name in self._SETTINGS})
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        for name in cls._NETWORKS:
            if config.get(name) is not None:
                config[name] = keras.saving.deserialize_keras_object(config[name], custom_objects=custom_objects)
        return cls(**config)

    # --- set-up ----------------------------------------------------------------------------
    @property
    def generator_variables(self) -> list:
        """Variables updated by the generator step: G, plus H when trainable."""
        return self.generator.trainable_variables + self.forward_op.trainable_variables

    @property
    def critic_variables(self) -> list:
        out = list(self.critic_x.trainable_variables)
        if self.critic_y is not None:
            out += self.critic_y.trainable_variables
        return out

    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer,
        h_optimizer: keras.optimizers.Optimizer | None = None,
        **kwargs,
    ):
        """Attach the optimizers and build them on their variables.

        ``h_optimizer`` (optional) updates a trainable ``forward_op`` (the PSF) with its own
        learning rate; without it ``g_optimizer`` updates G and H together.

        Call inside ``strategy.scope()``: building the optimizers there, before the first
        step, is what makes ``fit`` work under ``MirroredStrategy`` (TF 2.17 otherwise fails
        with "You must feed a value for placeholder tensor").
        """
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.h_optimizer = h_optimizer if self.forward_op.trainable_variables else None
        if self.h_optimizer is None:
            self.g_optimizer.build(self.generator_variables)
        else:
            self.g_optimizer.build(self.generator.trainable_variables)
            self.h_optimizer.build(self.forward_op.trainable_variables)
        self.d_optimizer.build(self.critic_variables)
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (3.x, TF backend) reduces the first distributed batch across replicas before its
        # symbolic build; MultiWorkerMirroredStrategy cannot reduce a dict of batches ("Attempt
        # to convert a value ({'x': PerReplica...}) to a Tensor"). Every part is built here
        # (networks, physics, optimizers in `compile`), so there is nothing to build.
        if all(layer.built for layer in self._flatten_layers()):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def call(self, y, training: bool = False):
        """Reconstruction ``G(y)``."""
        return self.generator(y, training=training)

    # --- the objective ---------------------------------------------------------------------
    def _forward(self, x, params):
        if params is None or not self._takes_params:
            return self.forward_op(x)
        return self.forward_op(x, params)

    def _alpha(self, t: tf.Tensor) -> tf.Tensor:
        shape = tf.concat([tf.shape(t)[:1], tf.ones([tf.rank(t) - 1], tf.int32)], 0)
        return keras.random.uniform(shape, seed=self.seed_generator)  # (B, 1, ..., 1)

    def _ramp(self, steps: int) -> tf.Tensor:
        """0 -> 1 linearly over the first ``steps`` generator steps (1 when ``steps`` is 0)."""
        if steps == 0:
            return tf.constant(1.0)
        return tf.minimum(1.0, tf.cast(self.g_optimizer.iterations, tf.float32) / float(steps))

    def current_gan_weight(self) -> tf.Tensor:
        """``gan_weight`` times its ramp over ``gan_warmup_steps``."""
        return self.gan_weight * self._ramp(self.gan_warmup_steps)

    def current_sigma(self) -> tf.Tensor:
        """``sigma`` times its ramp over ``cycle_warmup_steps``."""
        return self.sigma * self._ramp(self.cycle_warmup_steps)

    def _critic_side(self, critic, real, fake):
        """Wasserstein gap ``D(real) - D(fake)`` and gradient penalty of one critic, per sample."""
        gap = losses.critic_score(critic(real, training=True)) - losses.critic_score(critic(fake, training=True))
        return gap, losses.gradient_penalty(critic, real, fake, self._alpha(real))

    def critic_losses(self, real_x, fake_x, real_y, fake_y):
        """Critic losses to minimise, per sample: ``(φ(G(y)) - φ(x)) / sqrt(N) + gp_weight * gp`` (+ ψ side).

        Returns:
            ``(loss, gap_x, gp)``, each ``(B,)``: ``gap_x = φ(x) - φ(G(y))`` and ``gp`` the
            sum of the penalties of both critics.
        """
        gap_x, gp = self._critic_side(self.critic_x, real_x, fake_x)
        loss = -gap_x / _sqrt_size(real_x) + self.gp_weight * gp
        if self.critic_y is not None:
            gap_y, gp_y = self._critic_side(self.critic_y, real_y, fake_y)
            loss += -gap_y / _sqrt_size(real_y) + self.gp_weight * gp_y
            gp += gp_y
        return loss, gap_x, gp

    def generator_losses(self, real_x, real_y, x_params=None, y_params=None, fakes=None):
        """Generator loss per sample and its parts (see the class docstring); ``l_adv`` is
        weighted by :meth:`current_gan_weight`. ``x_params`` / ``y_params``: the per-sample
        parameters of ``forward_op`` for x's and y's acquisitions (e.g. ``{"mask": ...}``);
        ``fakes``: ``(G(y), Hx)`` when already computed (under the same tape), else computed here.

        Returns:
            ``(loss, parts)``: ``(B,)`` and a dict of ``(B,)`` tensors ``cycle_x``
            (``rho * mean|x - G(Hx)|``), ``cycle_y`` (``sigma * mean|y - H G(y)|``) and
            ``adversarial`` (``l_adv``, unweighted).
        """
        fake_x, fake_y = fakes if fakes is not None else self.fakes(real_x, real_y, x_params)
        # split: each cycle trains only the map that ends it (G(Hx): G only; H G(y): H only)
        into_g, into_h = fake_y, fake_x
        if self.cycle_gradients == "split":
            into_g, into_h = tf.stop_gradient(fake_y), tf.stop_gradient(fake_x)
        cycled_x = self.generator(into_g, training=True)  # G(Hx)
        cycled_y = self._forward(into_h, y_params)  # H G(y)
        cyc_x, cyc_y = losses.cycle_l1(real_x, cycled_x, real_y, cycled_y, self.rho, self.current_sigma())
        adv = -(1.0 - self.sigma) * losses.critic_score(self.critic_x(fake_x, training=True)) / _sqrt_size(fake_x)
        if self.critic_y is not None:
            adv += -(1.0 - self.rho) * losses.critic_score(self.critic_y(fake_y, training=True)) / _sqrt_size(fake_y)
        return cyc_x + cyc_y + self.current_gan_weight() * adv, {"cycle_x": cyc_x, "cycle_y": cyc_y, "adversarial": adv}

    def fakes(self, real_x, real_y, x_params=None) -> tuple[tf.Tensor, tf.Tensor]:
        """``(G(y), Hx + n)``: the generated image and the simulated measurement (``n`` the
        measurement noise, none unless ``noise_gain`` or ``noise_floor`` is set)."""
        simulated = poisson_gaussian(self._forward(real_x, x_params), self.noise_gain, self.noise_floor,
                                     self.seed_generator)
        return self.generator(real_y, training=True), simulated

    def critic_updates(self, real_x, fake_x, real_y, fake_y):
        """``n_critic`` updates of the critics on one batch (fresh interpolation weights each);
        with ``pool_x`` / ``pool_y`` (:class:`~tf_otcycle.layers.FakePool`) the critics see the
        fakes through the pool of past fakes, G's adversarial term the new ones.

        Returns:
            the last update's ``(loss, gap_x, gp, gradients)``.
        """
        fake_x, fake_y = tf.stop_gradient(fake_x), tf.stop_gradient(fake_y)
        if self.pool_x is not None:  # the authors' pool of past fakes: once per step, for all n_critic updates
            fake_x = self.pool_x(fake_x)
        if self.pool_y is not None and self.critic_y is not None:
            fake_y = self.pool_y(fake_y)
        for _ in range(self.n_critic):  # unrolled: merge_call cannot run inside a while loop
            with tf.GradientTape() as tape:
                d_loss, gap, gp = self.critic_losses(real_x, fake_x, real_y, fake_y)
                d_scaled = self.d_optimizer.scale_loss(global_mean(d_loss))  # loss scaling (mixed_float16)
            d_grads = tape.gradient(d_scaled, self.critic_variables)
            self.d_optimizer.apply_gradients(zip(d_grads, self.critic_variables))  # unscales, skips non-finite
        return d_loss, gap, gp, d_grads

    @staticmethod
    def unpack(data):
        data = unwrap(data, ("x", "y"))
        return data["x"], data["y"], params_of(data, "x"), params_of(data, "y")

    def train_step(self, data):
        real_x, real_y, x_params, y_params = self.unpack(data)
        # G(y) and Hx are computed once, under the generator's tape, and serve both phases: the
        # critic updates do not change G or H, so this equals recomputing them after (tested).
        with tf.GradientTape(persistent=self.h_optimizer is not None) as tape:
            fake_x, fake_y = self.fakes(real_x, real_y, x_params)
            with tape.stop_recording():
                d_loss, gap, gp, d_grads = self.critic_updates(real_x, fake_x, real_y, fake_y)
                ramps = {"gan_weight": self.current_gan_weight(), "sigma": self.current_sigma()}  # for the logs
            g_loss, parts = self.generator_losses(real_x, real_y, x_params, y_params, fakes=(fake_x, fake_y))
            g_total = global_mean(g_loss)
            g_scaled = self.g_optimizer.scale_loss(g_total)
            h_scaled = self.h_optimizer.scale_loss(g_total) if self.h_optimizer is not None else None
        if self.h_optimizer is None:
            g_grads = tape.gradient(g_scaled, self.generator_variables)
            g_norm = tf.linalg.global_norm(g_grads) / _loss_scale(self.g_optimizer)
            self.g_optimizer.apply_gradients(zip(g_grads, self.generator_variables))
        else:
            g_grads = tape.gradient(g_scaled, self.generator.trainable_variables)
            h_grads = tape.gradient(h_scaled, self.forward_op.trainable_variables)
            del tape
            g_norm = tf.linalg.global_norm([g / _loss_scale(self.g_optimizer) for g in g_grads]
                                           + [h / _loss_scale(self.h_optimizer) for h in h_grads])
            self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_variables))
            self.h_optimizer.apply_gradients(zip(h_grads, self.forward_op.trainable_variables))
        values = {
            "g_loss": g_loss,
            **parts,
            **ramps,
            "critic_loss": d_loss,
            "wasserstein": gap / _sqrt_size(real_x),
            "critic_gap": gap,
            "gp": gp,
            "g_grad_norm": g_norm,
            "d_grad_norm": tf.linalg.global_norm(d_grads) / _loss_scale(self.d_optimizer),
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return step_logs({name: t.result() for name, t in self.trackers.items()})

    def test_step(self, data):
        real_x, real_y, x_params, y_params = self.unpack(data)
        g_loss, parts = self.generator_losses(real_x, real_y, x_params, y_params)
        self.trackers["g_loss"].update_state(g_loss)
        self.trackers["cycle_x"].update_state(parts["cycle_x"])
        self.trackers["cycle_y"].update_state(parts["cycle_y"])
        return step_logs({name: self.trackers[name].result() for name in ("g_loss", "cycle_x", "cycle_y")})


def _loss_scale(optimizer) -> tf.Tensor:
    """The current loss scale of a ``LossScaleOptimizer`` (mixed_float16), else 1."""
    scale = getattr(optimizer, "dynamic_scale", None)
    return tf.cast(tf.convert_to_tensor(scale), tf.float32) if scale is not None else tf.constant(1.0)


def _sqrt_size(t: tf.Tensor) -> tf.Tensor:
    """``sqrt(N)``, N the number of elements of one sample of ``t``."""
    return tf.sqrt(tf.cast(tf.reduce_prod(tf.shape(t)[1:]), t.dtype))
