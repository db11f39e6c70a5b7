import dataclasses

import h5py
import numpy as np
import pytest
import tensorflow as tf

from tf_otcycle.data import fastmri
from tf_otcycle.data.synthetic import write_fastmri_file
from tf_otcycle.physics.masks import MaskSpec, flip_mask


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastmri")
    single = [root / f"single{i}.h5" for i in range(2)]
    for i, p in enumerate(single):
        write_fastmri_file(p, i, size=32, slices=3)
    multi = root / "multi.h5"
    write_fastmri_file(multi, 5, size=32, slices=2, coils=4)
    return {"single": single, "multi": multi, "root": root}


def test_synthetic_file_has_the_fastmri_layout(files):
    with h5py.File(files["single"][0], "r") as f:
        assert f["kspace"].dtype == np.complex64 and f["kspace"].shape == (3, 64, 36)
        assert f["reconstruction_esc"].shape == (3, 32, 32) and f["reconstruction_esc"].dtype == np.float32
        for key in ("acquisition", "max", "norm", "patient_id"):
            assert key in f.attrs
        assert b"<ismrmrdHeader" in f["ismrmrd_header"][()]
        assert np.isclose(f.attrs["max"], f["reconstruction_esc"][()].max())
    with h5py.File(files["multi"], "r") as f:
        assert f["kspace"].shape == (2, 4, 64, 36) and f["reconstruction_rss"].shape == (2, 32, 32)


def test_ismrmrd_header_is_parsed(files, tmp_path):
    info = fastmri.inspect_file(files["single"][0], 32)
    assert info.header["encoded_size"] == (64, 36, 1) and info.header["recon_size"] == (32, 32, 1)
    assert info.header["center"] == 18 and (info.header["padding_left"], info.header["padding_right"]) == (0, 36)
    bad = _write(tmp_path / "hdr.h5", kspace=np.zeros((1, 40, 40), np.complex64), ismrmrd_header=b"<not-xml")
    with pytest.raises(fastmri.FastMRIFormatError, match="hdr.h5.*ismrmrd_header"):
        fastmri.inspect_file(bad)


def test_single_and_multicoil_images_match_the_file_targets(files):
    for path in (files["single"][0], files["multi"]):
        info = fastmri.inspect_file(path, 32)
        images, target = fastmri.read_volume(info, 32)
        assert images.shape == (info.num_slices, 32, 32) and images.dtype == np.complex64
        np.testing.assert_allclose(np.abs(images), target, rtol=1e-4, atol=1e-6 * target.max())
    assert fastmri.inspect_file(files["multi"]).multicoil


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_h5py_reader_gives_every_slice_of_every_file(files):
    infos = fastmri.inspect_files([*map(str, files["single"]), str(files["multi"])], 32)
    got = [x.numpy() for x in fastmri.image_dataset(infos, 32)]
    want = [s for info in infos for s in fastmri.read_volume(info, 32)[0]]
    assert len(got) == len(want) == 3 + 3 + 2
    key = lambda a: float(np.abs(a).sum())  # noqa: E731  (interleaving orders slices across files)
    for a, b in zip(sorted(got, key=key), sorted(want, key=key)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="hdf5 reader"):
        fastmri.image_dataset(infos, 32, reader="nope")


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_unpaired_pipeline_shapes_normalisation_and_masks(files):
    infos = fastmri.inspect_files(map(str, files["single"]), 32)
    multi = fastmri.inspect_files([str(files["multi"])], 32)
    ds = fastmri.unpaired_mri_dataset(infos, infos[:1] + multi, 32, MaskSpec("random", 4, 0.08), batch_size=2, seed=1)
    batches = list(ds.take(4))
    b = batches[0]
    assert b["x"].shape == (2, 32, 32, 2) and b["y"].shape == (2, 32, 32, 2)
    assert b["x_params"]["mask"].shape == (2, 32) and b["y_params"]["mask"].shape == (2, 32)
    y = b["y"].numpy()
    std = np.std(np.abs(y[..., 0] + 1j * y[..., 1]), axis=(1, 2))
    np.testing.assert_allclose(std, 1.0, rtol=1e-3)
    masks = np.concatenate([bb["y_params"]["mask"].numpy() for bb in batches])
    assert len({m.tobytes() for m in masks}) > 1  # a fresh mask per sample
    # y really is H_mask applied to an image: H y = y.
    yc = y[..., 0] + 1j * y[..., 1]
    again = fastmri.undersample(tf.constant(yc.astype(np.complex64)), b["y_params"]["mask"][0]).numpy()
    np.testing.assert_allclose(again[0], yc[0], atol=1e-4)


