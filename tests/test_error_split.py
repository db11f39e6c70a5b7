"""benchmarks/error_split.py: each share and PSNR on a case whose answer is known."""

import numpy as np
import pytest

from tests.scripts import load_script
from tf_otcycle.physics.fft import fft2c, ifft2c

split = load_script("benchmarks/error_split.py", "error_split")


def _case():
    rng = np.random.RandomState(0)
    truth = np.zeros((2, 16, 16), np.complex64)
    truth[:, 4:12, 4:12] = (1.0 + rng.rand(2, 8, 8)) * np.exp(1j * 0.3)
    mask = np.zeros(16, np.float32)
    mask[[2, 7, 8, 13]] = 1.0
    return truth, np.abs(truth) * 2.0, np.full(2, 2.0, np.float32), mask


def _with_kspace_error(truth, columns):
    k = fft2c(truth).numpy()
    k[:, :, columns] += 0.05
    return ifft2c(k).numpy()


def test_measured_share_is_where_the_kspace_error_lies():
    truth, target, scale, mask = _case()
    on = split.error_split(target, truth, _with_kspace_error(truth, [7, 13]), scale, mask)
    off = split.error_split(target, truth, _with_kspace_error(truth, [0, 5]), scale, mask)
    both = split.error_split(target, truth, _with_kspace_error(truth, [7, 5]), scale, mask)
    assert on["measured_share"] == pytest.approx(1.0, abs=1e-5)
    assert off["measured_share"] == pytest.approx(0.0, abs=1e-5)
    assert both["measured_share"] == pytest.approx(0.5, abs=1e-3)


def test_psnrs_and_background_share_on_known_errors():
    truth, target, scale, mask = _case()
    out = truth.copy()
    out[:, 0, 0] += 0.1  # background only, real: magnitude and complex errors equal
    r = split.error_split(target, truth, out, scale, mask)
    mse = (0.1 * 2.0) ** 2 / 256
    assert r["psnr"] == pytest.approx(10 * np.log10(target.max() ** 2 / mse), abs=1e-3)
    assert r["psnr_complex"] == pytest.approx(r["psnr"], abs=1e-3)
    assert r["background_share"] == pytest.approx(1.0)
    assert r["psnr_foreground"] > 200  # no error inside
    phase = truth * np.exp(1j * 0.5)  # the right magnitude, the wrong phase: only the complex PSNR falls
    r = split.error_split(target, truth, phase.astype(np.complex64), scale, mask)
    assert r["psnr"] > 100 and r["psnr_complex"] < 20


def test_data_consistency_rows_have_no_error_on_the_measured_columns():
    truth, _, _, mask = _case()
    y = ifft2c(fft2c(truth).numpy() * mask[None, None, :]).numpy()

    def generator(x, training=False):
        return x * 1.5  # wrong everywhere, also on the measured columns

    outs = split.reconstructions({"g": generator}, y, mask)
    assert set(outs) == {"input", "g", "g+dc"}
    k_dc, k_y = fft2c(outs["g+dc"]).numpy(), fft2c(y).numpy()
    np.testing.assert_allclose(k_dc[..., mask > 0], k_y[..., mask > 0], atol=1e-5)
    np.testing.assert_allclose(outs["g"], 1.5 * y, rtol=1e-6)
