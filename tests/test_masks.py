"""Masks: every pair is 2:4 and complementary; the validator rejects what is not."""

import pytest
import torch

from common.errors import MaskError
from kernels.masks import MASKS, make_mask_pair, periodic_columns, validate_pair


@pytest.fixture
def weight():
    return torch.randn(16, 64, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", MASKS)
def test_every_mask_is_2of4_and_complementary(name, weight, mask_pair):
    m0, m1 = mask_pair(name, weight)
    for m in (m0, m1):
        assert (m.reshape(16, -1, 4).sum(-1) == 2).all()
    assert ((m0.int() + m1.int()) == 1).all()
    torch.testing.assert_close(weight * m0 + weight * m1, weight, rtol=0, atol=0)


def test_random_mask_differs_between_groups_and_follows_the_seed(weight):
    a, _ = make_mask_pair("random_2of4", weight, torch.Generator().manual_seed(1))
    b, _ = make_mask_pair("random_2of4", weight, torch.Generator().manual_seed(1))
    c, _ = make_mask_pair("random_2of4", weight, torch.Generator().manual_seed(2))
    groups = a.reshape(-1, 4)
    assert len({tuple(g.tolist()) for g in groups}) > 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_magnitude_mask_gives_rank0_the_two_largest(weight):
    m0, _ = make_mask_pair("magnitude_2of4", weight)
    mag = weight.abs().reshape(16, -1, 4)
    kept = (mag * m0.reshape(16, -1, 4)).amax(-1)
    dropped = (mag * (~m0).reshape(16, -1, 4)).amax(-1)
    assert (kept >= dropped).all()
    assert (torch.where(m0.reshape(16, -1, 4), mag, torch.inf).amin(-1) >= dropped).all()


def test_periodic_columns_partition_the_inputs():
    for name in MASKS[:3]:
        c0, c1 = periodic_columns(name, 64, 0), periodic_columns(name, 64, 1)
        assert sorted(torch.cat([c0, c1]).tolist()) == list(range(64))
    with pytest.raises(MaskError, match="not periodic"):
        periodic_columns("random_2of4", 64, 0)


def test_validator_rejects_a_dropped_group(weight):
    m0, m1 = make_mask_pair("complement_1100_0011", weight)
    m0 = m0.clone()
    m0[3, 4:8] = False
    with pytest.raises(MaskError, match=r"M0 is not 2:4: row 3, group 1 keeps 0 of 4"):
        validate_pair(m0, m1, "planted")


def test_validator_rejects_a_pair_that_is_not_complementary(weight):
    m0, _ = make_mask_pair("complement_1010_0101", weight)
    with pytest.raises(MaskError, match="not all ones"):
        validate_pair(m0, m0.clone(), "same twice")


def test_unknown_mask_suggests_the_closest_name(weight):
    with pytest.raises(MaskError, match="did you mean 'random_2of4'"):
        make_mask_pair("random_2of_4", weight)


def test_inputs_not_a_multiple_of_4_are_refused():
    with pytest.raises(MaskError, match="not a multiple of 4"):
        make_mask_pair("random_2of4", torch.randn(4, 10))