def _disc(size: int = 32) -> np.ndarray:
    """A complex test image: an off-centre bright square on a smooth phase."""
    rows, cols = np.mgrid[:size, :size]
    image = ((abs(rows - 10) < 4) & (abs(cols - 20) < 6)).astype(np.float32)
    return (image * np.exp(1j * 0.05 * cols)).astype(np.complex64)


def test_affine_augment_off_is_the_identity_and_drawn_from_the_seed():
    image = _disc()
    seed = tf.constant(123, tf.int64)
    same = fastmri.affine_augment(tf.constant(image), seed, 0.0, 0.0).numpy()
    np.testing.assert_allclose(same, image, atol=1e-6)
    again = fastmri.affine_augment(tf.constant(image), seed, 30.0, 0.1).numpy()
    np.testing.assert_array_equal(again, fastmri.affine_augment(tf.constant(image), seed, 30.0, 0.1).numpy())
    assert not np.allclose(again, fastmri.affine_augment(tf.constant(image), seed + 1, 30.0, 0.1).numpy())
    assert not np.allclose(again, image)


def test_affine_augment_rotates_about_the_centre_by_the_drawn_angle():
    image = _disc()
    seed = tf.constant(5, tf.int64)
    draws = tf.random.stateless_uniform([2], tf.stack([seed, tf.constant(7, tf.int64)]), -1.0, 1.0).numpy()
    out = np.abs(fastmri.affine_augment(tf.constant(image), seed, 40.0, 0.0).numpy())
    angle = np.deg2rad(draws[0] * 40.0)

    def centroid(a):
        rows, cols = np.mgrid[: a.shape[0], : a.shape[1]]
        return np.array([(a * rows).sum(), (a * cols).sum()]) / a.sum()

    centre = np.array([15.5, 15.5])
    before, after = centroid(np.abs(image)) - centre, centroid(out) - centre
    # output p <- input c + M (p - c) in (col, row), M = R(angle): the content moves by M^-1
    m = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(after[::-1], np.linalg.solve(m, before[::-1]), atol=0.3)
    assert abs(angle) > np.deg2rad(5)  # the check above sees a rotation
    zoomed = np.abs(fastmri.affine_augment(tf.constant(image), seed, 0.0, 0.2).numpy())
    factor = 1.0 + draws[1] * 0.2
    assert zoomed.sum() == pytest.approx(np.abs(image).sum() * factor**2, rel=0.1)


@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_augmented_pipelines_keep_the_physics(files):
    infos = fastmri.inspect_files(map(str, files["single"]), 32)
    sampling = MaskSpec("random", 4, 0.08)
    plain = next(iter(fastmri.paired_mri_dataset(infos, 32, sampling, batch_size=2, seed=3)))
    turned = next(iter(fastmri.paired_mri_dataset(infos, 32, sampling, batch_size=2, seed=3, rotation=30.0,
                                                  zoom=0.1)))
    assert not np.allclose(plain["x"].numpy(), turned["x"].numpy())  # augmented
    # the same masks, and y is H of the augmented image: the measurement of what the target shows
    np.testing.assert_array_equal(plain["y_params"]["mask"].numpy(), turned["y_params"]["mask"].numpy())
    x = turned["x"].numpy()
    xc = (x[..., 0] + 1j * x[..., 1]).astype(np.complex64)
    y = turned["y"].numpy()
    for i in range(2):
        want = fastmri.undersample(tf.constant(xc[i : i + 1]), turned["y_params"]["mask"][i]).numpy()[0]
        np.testing.assert_allclose(y[i, ..., 0] + 1j * y[i, ..., 1], want, atol=1e-4)
    unpaired = next(iter(fastmri.unpaired_mri_dataset(infos, infos, 32, sampling, batch_size=2, seed=3, rotation=30.0)))
    assert unpaired["x"].shape == (2, 32, 32, 2) and unpaired["y"].shape == (2, 32, 32, 2)


