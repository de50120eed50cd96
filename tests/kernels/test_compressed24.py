"""The project's 2:4 compressed format: exact round trip, 9/16 of the bytes, bad input refused."""

import pytest
import torch

from common.errors import CellSpecError, MaskError
from kernels.compressed24 import compress, decompress, group_indices
from kernels.masks import MASKS, make_mask_pair


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", MASKS)
def test_round_trip_is_exact_for_both_halves_of_every_mask(name, dtype):
    g = torch.Generator().manual_seed(7)
    w = torch.randn(48, 96, generator=g).to(dtype)
    for m in make_mask_pair(name, w, g):
        c = compress(w * m)
        assert torch.equal(decompress(c), w * m)
        assert c.values.shape == (48, 48) and c.values.dtype == dtype
        assert c.meta.shape == (48, 3) and c.meta.dtype == torch.int32
        assert c.nbytes * 16 == w.numel() * w.element_size() * 9  # 9/16 of the dense bytes


def test_indices_are_the_kept_positions_in_order_and_use_the_sign_bit():
    w = torch.zeros(1, 32)
    w[0, 2], w[0, 3] = 1.0, 2.0  # group 0 keeps positions 2 and 3
    w[0, 29], w[0, 31] = -3.0, 4.0  # group 7 (the word's top nibble) keeps 1 and 3
    c = compress(w)
    idx = group_indices(c.meta)[0]
    assert idx[0].tolist() == [2, 3] and idx[7].tolist() == [1, 3]
    assert c.meta[0, 0].item() < 0  # nibble 7 = 1 | 3 << 2 = 0b1101 sets bit 31
    assert c.values[0, :2].tolist() == [1.0, 2.0] and c.values[0, 14:].tolist() == [-3.0, 4.0]


def test_groups_with_fewer_than_two_nonzeros_and_negative_zeros_round_trip():
    w = torch.randn(4, 64)
    w = w * make_mask_pair("random_2of4", w)[0]
    w[:, 4:8] = 0.0  # a group with no nonzero
    w[1, 8:12] = torch.tensor([0.0, 0.0, 5.0, 0.0])  # one nonzero
    w[2, 12:16] = torch.tensor([-0.0, 1.0, -0.0, 2.0])  # W * M leaves -0.0 where W < 0
    assert torch.equal(decompress(compress(w)), w)


def test_more_than_two_in_a_group_names_row_group_and_rule():
    w = torch.zeros(3, 32)
    w[2, 4:7] = 1.0
    with pytest.raises(MaskError, match=r"cell x: not 2:4: row 2, group 1 .* 3 nonzeros"):
        compress(w, where="cell x")


@pytest.mark.parametrize("shape", [(4, 48), (64,)])
def test_shapes_the_format_cannot_hold_are_refused(shape):
    with pytest.raises(CellSpecError, match="multiple of 32"):
        compress(torch.zeros(shape))


def test_a_half_mask_must_keep_exactly_two_of_every_four():
    """A Block-Shock half trains its kept values as N_out x N_in/2: a group keeping one (or
    three) would shift every later value of its row, so it is refused by name."""
    from kernels.compressed24 import kept_positions

    m = make_mask_pair("random_2of4", torch.randn(8, 64))[0]
    assert kept_positions(m, "ok").shape == (8, 2)
    m[3, 8:12] = torch.tensor([True, False, False, False])
    with pytest.raises(MaskError, match=r"cell y: .* exactly 2 of every 4 .* row 3, group 2 .* 1"):
        kept_positions(m, "cell y")
