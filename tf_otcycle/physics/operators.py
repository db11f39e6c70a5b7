"""Linear forward operators with adjoints: the ``H`` of each inverse problem, written once.

Protocol (after deepinv's ``physics/forward.py``): an operator ``A`` has

* ``A.forward(x, params)`` (also ``A(x, params)``): the measurement ``A x``;
* ``A.adjoint(y, params)``: ``A^H y``, exact, so ``<A x, y> = <x, A^H y>`` (tested for every
  operator in ``tests/physics/test_operators.py``);
* ``A.param_keys``: the keys it reads from ``params``, a dict of per-sample tensors that the
  data pipeline produces and the model forwards without knowing their names (MRI:
  ``{"mask": (B, W)}``; a fixed operator needs none);
* composition ``A @ B`` (``x -> A(B(x))``), the adjoint operator ``A.H`` and the normal
  operator ``A.normal() = A.H @ A``.

The same objects serve training (the Keras layers in :mod:`tf_otcycle.layers` call them),
the data pipelines, the classical solvers (:func:`tf_otcycle.classical.pls_tv` takes any
linear operator) and the exports. Images are real 2-channel (real, imaginary) or real
single-channel tensors, channels last, float32; inner products are real (the real part of
the complex one), which is what the gradient of a real loss needs.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from tf_otcycle.physics import convolution
from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels, fft2c, ifft2c

Params = Mapping[str, tf.Tensor] | None


class LinearOperator:
    """Base class: subclasses define ``forward`` and ``adjoint``."""

    param_keys: tuple[str, ...] = ()

    def forward(self, x: tf.Tensor, params: Params = None) -> tf.Tensor:
        raise NotImplementedError

    def adjoint(self, y: tf.Tensor, params: Params = None) -> tf.Tensor:
        raise NotImplementedError

    def __call__(self, x: tf.Tensor, params: Params = None) -> tf.Tensor:
        return self.forward(x, params)

    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        return Composition(self, other)

    @property
    def H(self) -> LinearOperator:  # noqa: N802 (the adjoint's usual name)
        return Adjoint(self)

    def normal(self) -> LinearOperator:
        """``A^H A``."""
        return Composition(Adjoint(self), self)

    def _param(self, params: Params, key: str) -> tf.Tensor:
        if params is None or key not in params:
            raise ValueError(f"{type(self).__name__}: needs params[{key!r}] (its per-sample parameters: "
                             f"{self.param_keys})")
        return params[key]


class Adjoint(LinearOperator):
    """``A^H`` as an operator (its adjoint is ``A``)."""

    def __init__(self, op: LinearOperator):
        self.op = op
        self.param_keys = op.param_keys

    def forward(self, x, params=None):
        return self.op.adjoint(x, params)

    def adjoint(self, y, params=None):
        return self.op.forward(y, params)


class Composition(LinearOperator):
    """``outer @ inner``: ``x -> outer(inner(x))``; adjoint ``inner^H(outer^H(y))``."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        self.outer, self.inner = outer, inner
        self.param_keys = tuple(dict.fromkeys(outer.param_keys + inner.param_keys))

    def forward(self, x, params=None):
        return self.outer.forward(self.inner.forward(x, params), params)

    def adjoint(self, y, params=None):
        return self.inner.adjoint(self.outer.adjoint(y, params), params)


class CartesianSampling(LinearOperator):
    """MRI acquisition ``A x = P_mask F x``: image ``(B, H, W, 2)`` -> masked centred
    k-space ``(B, H, W, 2)``; ``A^H k = F^H P_mask k`` (``F`` the centred orthonormal FFT).

    ``params["mask"]``: float ``(W,)`` or ``(B, W)``, 1 on the sampled phase-encoding columns.
    The paper's image-domain ``H = F^H P F`` is :func:`undersampling` ``= A^H A``.
    """

    param_keys = ("mask",)

    def forward(self, x, params=None):
        m = _column_mask(self._param(params, "mask"))
        return complex_to_channels(fft2c(channels_to_complex(x)) * m)

    def adjoint(self, y, params=None):
        m = _column_mask(self._param(params, "mask"))
        return complex_to_channels(ifft2c(channels_to_complex(y) * m))


def undersampling() -> LinearOperator:
    """The MRI forward operator of the paper (eq. 23), ``H = F^H P F``: a self-adjoint
    projection on ``(B, H, W, 2)`` images, ``params["mask"]`` per sample."""
    return CartesianSampling().normal()


class Convolution(LinearOperator):
    """Blur ``A x = h * x`` with a PSF, 2-D ``(B, H, W, C)`` or 3-D ``(B, D, H, W, C)``.

    The PSF is fixed (``psf=``) or per call (``params["psf"]``, e.g. a learned kernel); it is
    used as given (normalise it to unit sum to preserve flux). Centred at ``kernel // 2``,
    zero boundary, same size (see :mod:`tf_otcycle.physics.convolution`).
    """

    def __init__(self, psf: tf.Tensor | None = None, implementation: str = "fft"):
        self.psf = None if psf is None else tf.convert_to_tensor(psf, tf.float32)
        self.implementation = implementation
        self.param_keys = () if psf is not None else ("psf",)

    def _psf(self, params):
        return self.psf if self.psf is not None else self._param(params, "psf")

    def forward(self, x, params=None):
        return convolution.convolve(x, self._psf(params), self.implementation)

    def adjoint(self, y, params=None):
        return convolution.convolve_adjoint(y, self._psf(params), self.implementation)


def _column_mask(mask) -> tf.Tensor:
    """``(W,)`` or ``(B, W)`` -> complex64 broadcastable to ``(B, H, W)``."""
    m = tf.cast(tf.convert_to_tensor(mask), tf.complex64)
    if m.shape.rank not in (1, 2):
        raise ValueError(f"mask: expected shape (W,) or (B, W), got {m.shape}")
    return m[None, None, :] if m.shape.rank == 1 else m[:, None, :]