def test_eval_mask_is_reproducible_per_file(files):
    a = fastmri.eval_mask(files["single"][0], MaskSpec("random", 4, 0.08), 32)
    assert np.array_equal(a, fastmri.eval_mask(str(files["single"][0]), MaskSpec("random", 4, 0.08), 32))
    assert not np.array_equal(a, fastmri.eval_mask(files["single"][1], MaskSpec("random", 4, 0.08), 32))


def _write(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[k] = v
    return path


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: _write(p, reconstruction_esc=np.zeros((2, 8, 8), np.float32)), "no 'kspace'"),
        (lambda p: _write(p, kspace=np.zeros((2, 40, 40), np.float32)), "dtype float32"),
        (lambda p: _write(p, kspace=np.zeros((40, 40), np.complex64)), "shape"),
        (lambda p: _write(p, kspace=np.zeros((0, 40, 40), np.complex64)), "empty"),
        (lambda p: _write(p, kspace=np.zeros((2, 40, 40), np.complex64), mask=np.ones(39, np.float32)), "'mask'"),
        (lambda p: _write(p, kspace=np.zeros((2, 40, 40), np.complex64), mask=np.zeros(40, bool)), "acquires no"),
        (lambda p: _write(p, kspace=np.zeros((2, 20, 40), np.complex64)), "smaller than crop_size"),
        (lambda p: p.write_bytes(b""), "not a readable HDF5"),
        (lambda p: p.write_bytes(b"this is not hdf5 at all" * 10), "not a readable HDF5"),
    ],
)
def test_corrupt_files_raise_naming_the_file(tmp_path, make, match):
    path = tmp_path / "bad.h5"
    make(path)
    with pytest.raises(fastmri.FastMRIFormatError, match=match) as e:
        fastmri.inspect_file(path, crop_size=32)
    assert str(path) in str(e.value)


def test_missing_file_and_empty_glob(tmp_path):
    with pytest.raises(fastmri.FastMRIFormatError, match="nothere.h5"):
        fastmri.inspect_file(tmp_path / "nothere.h5")
    with pytest.raises(ValueError, match="--clean_files.*matches no file"):
        fastmri.expand_files(str(tmp_path / "*.h5"), "--clean_files")


def test_nan_kspace_is_rejected(tmp_path):
    k = np.ones((1, 40, 40), np.complex64)
    k[0, 3, 3] = np.nan
    path = _write(tmp_path / "nan.h5", kspace=k)
    with pytest.raises(fastmri.FastMRIFormatError, match="NaN"):
        fastmri.read_volume(fastmri.inspect_file(path, 32), 32)


