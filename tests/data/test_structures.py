import numpy as np
import pytest

from tf_otcycle.data import structures


@pytest.mark.parametrize("name", sorted(structures.STRUCTURES))
def test_structures_are_seeded_unit_range_volumes_with_content(name):
    make = structures.STRUCTURES[name]
    a = make((12, 40, 48), np.random.RandomState(3), 2.0)
    b = make((12, 40, 48), np.random.RandomState(3), 2.0)
    c = make((12, 40, 48), np.random.RandomState(4), 2.0)
    assert a.shape == (12, 40, 48) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() == pytest.approx(1.0)
    assert 0.001 < (a > 0.2).mean() < 0.6  # structure, not an empty or a full volume


def test_lift_image_keeps_the_lateral_structure_in_focus_and_gives_it_depth():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    image[(yy - 20) ** 2 + (xx - 20) ** 2 < 100] = 200.0  # a nucleus
    image[(yy - 45) ** 2 + (xx - 45) ** 2 < 49] = 120.0  # a dimmer one
    image += rng.normal(5, 1, image.shape).astype(np.float32)
    vol = structures.lift_image(image, 16, np.random.RandomState(0), voxel_aspect=2.0)
    assert vol.shape == (16, 64, 64) and vol.min() >= 0 and vol.max() <= 1
    projection = vol.max(axis=0)
    assert projection[20, 20] > 0.9 and 0.4 < projection[45, 45] < 0.75 and projection[5, 60] < 0.1
    column = vol[:, 20, 20]
    assert (column > 0.5).sum() >= 3  # the nucleus has axial extent
    assert column[0] < 0.1 and column[-1] < 0.1  # and ends within the volume
