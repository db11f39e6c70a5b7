"""Property-based fuzzing of the file readers: every malformed fastMRI HDF5, TIFF stack or 2-D image
is refused with our own exception naming the file (or read correctly), quickly, never a crash.

Mutations: flipped bytes and truncations of valid files, and files written with wrong dtypes,
ranks, huge declared shapes, missing datasets, mismatched ``mask`` widths and targets, NaN/Inf.
"""

import datetime

import h5py
import numpy as np
import pytest
import tifffile

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tf_otcycle.data import fastmri, images, tiff  # noqa: E402
from tf_otcycle.data.synthetic import write_fastmri_file  # noqa: E402

FUZZ = settings(max_examples=100, deadline=datetime.timedelta(seconds=20), derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _mutated(valid: bytes, flips, cut) -> bytes:
    """``valid`` with the bytes at fractional positions set to the given values, then cut at a fraction."""
    data = bytearray(valid)
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    return bytes(data if cut is None else data[: int(cut * len(data))])


def _read_fastmri(path):
    """Everything training and evaluation read of a file; our exception or a result."""
    try:
        info = fastmri.inspect_file(path, crop_size=8)
        fastmri.read_volume(info, 8)
    except fastmri.FastMRIFormatError as e:
        assert str(path) in str(e)


@pytest.fixture(scope="module")
def valid_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "valid.h5"
    write_fastmri_file(path, 3, size=8, slices=2)
    return path.read_bytes()


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=40),
       cut=st.one_of(st.none(), st.floats(0, 1)))
@pytest.mark.slow  # several seconds of numerical work: make test, not test-fast
def test_corrupted_hdf5_bytes(tmp_path, valid_h5, flips, cut):
    path = tmp_path / "mutated.h5"
    path.write_bytes(_mutated(valid_h5, flips, cut))
    _read_fastmri(path)


@FUZZ
@given(
    dtype=st.sampled_from(["complex64", "complex128", "float32", "int16", "bool"]),
    shape=st.lists(st.integers(0, 12), min_size=1, max_size=5),
    huge=st.booleans(),
    mask_width=st.one_of(st.none(), st.integers(0, 20)),
    target=st.one_of(st.none(), st.lists(st.integers(0, 12), min_size=1, max_size=4)),
    bad_value=st.sampled_from([None, np.nan, np.inf]),
    header=st.sampled_from([None, b"<ismrmrdHeader>", b"\xff\xfe garbage", b""]),
)
@pytest.mark.slow  # several seconds of work: make test, not test-fast
@example(dtype="complex64", shape=[2, 8, 8], huge=True, mask_width=None, target=None, bad_value=None, header=None)
@example(dtype="complex64", shape=[2, 8, 8], huge=False, mask_width=None, target=[3, 2], bad_value=None, header=None)
@example(dtype="complex64", shape=[2, 8, 8], huge=False, mask_width=None, target=[5], bad_value=None, header=None)
@example(dtype="complex64", shape=[2, 8, 8], huge=False, mask_width=None, target=None, bad_value=np.nan, header=None)
def test_structurally_wrong_hdf5(tmp_path, dtype, shape, huge, mask_width, target, bad_value, header):
    path = tmp_path / "wrong.h5"
    with h5py.File(path, "w") as f:
        if huge:  # declared, never stored: a reader must not try to allocate it
            f.create_dataset("kspace", shape=(10**5, 10**5, 10**5), dtype="complex64", chunks=(1, 8, 8))
        elif shape:
            k = np.ones(shape, dtype)
            if bad_value is not None and np.issubdtype(k.dtype, np.inexact) and k.size:
                k.flat[0] = bad_value
            f.create_dataset("kspace", data=k)
        if mask_width is not None:
            f.create_dataset("mask", data=np.ones(mask_width, bool))
        if target is not None:
            f.create_dataset("reconstruction_esc", data=np.ones(target, np.float32))
        if header is not None:
            f.create_dataset("ismrmrd_header", data=np.bytes_(header))
    _read_fastmri(path)


@pytest.fixture(scope="module")
def valid_tif(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "valid.tif"
    tifffile.imwrite(path, np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8))
    return path.read_bytes()


def _read_tiff(path):
    for reader in (tiff.read_stack, images.read_image):
        try:
            reader(path)
        except tiff.TiffFormatError as e:  # images.ImageFormatError is one too
            assert str(path) in str(e)


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=40),
       cut=st.one_of(st.none(), st.floats(0, 1)))
@example(flips=[(0.04, 174)], cut=None)  # declared 4 x 11 403 272 x 8 pixels in a 2 kB file: took 25 s to refuse
def test_corrupted_tiff_bytes(tmp_path, valid_tif, flips, cut):
    path = tmp_path / "mutated.tif"
    path.write_bytes(_mutated(valid_tif, flips, cut))
    _read_tiff(path)


@FUZZ
@given(dtype=st.sampled_from(["uint8", "uint16", "int32", "float16", "float32", "float64", "complex64", "bool"]),
       shape=st.lists(st.integers(1, 6), min_size=1, max_size=5),
       bad_value=st.sampled_from([None, np.nan, np.inf]))
@pytest.mark.slow  # several seconds of work: make test, not test-fast
def test_structurally_wrong_tiff(tmp_path, dtype, shape, bad_value):
    array = np.ones(shape, dtype)
    if bad_value is not None and np.issubdtype(array.dtype, np.floating):
        array.flat[0] = bad_value
    path = tmp_path / "wrong.tif"
    try:
        tifffile.imwrite(path, array)
    except Exception:  # tifffile itself refuses some layouts: nothing to read
        return
    _read_tiff(path)
