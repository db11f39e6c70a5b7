"""U-Net generators (the deep generator G: measurement y -> image x)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tf_otcycle.layers.normalization import InstanceNormalization

_CONV = {2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
_POOL = {2: keras.layers.MaxPooling2D, 3: keras.layers.MaxPooling3D}
_UP = {2: keras.layers.Conv2DTranspose, 3: keras.layers.Conv3DTranspose}


def conv_block(x, filters: int, ndim: int, activation: str, name: str):
    """3^ndim conv -> instance norm -> activation."""
    x = _CONV[ndim](filters, 3, padding="same", name=f"{name}_conv")(x)
    x = InstanceNormalization(epsilon=1e-5, name=f"{name}_in")(x)
    if activation == "leaky_relu":
        return keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)
    return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)


def build_unet(
    ndim: int = 2,
    in_channels: int = 2,
    out_channels: int | None = None,
    depth: int = 4,
    base_filters: int = 32,
    convs_per_level: int = 2,
    bottleneck_convs: int | None = None,
    activation: str = "leaky_relu",
    output_activation: str | None = None,
    residual: bool = False,
    spatial_shape: Sequence[int | None] | None = None,
    output_bias: float = 0.0,
    name: str = "unet",
) -> keras.Model:
    """U-Net of conv - instance norm - activation blocks with pooling and skip connections.

    Contracting path: ``depth`` levels of ``convs_per_level`` blocks, each level followed by
    2x max pooling (filters ``base_filters * 2**level``), then ``bottleneck_convs`` blocks.
    Expanding path: per level a stride-2 transposed conv, concatenation with the skip, and
    ``convs_per_level`` blocks; a final 1^ndim conv with ``output_activation``.

    * MRI (paper fig. 6a): ``ndim=2``, 2 channels in/out, leaky ReLU, linear output;
      ``residual=True`` adds the input to the output (the network learns the aliasing).
    * Microscopy (paper fig. 7): ``ndim=3``, ReLU, sigmoid output; with ``depth=3``,
      ``convs_per_level=2`` and ``bottleneck_convs=1`` each path has kappa = 7 conv layers.

    Args:
        ndim: 2 (images) or 3 (volumes).
        in_channels: input channels (2 = real/imag for MRI, 1 for microscopy).
        out_channels: output channels; defaults to ``in_channels``.
        depth: number of poolings; spatial sizes must be multiples of ``2**depth``.
        base_filters: filters of the first level.
        convs_per_level: conv blocks per level.
        bottleneck_convs: conv blocks at the bottom; defaults to ``convs_per_level``.
        activation: ``'leaky_relu'`` (slope 0.2) or a Keras activation name.
        output_activation: None (linear) or e.g. ``'sigmoid'``.
        residual: add the input to the (linear) output; needs out_channels == in_channels.
        spatial_shape: static spatial shape, or None for any size (SavedModel friendly).
        output_bias: initial bias of the output conv (e.g. ``logit(mean intensity)`` for a
            sigmoid output on sparse data, so training starts near the data's mean).
        name: model name.

    Returns:
        ``keras.Model`` mapping ``(B, *spatial, in_channels)`` to ``(B, *spatial, out_channels)``.
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim: expected 2 or 3, got {ndim!r}")
    out_channels = in_channels if out_channels is None else out_channels
    if depth < 0 or base_filters < 1 or convs_per_level < 1:
        raise ValueError(
            f"depth/base_filters/convs_per_level: expected >= 0/>= 1/>= 1, got "
            f"{depth}/{base_filters}/{convs_per_level}"
        )
    if residual and out_channels != in_channels:
        raise ValueError("residual: needs out_channels == in_channels")
    if residual and output_activation is not None:
        raise ValueError("residual: needs a linear output (output_activation=None)")
    spatial_shape = (None,) * ndim if spatial_shape is None else tuple(spatial_shape)
    if len(spatial_shape) != ndim:
        raise ValueError(f"spatial_shape: expected {ndim} sizes, got {spatial_shape}")
    for n in spatial_shape:
        if n is not None and n % (2**depth):
            raise ValueError(
                f"spatial_shape: {spatial_shape} is not divisible by 2**depth = {2**depth}"
            )
    bottleneck_convs = convs_per_level if bottleneck_convs is None else bottleneck_convs

    inputs = keras.Input(spatial_shape + (in_channels,), name="measurement")
    x = inputs
    skips = []
    # === Contracting path ===
    for level in range(depth):
        for i in range(convs_per_level):
            x = conv_block(x, base_filters * 2**level, ndim, activation, f"down{level}_{i}")
        skips.append(x)
        x = _POOL[ndim](2, name=f"pool{level}")(x)
    for i in range(bottleneck_convs):
        x = conv_block(x, base_filters * 2**depth, ndim, activation, f"bottom_{i}")
    # === Expanding path ===
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = _UP[ndim](filters, 2, strides=2, padding="same", name=f"up{level}")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        for i in range(convs_per_level):
            x = conv_block(x, filters, ndim, activation, f"dec{level}_{i}")
    x = _CONV[ndim](  # float32 under a mixed-precision policy: exports take and return float32
        out_channels, 1, activation=output_activation, name="output",
        bias_initializer=keras.initializers.Constant(output_bias), dtype="float32",
    )(x)
    if residual:
        x = keras.layers.Add(name="residual", dtype="float32")([x, inputs])
    return keras.Model(inputs, x, name=name)
