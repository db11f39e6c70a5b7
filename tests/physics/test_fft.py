import numpy as np
import pytest

from tf_otcycle.physics import (
    channels_to_complex,
    complex_to_channels,
    fft2c,
    fft2c_channels,
    ifft2c,
    ifft2c_channels,
)


def _rand(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.mark.parametrize("shape", [(8, 8), (3, 7, 10), (2, 1, 9, 6)])
def test_fft2c_matches_numpy_centered_ortho(shape):
    x = _rand(shape)
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(fft2c(x).numpy(), ref, atol=1e-5)
    iref = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(ifft2c(x).numpy(), iref, atol=1e-5)


def test_parseval_and_round_trip():
    x = _rand((4, 15, 12))
    k = fft2c(x).numpy()
    np.testing.assert_allclose(np.linalg.norm(k), np.linalg.norm(x), rtol=1e-5)
    np.testing.assert_allclose(ifft2c(k).numpy(), x, atol=1e-5)


def test_zero_frequency_is_centred():
    x = np.ones((6, 8), np.complex64)
    k = fft2c(x).numpy()
    assert np.argmax(np.abs(k)) == np.ravel_multi_index((3, 4), k.shape)


def test_channel_layout_round_trip():
    x = _rand((2, 5, 6))
    ch = complex_to_channels(x).numpy()
    assert ch.shape == (2, 5, 6, 2)
    np.testing.assert_array_equal(ch[..., 0], x.real)
    np.testing.assert_array_equal(ch[..., 1], x.imag)
    np.testing.assert_array_equal(channels_to_complex(ch).numpy(), x)
    np.testing.assert_allclose(ifft2c_channels(fft2c_channels(ch)).numpy(), ch, atol=1e-5)


def test_bad_channel_count():
    with pytest.raises(ValueError, match="2 channels"):
        channels_to_complex(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="rank"):
        fft2c(np.zeros((4,), np.complex64))
