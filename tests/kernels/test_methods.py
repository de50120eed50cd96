"""Every method computes the dense layer: compared with F.linear in float64 on CPU."""

import pytest
import torch
import torch.nn.functional as F

from common.cell import CellSpec
from measure.cells.build import build
from tests.measure.rank_tasks import forward_output

TWO_RANK = [
    ("dense_tp_row", None),
    ("dense_tp_col", None),
    ("dense_tp_interleaved", "complement_1001_0110"),
    ("masked_split_dense", "random_2of4"),
    ("block_shock", "magnitude_2of4"),
    ("block_shock", "complement_1100_0011"),
]


def _cell(method, mask, ws, bias=True, n=256, n_out=128, b=8, dtype="fp32"):
    return CellSpec("phase0", method, n, n_out, b, dtype, mask, "gaussian", ws, bias)


@pytest.mark.parametrize("method, mask", TWO_RANK)
def test_two_rank_methods_equal_dense(gloo_pair, method, mask):
    cell = _cell(method, mask, 2)
    outs = gloo_pair.run(forward_output, cell.as_dict(), 11)
    x, w, b, _ = outs[0]
    expected = F.linear(x, w, b)
    for rank, (_, _, _, y) in enumerate(outs):
        torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5, msg=f"rank {rank}")


def test_dense_single_equals_dense(solo_ctx):
    built = build(solo_ctx, _cell("dense_single", None, 1), 5, "auto")
    layer, x, args = built.layer, built.x, built.args
    y = layer.forward(layer.local_input(x))
    torch.testing.assert_close(y, F.linear(x, args.weight, args.bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["block_shock_half", "dense_half"])
def test_single_halves_equal_their_half_of_dense(solo_ctx, method):
    mask = "random_2of4" if method == "block_shock_half" else None
    built = build(solo_ctx, _cell(method, mask, 1, bias=False), 5, "auto")
    layer, x, args = built.layer, built.x, built.args
    y = layer.forward(layer.local_input(x))
    w_half = type(layer).effective_weight(args)
    torch.testing.assert_close(y, x @ w_half.t(), rtol=1e-5, atol=1e-5)
    assert not torch.equal(w_half, args.weight)


def test_block_shock_halves_sum_to_the_weight_and_store_their_bytes(solo_ctx):
    cell = _cell("block_shock_half", "random_2of4", 1, bias=False)
    built = build(solo_ctx, cell, 5, "auto")
    layer, args = built.layer, built.args
    m0, m1 = args.masks
    torch.testing.assert_close(args.weight * m0 + args.weight * m1, args.weight)
    assert layer.kernel_record().backend == "emulated"
    assert layer.weight_bytes == args.weight.numel() * args.weight.element_size()
