import keras
import numpy as np
import pytest

from tf_otcycle.layers import InstanceNormalization
from tf_otcycle.models import build_multiscale_patchgan, build_patchgan, build_unet

UNET_KWARGS = dict(ndim=2, in_channels=2, depth=2, base_filters=4, residual=True)


def test_unet_2d_shapes_and_linear_output():
    g = build_unet(**UNET_KWARGS)
    x = np.random.default_rng(0).standard_normal((2, 16, 24, 2)).astype(np.float32)
    assert g(x).shape == (2, 16, 24, 2)
    assert g.get_layer("output").activation.__name__ == "linear"
    assert any(isinstance(layer, InstanceNormalization) for layer in g.layers)


def test_unet_3d_kappa_7_sigmoid():
    g = build_unet(ndim=3, in_channels=1, depth=3, base_filters=2, activation="relu",
                   output_activation="sigmoid", bottleneck_convs=1)
    convs = [layer for layer in g.layers
             if isinstance(layer, keras.layers.Conv3D) and not isinstance(layer, keras.layers.Conv3DTranspose)]
    down = [c for c in convs if c.name.startswith(("down", "bottom"))]
    up = [c for c in convs if c.name.startswith(("dec", "output"))]
    assert len(down) == 7 and len(up) == 7
    y = g(np.random.default_rng(0).random((1, 16, 16, 16, 1)).astype(np.float32)).numpy()
    assert y.shape == (1, 16, 16, 16, 1) and y.min() >= 0 and y.max() <= 1


def test_unet_rejects_indivisible_shape():
    with pytest.raises(ValueError, match="divisible"):
        build_unet(spatial_shape=(30, 32), depth=2)


def test_patchgan_is_linear_and_patchwise():
    c = build_patchgan(2, 2, base_filters=4, n_layers=2)
    out = c(np.zeros((1, 32, 32, 2), np.float32))
    assert out.shape == (1, 8, 8, 1)
    assert c.get_layer("score").activation.__name__ == "linear"


def test_multiscale_patchgan_three_independent_scales():
    c = build_multiscale_patchgan(3, 1, base_filters=2, n_layers=1, seed=0)
    outs = c(np.zeros((1, 16, 16, 16, 1), np.float32))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 8, 8, 1), (1, 4, 4, 4, 1), (1, 2, 2, 2, 1)]
    subs = [layer for layer in c.layers if isinstance(layer, keras.Model)]
    assert len(subs) == 3 and len({id(w) for s in subs for w in s.weights}) == sum(len(s.weights) for s in subs)


def test_generator_keras_round_trip(tmp_path):
    g = build_unet(**UNET_KWARGS)
    g.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras", safe_mode=True)
    x = np.random.default_rng(1).standard_normal((1, 16, 16, 2)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), g(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("norm,groups", [("none", None), ("layer", 1), ("instance", -1)])  # groups as in Keras
def test_patchgan_critic_normalisation(norm, groups):
    critic = build_patchgan(2, 2, base_filters=4, n_layers=2, norm=norm)
    norms = [layer for layer in critic.layers if isinstance(layer, keras.layers.GroupNormalization)]
    if groups is None:
        assert not norms
    else:
        assert norms and all(layer.name.startswith(f"{norm}_norm") for layer in norms)
        if norm == "layer":  # one group: statistics over space and all channels of a sample
            assert all(layer.groups == 1 for layer in norms)
    assert critic(np.zeros((1, 16, 16, 2), np.float32)).shape == (1, 4, 4, 1)


def test_patchgan_rejects_unknown_norm():
    with pytest.raises(ValueError, match="norm"):
        build_patchgan(norm="batch")
