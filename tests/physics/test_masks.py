import numpy as np
import pytest

from tf_otcycle.physics import equispaced_mask, file_seed, random_mask
from tf_otcycle.physics.masks import acs_columns


def _fastmri_random(num_cols, acceleration, center_fraction, seed):
    """Re-statement of fastMRI RandomMaskFunc.__call__ with one acceleration."""
    rng = np.random.RandomState()
    rng.seed(seed)
    choice = rng.randint(0, 1)  # choose_acceleration
    assert choice == 0
    num_low_freqs = int(round(num_cols * center_fraction))
    prob = (num_cols / acceleration - num_low_freqs) / (num_cols - num_low_freqs)
    mask = rng.uniform(size=num_cols) < prob
    pad = (num_cols - num_low_freqs + 1) // 2
    mask[pad : pad + num_low_freqs] = True
    return mask.astype(np.float32)


def _fastmri_equispaced(num_cols, acceleration, center_fraction, seed):
    rng = np.random.RandomState()
    rng.seed(seed)
    rng.randint(0, 1)
    num_low_freqs = int(round(num_cols * center_fraction))
    mask = np.zeros(num_cols, dtype=np.float32)
    pad = (num_cols - num_low_freqs + 1) // 2
    mask[pad : pad + num_low_freqs] = True
    adjusted_accel = (acceleration * (num_low_freqs - num_cols)) / (
        num_low_freqs * acceleration - num_cols
    )
    offset = rng.randint(0, round(adjusted_accel))
    accel_samples = np.arange(offset, num_cols - 1, adjusted_accel)
    accel_samples = np.around(accel_samples).astype(np.uint)
    mask[accel_samples] = True
    return mask


@pytest.mark.parametrize("seed", [0, 1, 42, (1, 2, 3), file_seed("file1000001.h5")])
@pytest.mark.parametrize("num_cols,acc,cf", [(368, 4, 0.08), (320, 4, 0.04), (64, 8, 0.04)])
def test_random_mask_equals_fastmri(seed, num_cols, acc, cf):
    np.testing.assert_array_equal(
        random_mask(num_cols, acc, cf, seed=seed), _fastmri_random(num_cols, acc, cf, seed)
    )


@pytest.mark.parametrize("seed", [0, 3, (7, 7)])
@pytest.mark.parametrize("num_cols,acc,cf", [(368, 4, 0.08), (320, 4, 0.04)])
def test_equispaced_mask_equals_fastmri(seed, num_cols, acc, cf):
    np.testing.assert_array_equal(
        equispaced_mask(num_cols, acc, cf, seed=seed), _fastmri_equispaced(num_cols, acc, cf, seed)
    )


@pytest.mark.parametrize("fn", [random_mask, equispaced_mask])
@pytest.mark.parametrize("cf", [0.04, 0.08])
def test_acs_block_and_acceleration(fn, cf):
    num_cols = 320
    masks = np.stack([fn(num_cols, 4, cf, seed=s) for s in range(200)])
    num_low = int(round(num_cols * cf))
    pad = (num_cols - num_low + 1) // 2
    assert masks.dtype == np.float32 and masks.shape == (200, num_cols)
    assert np.all(masks[:, pad : pad + num_low] == 1)
    assert set(np.unique(masks)) <= {0.0, 1.0}
    accel = num_cols / masks.sum(axis=1).mean()
    assert abs(accel - 4) < 0.25


def test_same_seed_same_mask_different_seed_different_mask():
    a = random_mask(320, 4, 0.04, seed=5)
    np.testing.assert_array_equal(a, random_mask(320, 4, 0.04, seed=5))
    assert not np.array_equal(a, random_mask(320, 4, 0.04, seed=6))


def test_equispaced_offset_is_respected():
    m = equispaced_mask(64, 4, 0.0, offset=1)
    assert m[1] == 1 and m[0] == 0 and m[5] == 1


@pytest.mark.parametrize(
    "args,match",
    [((64, -4, 0.08), "acceleration"), ((64, 4, 1.5), "center_fraction"), ((1, 4, 0.1), "num_cols"),
     ((64, 4, 0.5), "center_fraction")],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        random_mask(*args, seed=0)


def test_mask_spec_draws_what_make_mask_draws_and_refuses_bad_parameters():
    from tf_otcycle.physics.masks import MaskSpec, make_mask

    spec = MaskSpec("equispaced", 8, 0.04)
    np.testing.assert_array_equal(spec(64, seed=3), make_mask("equispaced", 64, 8, 0.04, seed=3))
    assert spec == MaskSpec("equispaced", 8.0, 0.04) and hash(spec) == hash(MaskSpec("equispaced", 8.0, 0.04))
    for args, match in [(("radial", 4, 0.08), "mask_type"), (("random", 0.5, 0.08), "acceleration"),
                        (("random", 4, 1.0), "center_fraction"), (("random", 8, 0.2), "center_fraction")]:
        with pytest.raises(ValueError, match=match):
            MaskSpec(*args)


def test_the_mri_flags_and_mask_spec_share_one_rule():
    from tf_otcycle import tasks
    from tf_otcycle.physics.masks import MaskSpec, mask_problems

    assert mask_problems("random", 4, 0.08) == []
    problems = mask_problems("random", 8, 0.2)
    assert problems == ["--center_fraction * --acceleration must be <= 1 (more ACS lines than the budget)"]
    mri = tasks.get("mri")
    assert problems[0] in mri.validate(mri.default_config(acceleration=8, center_fraction=0.2))
    with pytest.raises(ValueError, match=r"--center_fraction \* --acceleration"):
        MaskSpec("random", 8, 0.2)


def test_crop_mask_is_the_mask_itself_when_the_crop_is_as_wide_and_keeps_the_centre_otherwise():
    from tf_otcycle.physics.masks import crop_mask, sampled_acceleration

    mask = random_mask(368, 4, 0.08, seed=2)
    np.testing.assert_array_equal(crop_mask(mask, 368), mask)
    narrow = crop_mask(mask, 320)
    assert narrow.shape == (320,) and narrow.dtype == np.float32 and set(np.unique(narrow)) <= {0.0, 1.0}
    # the zero frequency and the ACS block stay acquired; each crop column takes its nearest acquired one
    start, stop = acs_columns(368, 0.08)
    freq = (np.arange(320) - 160) * 368 / 320
    inside = (freq >= start - 184) & (freq <= stop - 1 - 184)
    assert narrow[160] == 1 and narrow[inside].all()
    assert narrow[5] == mask[int(round((5 - 160) * 368 / 320)) + 184]
    assert abs(sampled_acceleration(narrow) - sampled_acceleration(mask)) < 0.5
    with pytest.raises(ValueError, match="num_cols=400"):
        crop_mask(mask, 400)


@pytest.mark.parametrize("n", [16, 17])
def test_flip_mask_is_the_k_space_support_of_the_flipped_image(n):
    from tf_otcycle.physics.masks import flip_mask

    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    mask = random_mask(n, 4, 0.25, seed=1)

    def fft(a):
        return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(a)))

    measured = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(fft(x) * mask)))
    support = (np.abs(fft(measured[:, ::-1])).max(axis=0) > 1e-9).astype(np.float32)
    np.testing.assert_array_equal(flip_mask(mask), support)
    np.testing.assert_array_equal(flip_mask(flip_mask(mask)), mask)
