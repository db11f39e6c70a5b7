"""The self-supervised baselines: each loss on known cases, zero for a perfect reconstruction,
its gradient reaching G, SSDU's split of the measured columns and EI's transforms."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.layers import FFTMask, PSFConv3D
from tf_otcycle.models import build_unet
from tf_otcycle.physics.fft import channels_to_complex, fft2c
from tf_otcycle.self_supervised import (
    SelfSupervised,
    equivariance,
    measurement_consistency,
    random_transform,
    rotate90,
    ssdu_loss,
    ssdu_split,
    transform,
)


def mri_batch(seed=0, width=16):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, width, width, 2)).astype("float32")
    masks = (rng.random((2, width)) < 0.5).astype("float32")
    masks[:, width // 2 - 1 : width // 2 + 1] = 1
    y = FFTMask()(x, masks).numpy()
    return x, y, masks


def test_measurement_consistency_and_equivariance_are_mean_squared_errors():
    a = np.zeros((2, 4, 4, 1), np.float32)
    b = np.ones((2, 4, 4, 1), np.float32) * np.array([1.0, 3.0], np.float32)[:, None, None, None]
    np.testing.assert_allclose(measurement_consistency(a, b), [1.0, 9.0])
    np.testing.assert_allclose(equivariance(b, b), [0.0, 0.0])


def test_ssdu_loss_is_the_normalised_l1_l2_on_the_loss_columns():
    x, y, masks = mri_batch()
    lam = masks * (np.arange(16) % 3 == 0)
    k_x, k_y = fft2c(channels_to_complex(x)).numpy(), fft2c(channels_to_complex(y)).numpy()
    diff, ref = (k_x - k_y) * lam[:, None, :], k_y * lam[:, None, :]
    expected = (np.sqrt((np.abs(diff) ** 2).sum((1, 2))) / np.sqrt((np.abs(ref) ** 2).sum((1, 2)))
                + np.abs(diff).sum((1, 2)) / np.abs(ref).sum((1, 2)))
    np.testing.assert_allclose(ssdu_loss(x, y, lam), expected, rtol=1e-4)
    # a perfect reconstruction agrees with the measurement on every measured column
    np.testing.assert_allclose(ssdu_loss(x, y, masks * 0 + lam), ssdu_loss(x, y, lam))
    np.testing.assert_allclose(ssdu_loss(y + FFTMask()(x, 1 - masks).numpy(), y, lam), [0.0, 0.0], atol=1e-5)


def test_ssdu_split_keeps_the_acs_and_draws_forty_percent_of_the_measured_columns():
    _, _, masks = mri_batch(width=32)
    masks[:, 14:18] = 1
    seed = keras.random.SeedGenerator(3)
    theta, lam = (t.numpy() for t in ssdu_split(masks, (14, 18), 0.4, seed))
    np.testing.assert_array_equal(theta + lam, masks)
    assert set(np.unique(lam)) <= {0.0, 1.0} and lam[:, 14:18].sum() == 0  # the ACS stays in Θ
    np.testing.assert_array_equal(lam.sum(1), np.round(0.4 * masks.sum(1)))
    _, again = ssdu_split(masks, (14, 18), 0.4, seed)
    assert not np.array_equal(again.numpy(), lam)  # a fresh split each call
    _, same = ssdu_split(masks, (14, 18), 0.4, keras.random.SeedGenerator(3))
    np.testing.assert_array_equal(same.numpy(), lam)  # seeded


def test_transforms_form_the_group_of_quarter_turns_flips_and_shifts():
    x = np.arange(2 * 3 * 4 * 4 * 1, dtype=np.float32).reshape(2, 3, 4, 4, 1)
    once = rotate90(tf.constant(x), (2, 3)).numpy()
    np.testing.assert_array_equal(once, np.rot90(x, 1, axes=(2, 3)))  # a quarter turn of the lateral plane
    four = x
    for _ in range(4):
        four = rotate90(tf.constant(four), (2, 3)).numpy()
    np.testing.assert_array_equal(four, x)
    t = transform(tf.constant(x), 1, 1, tf.constant([1, 2]), (2, 3)).numpy()
    np.testing.assert_array_equal(t, np.roll(np.flip(once, 3), (1, 2), (2, 3)))
    seed = keras.random.SeedGenerator(0)
    drawn = {random_transform(tf.constant(x), (2, 3), True, seed).numpy().tobytes() for _ in range(20)}
    assert len(drawn) > 5  # random elements of the group


@pytest.mark.parametrize("method", ["mc", "ei"])
def test_a_perfect_reconstruction_gives_zero_loss(method):
    """With H invertible (every column measured) the identity is a perfect G: MC and EI vanish."""
    identity = keras.Sequential([keras.Input((16, 16, 2)), keras.layers.Identity()])
    model = SelfSupervised(identity, FFTMask(), method, shift=True, seed=0)
    x = mri_batch()[0]
    loss, parts = model.losses_of(tf.constant(x), {"mask": np.ones((2, 16), np.float32)})
    np.testing.assert_allclose(loss, [0.0, 0.0], atol=1e-5)
    assert set(parts) == ({"mc"} if method == "mc" else {"mc", "ei"})


@pytest.mark.parametrize("method", ["mc", "ei", "ssdu"])
def test_one_step_trains_every_generator_weight_from_measurements_alone(method):
    keras.utils.set_random_seed(0)
    generator = build_unet(ndim=2, in_channels=2, depth=1, base_filters=2, activation="leaky_relu", residual=True)
    model = SelfSupervised(generator, FFTMask(), method, shift=True, acs=(7, 9), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    _, y, masks = mri_batch()
    before = [w.numpy().copy() for w in generator.trainable_weights]
    logs = model.train_step({"y": tf.constant(y), "y_params": {"mask": tf.constant(masks)}})
    assert float(logs["loss"]) > 0 and method in logs
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, generator.trainable_weights)]
    assert all(changed), f"{sum(changed)}/{len(changed)} weights changed"


def test_microscopy_ei_turns_the_lateral_plane_and_keeps_the_psf_fixed():
    keras.utils.set_random_seed(0)
    generator = build_unet(ndim=3, in_channels=1, depth=1, base_filters=2, activation="leaky_relu",
                           output_activation="sigmoid")
    forward_op = PSFConv3D(4)
    psf = forward_op.psf.copy()
    model = SelfSupervised(generator, forward_op, "ei", axes=(2, 3), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    y = np.random.default_rng(0).random((1, 8, 8, 8, 1)).astype("float32")
    logs = model.train_step({"x": y, "y": y})
    assert float(logs["ei"]) > 0 and forward_op.trainable_weights == []
    np.testing.assert_array_equal(forward_op.psf, psf)


def test_ssdu_needs_an_operator_with_masks():
    with pytest.raises(ValueError, match="per-sample masks"):
        SelfSupervised(keras.Sequential([keras.layers.Identity()]), PSFConv3D(4), "ssdu")
    with pytest.raises(ValueError, match="method"):
        SelfSupervised(keras.Sequential([keras.layers.Identity()]), FFTMask(), "magic")


def test_ssdu_is_validated_as_its_network_g_followed_by_data_consistency(tmp_path):
    """SSDU's network ends in data consistency, so validation (and --select) scores that: a G
    that outputs zeros then returns the input exactly; as an EI model the same G scores zeros."""
    from tf_otcycle import tasks
    from tf_otcycle.data.synthetic import write_mri_dataset

    write_mri_dataset(tmp_path, size=32, slices=2, num_clean=1, num_measured=1, num_val=1, num_test=1)
    task = tasks.get("mri")
    config = task.default_config(clean_files=f"{tmp_path}/clean/*.h5", measured_files=f"{tmp_path}/measured/*.h5",
                                 val_files=f"{tmp_path}/val/*.h5", test_files=f"{tmp_path}/test/*.h5", crop_size=32)
    data = task.resolve_data(config)
    zeros = keras.Sequential([keras.Input((32, 32, 2)), keras.layers.Rescaling(0.0)])
    ssdu, ei = (SelfSupervised(zeros, FFTMask(), method) for method in ("ssdu", "ei"))
    assert ssdu.ends_in_data_consistency and not ei.ends_in_data_consistency
    scalars, _ = task.validation(config, data, ssdu)()
    assert scalars["val/psnr"] == pytest.approx(scalars["val/psnr_input"], abs=1e-3)
    assert scalars["val/change"] == pytest.approx(0.0, abs=1e-5)
    scalars, _ = task.validation(config, data, ei)()
    assert scalars["val/psnr"] < scalars["val/psnr_input"] - 3
