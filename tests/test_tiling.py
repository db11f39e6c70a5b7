import keras
import numpy as np
import pytest

from tf_otcycle.models import build_unet
from tf_otcycle.tiling import axis_weights, predict_tiled, tile_starts


@pytest.mark.parametrize("size,tile,overlap", [(100, 32, 8), (64, 64, 16), (70, 32, 16), (33, 32, 8), (20, 32, 8)])
def test_weights_are_a_partition_of_unity(size, tile, overlap):
    """(Overlaps above tile // 2 are refused: three tiles would share voxels.)"""
    starts = tile_starts(size, tile, overlap)
    total = np.zeros(max(size, tile))
    for s, w in zip(starts, axis_weights(size, tile, starts)):
        total[s : s + len(w)] += w
    np.testing.assert_allclose(total[:size], 1.0, atol=1e-12)
    assert starts[-1] + min(tile, size) == max(size, min(tile, size))


def _conv_net():
    inp = keras.Input((None, None, None, 1))
    x = keras.layers.Conv3D(4, 3, padding="same", activation="relu")(inp)
    out = keras.layers.Conv3D(1, 3, padding="same")(x)
    return keras.Model(inp, out)


@pytest.mark.parametrize("shape", [(40, 37, 50), (16, 16, 16), (10, 30, 21)])
def test_tiled_equals_single_pass_for_a_local_network(shape):
    net = _conv_net()  # receptive radius 2 <= margin overlap // 4 = 2
    vol = np.random.default_rng(0).random(shape).astype(np.float32)
    full = net(np.pad(vol, [(0, max(0, 16 - n)) for n in shape], mode="symmetric")[None, ..., None]).numpy()[0, ..., 0]
    full = full[: shape[0], : shape[1], : shape[2]]
    tiled = predict_tiled(lambda b: net(b), vol, tile=16, overlap=8, batch_size=3)
    assert tiled.shape == shape
    np.testing.assert_allclose(tiled, full, atol=1e-3)  # oneDNN picks shape-dependent conv kernels
    assert np.mean(np.abs(tiled - full)) < 1e-5


def test_tiled_unet_close_to_single_pass():
    g = build_unet(3, 1, depth=1, base_filters=2, activation="relu", output_activation="sigmoid")
    vol = np.random.default_rng(1).random((24, 24, 24)).astype(np.float32)
    full = g(vol[None, ..., None]).numpy()[0, ..., 0]
    tiled = predict_tiled(lambda b: g(b), vol, tile=16, overlap=8)
    # Instance norm sees tile statistics instead of the volume's: close, not equal.
    assert np.mean(np.abs(tiled - full)) < 0.05


def test_overlaps_above_half_the_tile_are_refused():
    with pytest.raises(ValueError, match=r"overlap: 9 must be in \[0, tile // 2 = 8\]"):
        tile_starts(40, 16, 9)