def _with_own_mask(path, keep_target: bool):
    """Turn a fully sampled file into an undersampled acquisition (as fastMRI's challenge files)."""
    with h5py.File(path, "r+") as f:
        w = f["kspace"].shape[-1]
        mask = np.zeros(w, np.float32)
        mask[::4] = 1
        mask[w // 2 - 2: w // 2 + 2] = 1
        f["kspace"][...] = f["kspace"][()] * mask
        f.create_dataset("mask", data=mask.astype(bool))
        if not keep_target:
            del f["reconstruction_esc"]
    return mask


def _complex(a):
    return a[..., 0] + 1j * a[..., 1]


def test_acquisitions_are_refused_as_clean_images_or_pairs_and_scored_under_their_own_mask(tmp_path):
    from tf_otcycle.tasks.mri import prepare_volume

    scored, unscored = tmp_path / "scored.h5", tmp_path / "unscored.h5"
    write_fastmri_file(scored, 1, size=16, slices=2)
    write_fastmri_file(unscored, 2, size=16, slices=2)
    _with_own_mask(scored, keep_target=True)
    _with_own_mask(unscored, keep_target=False)
    infos = fastmri.inspect_files([str(scored), str(unscored)], 16)
    assert all(i.has_mask for i in infos)
    with pytest.raises(fastmri.FastMRIFormatError, match="scored.h5.*fully sampled.*--measured_files"):
        fastmri.check_fully_sampled(infos)
    with pytest.raises(fastmri.FastMRIFormatError, match="scored.h5.*clean images"):
        fastmri.unpaired_mri_dataset(infos[:1], infos[1:], 16, MaskSpec("random", 4, 0.25))
    with pytest.raises(fastmri.FastMRIFormatError, match="scored.h5.*supervised"):
        fastmri.paired_mri_dataset(infos[:1], 16, MaskSpec("random", 4, 0.25))
    with pytest.raises(fastmri.FastMRIFormatError, match="unscored.h5.*nothing to score"):
        prepare_volume(infos[1], 16, MaskSpec("random", 4, 0.25))
    fastmri.check_scorable(infos[:1])
    vol = prepare_volume(infos[0], 16, MaskSpec("random", 4, 0.25))
    images, target = fastmri.read_volume(infos[0], 16)  # zero-filled crops
    mask = fastmri.acquired_mask(infos[0], 16)
    np.testing.assert_array_equal(vol["mask"], np.repeat(mask[None], 2, 0))  # its own mask, not a drawn one
    want = fastmri.undersample(tf.constant(images), mask).numpy()  # H_m of the zero-filled crop
    np.testing.assert_allclose(_complex(vol["y"]) * vol["scale"][:, None, None], want, rtol=1e-4,
                               atol=1e-5 * np.abs(want).max())
    assert target is not None and np.array_equal(vol["target"], target)


def _acquisition(path, seed, size, slices=2, coils=0, acceleration=4):
    """A fastMRI challenge-style file whose k-space is ``size`` columns wide (its mask on the crop is exact)."""
    from tf_otcycle.data.synthetic import KneePhantom, write_kspace_file
    from tf_otcycle.physics.masks import random_mask

    phantom = KneePhantom(size, seed)
    images = np.zeros((slices, 2 * size, size), np.complex64)
    for i in range(slices):
        images[i, size // 2: size // 2 + size] = phantom.slice(0.2 + 0.6 * i / max(1, slices - 1))
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    if coils:
        kspace = np.repeat(kspace[:, None], coils, 1)
    write_kspace_file(path, kspace, size, 0.0, np.random.RandomState(seed), f"acq{seed}")
    mask = random_mask(size, acceleration, 0.125, seed=seed)
    with h5py.File(path, "r+") as f:
        f["kspace"][...] = f["kspace"][()] * mask
        f.create_dataset("mask", data=mask.astype(bool))
        del f["reconstruction_rss" if coils else "reconstruction_esc"]
    return mask


def test_acquisitions_are_measurements_under_their_own_masks(tmp_path):
    masks = [_acquisition(tmp_path / f"acq{i}.h5", i, 16) for i in range(2)]
    infos = fastmri.inspect_files([str(tmp_path / f"acq{i}.h5") for i in range(2)], 16)
    images = {i.path: fastmri.read_volume(i, 16)[0] for i in infos}
    for info, mask in zip(infos, masks):
        np.testing.assert_array_equal(fastmri.acquired_mask(info, 16), mask)  # as wide as the crop: exact
    clean = [tmp_path / f"clean{i}.h5" for i in range(2)]
    for i, p in enumerate(clean):
        write_fastmri_file(p, 10 + i, size=16, slices=2)
    ds = fastmri.unpaired_mri_dataset(fastmri.inspect_files(map(str, clean), 16), infos, 16,
                                      MaskSpec("random", 4, 0.25), batch_size=1, seed=3, flip=True)
    flipped = 0
    for batch in ds.take(12):
        y, m = _complex(batch["y"].numpy()[0]), batch["y_params"]["mask"].numpy()[0]
        np.testing.assert_allclose(fastmri.undersample(tf.constant(y.astype(np.complex64)), m).numpy(), y,
                                   atol=1e-5)  # in H_m's range
        # the zero-filled slice it came from, up to the flips and the normalisation
        found = False
        for vol in images.values():
            for zf in vol:
                for ud in (False, True):
                    for lr in (False, True):
                        cand = zf[::-1] if ud else zf
                        cand = cand[:, ::-1] if lr else cand
                        cand = cand / np.std(np.abs(cand))
                        if np.allclose(cand, y, atol=1e-4):
                            found, flipped = True, flipped + lr
        assert found
        assert any(np.array_equal(m, k) or np.array_equal(m, flip_mask(k)) for k in masks)
    assert flipped > 0  # the left-right flips (and their mirrored masks) were drawn


def test_measured_files_mix_acquisitions_and_fully_sampled_files_and_refuse_multicoil_acquisitions(tmp_path):
    _acquisition(tmp_path / "acq.h5", 1, 16)
    write_fastmri_file(tmp_path / "full.h5", 2, size=16, slices=2)
    write_fastmri_file(tmp_path / "clean.h5", 3, size=16, slices=2)
    infos = fastmri.inspect_files([str(tmp_path / "acq.h5"), str(tmp_path / "full.h5")], 16)
    acquired = fastmri.acquired_mask(infos[0], 16)
    ds = fastmri.unpaired_mri_dataset(fastmri.inspect_files([str(tmp_path / "clean.h5")], 16), infos, 16,
                                      MaskSpec("random", 4, 0.25), seed=0)
    own = [np.array_equal(m, acquired) or np.array_equal(m, flip_mask(acquired))
           for m in (b["y_params"]["mask"].numpy()[0] for b in ds.take(24))]
    assert any(own) and not all(own)
    _acquisition(tmp_path / "coils.h5", 4, 16, coils=3)
    multi = fastmri.inspect_files([str(tmp_path / "coils.h5")], 16)
    with pytest.raises(fastmri.FastMRIFormatError, match="coils.h5.*multi-coil"):
        fastmri.check_acquisitions(multi)
    with pytest.raises(fastmri.FastMRIFormatError, match="full.h5.*not an acquisition"):
        fastmri.check_acquisitions(infos[1:])


@pytest.mark.slow  # builds two input pipelines
def test_mri_task_checks_and_passes_on_the_augmentation_flags(files):
    from tf_otcycle import tasks

    task = tasks.get("mri")
    errors = task.validate(task.default_config(augment_rotation=-1.0, augment_zoom=1.0))
    assert any("--augment_rotation" in e for e in errors) and any("--augment_zoom" in e for e in errors)
    assert not [e for e in task.validate(task.default_config(augment_rotation=15.0, augment_zoom=0.1))
                if "augment" in e]
    infos = fastmri.inspect_files(map(str, files["single"]), 32)
    data = {"files": {"measured_files": infos}}
    plain = task.default_config(crop_size=32, batch_size=1)
    turned = plain.replace(augment_rotation=30.0)
    x0 = next(iter(task.paired_dataset(plain, data)))[1].numpy()
    x1 = next(iter(task.paired_dataset(turned, data)))[1].numpy()
    assert x0.shape == x1.shape and not np.allclose(x0, x1)


def test_flips_are_drawn_from_the_pipeline_seeds():
    """``tf.data.Dataset.random`` gives values below 2^32: the flips once read bits 40 and 41 of
    them and so never flipped. Each flip is now drawn with probability 1/2."""
    seeds = list(tf.data.Dataset.random(seed=5).take(400))
    draws = np.array([fastmri.flip_draws(s).numpy() for s in seeds])
    assert np.all(np.abs(draws.mean(axis=0) - 0.5) < 0.1)
    image = tf.constant((np.arange(12).reshape(3, 4) + 1j).astype(np.complex64))
    variants = {fastmri.augment(image, s).numpy().tobytes() for s in seeds[:40]}
    assert len(variants) == 4  # none, up-down, left-right, both


def test_reconstruct_gives_an_acquisition_s_measurement_under_its_own_mask(tmp_path):
    import keras

    from tf_otcycle.reconstruct import reconstruct_file
    from tf_otcycle.tasks.mri import prepare_volume

    _acquisition(tmp_path / "acq.h5", 3, 16)
    write_fastmri_file(tmp_path / "wide.h5", 4, size=16, slices=2)
    _with_own_mask(tmp_path / "wide.h5", keep_target=True)  # 18 acquired columns, a 16-column crop
    inputs = keras.Input((None, None, 2))
    identity = keras.Model(inputs, keras.layers.Identity()(inputs))
    for name in ("acq.h5", "wide.h5"):
        info = fastmri.inspect_file(tmp_path / name, 16)
        images, _ = fastmri.read_volume(info, 16)
        mask = fastmri.acquired_mask(info, 16)
        want = np.abs(fastmri.undersample(tf.constant(images), mask).numpy())
        for dc in (False, True):  # the identity keeps the measured columns: data consistency changes nothing
            got = reconstruct_file(identity, str(tmp_path / name), 16, MaskSpec("random", 4, 0.25), dc)
            assert not got["retrospective"]
            np.testing.assert_allclose(got["reconstruction"], want, rtol=1e-4, atol=1e-5 * want.max())
    vol = prepare_volume(fastmri.inspect_file(tmp_path / "wide.h5", 16), 16, MaskSpec("random", 4, 0.25))
    np.testing.assert_allclose(np.abs(_complex(vol["y"])) * vol["scale"][:, None, None], want, rtol=1e-4,
                               atol=1e-5 * want.max())


def test_an_acquisition_s_mask_is_read_once_at_inspection(tmp_path):
    path = tmp_path / "acq.h5"
    write_fastmri_file(path, 1, size=16, slices=1)
    want = _with_own_mask(path, keep_target=True)
    info = fastmri.inspect_file(path, 16)
    path.unlink()  # what follows needs the mask, not the file
    got = fastmri.file_mask(info)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32
    got[:] = 0  # a copy: the inspected mask stays as read
    np.testing.assert_array_equal(fastmri.file_mask(info), want)
    assert fastmri.acquired_mask(info, 16).shape == (16,)
    assert info == dataclasses.replace(info, mask=None) and not dataclasses.replace(info, mask=None).has_mask


def test_synthetic_acquisitions_have_the_challenge_layout(tmp_path):
    from tf_otcycle.physics.masks import acs_columns

    write_fastmri_file(tmp_path / "acq.h5", 1, size=32, slices=2, acquisition=MaskSpec("equispaced", 4, 0.125))
    with h5py.File(tmp_path / "acq.h5", "r") as f:
        mask, kspace = f["mask"][()], f["kspace"][()]
        assert mask.dtype == bool and mask.shape == (36,) and "reconstruction_esc" not in f
        assert np.all(kspace[..., ~mask] == 0) and np.all(np.abs(kspace[..., mask]) > 0)
        start, stop = acs_columns(36, 0.125)
        assert f.attrs["num_low_frequency"] >= stop - start and f.attrs["acceleration"] in (3, 4)
    assert fastmri.inspect_file(tmp_path / "acq.h5", 32).has_mask
