"""Masks: every pair is 2:4 and complementary; the validator rejects what is not."""

import pytest
import torch

from common.errors import MaskError
from kernels.masks import (
    MASKS,
    TRANSPOSABLE_MASKS,
    is_transposable,
    make_mask_pair,
    periodic_columns,
    validate_pair,
    validate_transposable_pair,
)


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


# -- transposable pairs (the 2:4 backward needs W_g^T 2:4 too) ------------------------------


@pytest.mark.parametrize("name", TRANSPOSABLE_MASKS)
def test_transposable_pairs_keep_2_of_4_in_every_tile_row_and_column(name, weight, mask_pair):
    m0, m1 = mask_pair(name, weight, seed=4)
    for m in (m0, m1):
        tiles = m.reshape(4, 4, 16, 4).int()
        assert (tiles.sum(3) == 2).all() and (tiles.sum(1) == 2).all()
        assert is_transposable(m) and is_transposable(m.t())
    assert torch.equal(m1, ~m0)


def test_transposable_random_follows_the_seed_and_varies_between_tiles(weight):
    a, _ = make_mask_pair("transposable_random", weight, torch.Generator().manual_seed(1))
    b, _ = make_mask_pair("transposable_random", weight, torch.Generator().manual_seed(1))
    c, _ = make_mask_pair("transposable_random", weight, torch.Generator().manual_seed(2))
    tiles = a.reshape(4, 4, 16, 4).permute(0, 2, 1, 3).reshape(-1, 16)
    assert len({tuple(t.tolist()) for t in tiles}) > 10
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_transposable_magnitude_is_the_best_of_the_90_tiles(weight):
    """Against brute force over every transposable tile of one 4x4 block."""
    import itertools

    m0, _ = make_mask_pair("transposable_magnitude", weight)
    for tr, tc in [(0, 0), (2, 5), (3, 15)]:
        block = weight[4 * tr : 4 * tr + 4, 4 * tc : 4 * tc + 4].abs()
        best = max(
            (block * torch.tensor(rows)).sum().item()
            for rows in itertools.product(
                [r for r in itertools.product([0, 1], repeat=4) if sum(r) == 2], repeat=4
            )
            if all(sum(col) == 2 for col in zip(*rows, strict=True))
        )
        kept = (block * m0[4 * tr : 4 * tr + 4, 4 * tc : 4 * tc + 4]).sum().item()
        assert kept == pytest.approx(best, rel=1e-6)


def test_random_2of4_is_rejected_where_a_transposable_pair_is_demanded(weight):
    m0, m1 = make_mask_pair("random_2of4", weight, torch.Generator().manual_seed(0))
    assert not is_transposable(m0)
    rule = r"M0 is not transposable: column \d+ keeps \d of 4 in tile"
    with pytest.raises(MaskError, match=rule):
        validate_transposable_pair(m0, m1, "random_2of4")


def test_transposable_validator_checks_complementarity(weight):
    m0, _ = make_mask_pair("transposable_periodic", weight)
    with pytest.raises(MaskError, match="not all ones"):
        validate_transposable_pair(m0, m0.clone(), "same twice")


def test_transposable_masks_need_both_dims_multiples_of_4():
    with pytest.raises(MaskError, match="N_out=6, N_in=8"):
        make_mask_pair("transposable_random", torch.randn(6, 8))
