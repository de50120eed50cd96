"""The exact probe: exact on every method of the smoke suite, blind to nothing planted.

The float check (checks.py) passes a single wrong weight at K=4096 in bf16; these tests plant one
(a doubled weight with its neighbour dropped, a swapped in-group index, a flipped sign) and show
the probe fails each cell, one-rank and two-rank, while the unplanted cell stays exact.
"""

from dataclasses import replace

import pytest
import torch

from common.cell import CellSpec
from common.errors import CorrectnessError
from kernels.masks import make_mask_pair
from measure.cells.matrix import load_matrix
from measure.checks.probe import (
    assert_exact,
    exact_limit,
    groups_per_row,
    probe_count,
    probe_input,
    probe_weight,
)
from tests.measure.probe_tasks import (
    FAULTS,
    float_check_faults,
    float_check_passes,
    probe_cells,
    probe_faults,
)


def _smoke_cells(world_size: int) -> list[CellSpec]:
    """Each phase0 shape of the smoke suite (and the one-rank halves) in every dtype, with and
    without bias."""
    shapes = {
        replace(c, dtype="bf16", bias=False, workload="gaussian")
        for c in load_matrix().suite("smoke").cells
        if c.phase == "phase0" and c.world_size == world_size
    }
    if world_size == 1:  # the one-rank halves are in no smoke cell: add them
        half = CellSpec("phase0", "dense_half", 256, 256, 8, "bf16", None, "gaussian", 1, False)
        shapes.add(half)
        shapes.add(replace(half, method="block_shock_half", mask="random_2of4"))
        shapes.add(replace(half, method="block_shock_half", mask="magnitude_2of4", N_out=128))
    return [
        replace(c, dtype=d, bias=b)
        for c in sorted(shapes, key=lambda c: c.id)
        for d in ("bf16", "fp16", "fp32")
        for b in (False, True)
    ]


def test_probe_counts_match_the_docstring():
    bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32
    assert (exact_limit(bf16), exact_limit(fp16), exact_limit(fp32)) == (255, 2047, 2**24 - 1)
    assert groups_per_row(bf16, 81920, True) == 25 and groups_per_row(fp16, 81920, True) == 204
    assert [probe_count(d, 81920, 16, True) for d in (bf16, fp16, fp32)] == [52, 7, 1]
    assert probe_count(bf16, 4096, 16, True) == 3


@pytest.mark.parametrize("mask", [None, "random_2of4", "complement_1010_0101"])
def test_probe_weight_gives_each_half_one_plus_and_one_minus(mask):
    n_out, n_in = 8, 64
    masks = make_mask_pair(mask, torch.randn(n_out, n_in)) if mask else None
    w = probe_weight(n_out, n_in, masks, torch.bfloat16, "cpu", torch.Generator().manual_seed(0))
    keep = masks[0] if mask else torch.tensor([1, 1, 0, 0], dtype=torch.bool).repeat(8, 16)
    assert set(w.unique().tolist()) == {-1.0, 1.0}
    for half in (keep, ~keep):
        assert (w[half].view(n_out, -1, 2).sum(-1) == 0).all()  # the pair sums to 0: +1 and -1


def test_probe_rows_cover_whole_groups_with_distinct_values_within_budget():
    gen = torch.Generator().manual_seed(0)
    n_in, g = 1024, groups_per_row(torch.bfloat16, 1024, True)
    row_groups = torch.randperm(n_in // 4, generator=gen)[: 3 * g].view(3, g)
    row_groups[2, -1] = -1  # a partial row: the slot covers nothing
    x = probe_input(row_groups, n_in, torch.bfloat16, gen).view(3, -1, 4)
    covered = x.ne(0).any(-1)
    assert covered.sum().item() == 3 * g - 1
    for r in range(3):
        idx = row_groups[r][row_groups[r] >= 0]
        assert covered[r].nonzero().flatten().sort().values.equal(idx.sort().values)
        assert (x[r, idx].abs().sort(-1).values == torch.tensor([1.0, 2, 3, 4])).all()
    assert x.abs().sum((1, 2)).max().item() + 1 <= exact_limit(torch.bfloat16)


def test_smoke_methods_are_exact_on_one_rank(solo_ctx):
    cells = _smoke_cells(1)
    figures = probe_cells(solo_ctx, [c.as_dict() for c in cells], 3)
    for cell, fig in zip(cells, figures, strict=True):
        assert_exact(fig, cell.name, 0)
        assert fig.probes >= 1 and fig.covered_groups == cell.N // 4
    assert {c.method for c in cells} >= {"dense_single", "dense_half", "block_shock_half"}


def test_smoke_methods_are_exact_on_two_gloo_ranks(gloo_pair):
    cells = _smoke_cells(2)
    per_rank = gloo_pair.run(probe_cells, [c.as_dict() for c in cells], 3)
    for rank, figures in enumerate(per_rank):
        for cell, fig in zip(cells, figures, strict=True):
            assert_exact(fig, cell.name, rank)
    methods = {"dense_tp_row", "dense_tp_col", "dense_tp_interleaved", "masked_split_dense"}
    assert {c.method for c in cells} == methods | {"block_shock"}


def _faults_cell(method, n, dtype, n_out=None):
    """Faults hide in K (= N, the input features); N_out only multiplies the cost, so the
    planted cells keep it small where the float check is not what is shown."""
    mask = None if method == "dense_single" else "random_2of4"
    ws = 2 if method == "block_shock" else 1
    return CellSpec("phase0", method, n, n_out or n, 16, dtype, mask, "gaussian", ws, False)


@pytest.mark.parametrize("n", [256, 4096])
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("method", ["dense_single", "block_shock_half", "block_shock"])
def test_each_planted_fault_fails_the_probe(solo_ctx, gloo_pair, method, n, dtype):
    cell = _faults_cell(method, n, dtype, n_out=min(n, 512))
    if cell.world_size == 2:
        per_rank = gloo_pair.run(probe_faults, cell.as_dict(), 1, 5)  # fault on rank 1
    else:
        per_rank = [probe_faults(solo_ctx, cell.as_dict(), 0, 5)]
    for rank, figures in enumerate(per_rank):
        assert_exact(figures["none"], cell.name, rank)
        for kind in FAULTS:
            fig = figures[kind]
            with pytest.raises(CorrectnessError, match=f"rank {rank}: exact probe: ") as e:
                assert_exact(fig, f"{cell.name} planted {kind}", rank)
            assert fig.nonfinite == 0 and "the rule is equality" in str(e.value)


def test_the_float_check_passes_a_planted_fault_the_probe_fails(solo_ctx):
    """Why the probe exists: at K=4096 in bf16 the float bounds let each fault through."""
    cell = _faults_cell("dense_single", 4096, "bf16")
    figures = float_check_faults(solo_ctx, cell.as_dict(), 0, 5)
    for kind in ("none", *FAULTS):
        assert figures[kind].nonfinite == 0 and float_check_passes(figures[kind]), kind


def test_probe_counts_nan_as_a_mismatch(solo_ctx, monkeypatch):
    from kernels.methods import DenseSingle

    original = DenseSingle.compute

    def one_nan(self, x):
        out = original(self, x)
        out[0, 0] = float("nan")
        return out

    monkeypatch.setattr(DenseSingle, "compute", one_nan)
    cell = _faults_cell("dense_single", 256, "bf16")
    (fig,) = probe_cells(solo_ctx, [cell.as_dict()], 5)
    assert fig.nonfinite == fig.probes and fig.mismatches == fig.probes
    with pytest.raises(CorrectnessError, match="NaN/inf"):
        assert_exact(fig, cell.name, 0)
