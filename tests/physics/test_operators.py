"""Every forward operator is checked for adjointness: <A x, y> = <x, A^H y> (deepinv's test)."""

import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.layers import FFTMask, PSFConv2D, PSFConv3D
from tf_otcycle.physics import gaussian_psf, random_mask
from tf_otcycle.physics.operators import (
    CartesianSampling,
    Convolution,
    LinearOperator,
    undersampling,
)

RNG = np.random.default_rng(0)


def _rand(*shape):
    return tf.constant(RNG.standard_normal(shape).astype(np.float32))


def _masks(batch, width):
    return tf.constant(np.stack([random_mask(width, 4, 0.125, seed=i) for i in range(batch)]))


def _asym_psf(shape):
    return tf.constant((RNG.random(shape) * np.linspace(0.2, 1.0, shape[-1])).astype(np.float32))


class _LayerOp(LinearOperator):
    """A physics layer seen through the operator protocol (its call and its adjoint)."""

    def __init__(self, layer, with_params):
        self.layer, self.with_params = layer, with_params

    def forward(self, x, params=None):
        return self.layer(x, params) if self.with_params else self.layer(x)

    def adjoint(self, y, params=None):
        return self.layer.adjoint(y, params) if self.with_params else self.layer.adjoint(y)


def _psf_layer(cls, kernel):
    layer = cls(kernel, learn_gain=True)
    layer.set_psf(RNG.random(kernel).astype(np.float32))
    layer.set_gain(1.7)
    return layer


# (name, operator, x shape, y shape, params)
CASES = [
    ("cartesian_sampling", CartesianSampling(), (3, 12, 16, 2), (3, 12, 16, 2), {"mask": _masks(3, 16)}),
    ("cartesian_sampling_shared_mask", CartesianSampling(), (2, 8, 10, 2), (2, 8, 10, 2),
     {"mask": tf.constant(random_mask(10, 2, 0.2, seed=3))}),
    ("undersampling", undersampling(), (3, 12, 16, 2), (3, 12, 16, 2), {"mask": _masks(3, 16)}),
    ("convolution_2d_fft", Convolution(_asym_psf((5, 4))), (2, 13, 11, 3), (2, 13, 11, 3), None),
    ("convolution_2d_direct", Convolution(_asym_psf((4, 6)), "direct"), (2, 9, 12, 1), (2, 9, 12, 1), None),
    ("convolution_3d_fft", Convolution(_asym_psf((4, 5, 6))), (2, 9, 10, 11, 1), (2, 9, 10, 11, 1), None),
    ("convolution_3d_direct", Convolution(_asym_psf((3, 4, 4)), "direct"), (1, 7, 8, 9, 2), (1, 7, 8, 9, 2), None),
    ("convolution_psf_param", Convolution(), (2, 10, 10, 1), (2, 10, 10, 1), {"psf": _asym_psf((6, 6))}),
    ("composition", Convolution(_asym_psf((3, 3))) @ Convolution(_asym_psf((4, 2))), (1, 10, 9, 1), (1, 10, 9, 1),
     None),
    ("adjoint_of_blur", Convolution(_asym_psf((4, 4))).H, (1, 8, 8, 1), (1, 8, 8, 1), None),
    ("fft_mask_layer", _LayerOp(FFTMask(), True), (3, 12, 16, 2), (3, 12, 16, 2), _masks(3, 16)),
    ("learned_psf_3d_layer", _LayerOp(_psf_layer(PSFConv3D, (6, 5, 4)), False), (2, 10, 9, 8, 1), (2, 10, 9, 8, 1),
     None),
    ("learned_psf_2d_layer", _LayerOp(_psf_layer(PSFConv2D, (6, 7)), False), (2, 12, 11, 1), (2, 12, 11, 1), None),
]


@pytest.mark.parametrize("name,op,x_shape,y_shape,params", CASES, ids=[c[0] for c in CASES])
def test_adjointness(name, op, x_shape, y_shape, params):
    x, y = _rand(*x_shape), _rand(*y_shape)
    lhs = float(tf.reduce_sum(op.forward(x, params) * y))
    rhs = float(tf.reduce_sum(x * op.adjoint(y, params)))
    assert abs(lhs - rhs) <= 1e-4 * max(1.0, abs(lhs)), (lhs, rhs)


def test_undersampling_is_the_layer_and_a_self_adjoint_projection():
    x, masks = _rand(3, 12, 16, 2), _masks(3, 16)
    h = undersampling()
    hx = h(x, {"mask": masks})
    np.testing.assert_allclose(hx.numpy(), FFTMask()(x, masks).numpy(), atol=1e-5)
    np.testing.assert_allclose(h(hx, {"mask": masks}).numpy(), hx.numpy(), atol=1e-5)  # H H = H
    assert h.param_keys == ("mask",)
    with pytest.raises(ValueError, match="mask"):
        h(x)


def test_composition_applies_inner_first_and_the_layer_equals_the_operator():
    a, b = _asym_psf((3, 3)), _asym_psf((5, 2))
    x = _rand(1, 10, 9, 1)
    composed = (Convolution(a) @ Convolution(b))(x)
    np.testing.assert_allclose(composed.numpy(), Convolution(a)(Convolution(b)(x)).numpy(), atol=1e-6)
    psf = gaussian_psf((6, 6, 6), (1.5, 1.0, 1.0))
    layer = PSFConv3D(6)
    layer.set_psf(psf)
    v = _rand(1, 12, 12, 12, 1)
    np.testing.assert_allclose(layer(v).numpy(), Convolution(psf)(v).numpy(), atol=1e-6)


def test_bad_shapes_name_the_problem():
    with pytest.raises(ValueError, match="2-D or 3-D"):
        Convolution(np.ones((3,), np.float32))(_rand(1, 4, 1))
    with pytest.raises(ValueError, match="expected shape"):
        Convolution(np.ones((3, 3), np.float32))(_rand(1, 4, 4, 4, 1))
