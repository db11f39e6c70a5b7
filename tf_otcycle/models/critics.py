"""Wasserstein critics (Kantorovich potentials phi, psi): PatchGAN and multi-scale PatchGAN."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tf_otcycle.layers.crop import RandomSpatialCrop

_CONV = {2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
_NORM_GROUPS = {"none": 0, "layer": 1, "instance": -1}  # GroupNormalization groups


def build_patchgan(
    ndim: int = 2,
    in_channels: int = 2,
    base_filters: int = 64,
    n_layers: int = 3,
    spatial_shape: Sequence[int | None] | None = None,
    norm: str = "none",
    name: str = "patchgan",
) -> keras.Model:
    """PatchGAN critic of the original CycleGAN (Isola et al. 2017), Wasserstein version.

    ``4^ndim`` convs: stride 2 with ``base_filters`` (no norm), then ``n_layers - 1``
    stride-2 and one stride-1 conv with doubling filters (capped at 8x), each followed by
    instance norm and leaky ReLU (0.2), and a final 1-filter conv with a *linear* output
    (no sigmoid: the critic is a 1-Lipschitz potential, kept so by the gradient penalty).

    Returns:
        ``keras.Model`` mapping ``(B, *spatial, in_channels)`` to a score map
        ``(B, *spatial / 2**n_layers, 1)``.
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim: expected 2 or 3, got {ndim!r}")
    if norm not in _NORM_GROUPS:
        raise ValueError(f"norm: expected one of {sorted(_NORM_GROUPS)}, got {norm!r}")
    if n_layers < 1 or base_filters < 1:
        raise ValueError(f"n_layers/base_filters: expected >= 1, got {n_layers}/{base_filters}")
    spatial_shape = (None,) * ndim if spatial_shape is None else tuple(spatial_shape)
    conv = _CONV[ndim]
    inputs = keras.Input(spatial_shape + (in_channels,), name="image")
    x = conv(base_filters, 4, strides=2, padding="same", name="conv0")(inputs)
    x = keras.layers.LeakyReLU(0.2, name="lrelu0")(x)
    for i in range(1, n_layers + 1):
        stride = 2 if i < n_layers else 1
        filters = base_filters * min(2**i, 8)
        x = conv(filters, 4, strides=stride, padding="same", name=f"conv{i}")(x)
        if norm != "none":
            x = keras.layers.GroupNormalization(groups=_NORM_GROUPS[norm], epsilon=1e-5, name=f"{norm}_norm{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
    x = conv(1, 4, padding="same", name="score", dtype="float32")(x)  # scores in float32 under mixed precision
    return keras.Model(inputs, x, name=name)


def build_multiscale_patchgan(
    ndim: int = 3,
    in_channels: int = 1,
    base_filters: int = 32,
    n_layers: int = 2,
    fractions: Sequence[float] = (1.0, 0.5, 0.25),
    spatial_shape: Sequence[int | None] | None = None,
    seed: int | None = None,
    norm: str = "none",
    name: str = "multiscale_patchgan",
) -> keras.Model:
    """Multi-PatchGAN (paper fig. 8): independent PatchGANs on the full patch and on random
    crops of half and quarter size.

    Returns:
        ``keras.Model`` with one input and a list of score maps, one per scale; the
        OT-cycleGAN sums their Wasserstein losses and penalises each one's gradient.
    """
    spatial_shape = (None,) * ndim if spatial_shape is None else tuple(spatial_shape)
    inputs = keras.Input(spatial_shape + (in_channels,), name="image")
    outputs = []
    for s, fraction in enumerate(fractions):
        x = inputs
        if fraction != 1.0:
            x = RandomSpatialCrop(fraction, seed=None if seed is None else seed + s, name=f"crop{s}")(x)
        critic = build_patchgan(ndim, in_channels, base_filters, n_layers, norm=norm, name=f"{name}_scale{s}")
        outputs.append(critic(x))
    return keras.Model(inputs, outputs, name=name)
