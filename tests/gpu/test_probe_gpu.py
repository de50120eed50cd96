"""The exact probe on the real kernels: cuBLAS, cuSPARSELt and F.linear 2:4 halves, and two gloo
ranks sharing one GPU. Run on a GPU machine; skipped with the reason where CUDA is absent."""

import pytest
import torch

from common.cell import CellSpec
from measure.checks.probe import assert_exact
from measure.ranks.context import RankContext
from measure.ranks.failures import Timeouts
from measure.ranks.pool import RankPool
from tests.measure.probe_tasks import FAULTS, probe_cells, probe_faults

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (real 2:4 kernels)"),
]


def _cell(method, mask, dtype, ws=1, bias=True, n=4096, b=16):
    return CellSpec("phase0", method, n, n, b, dtype, mask, "gaussian", ws, bias)


@pytest.fixture
def cuda_ctx():
    return RankContext(0, 1, torch.device("cuda"), "nccl", None, False)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("backend", ["cslt", "flinear"])
def test_real_kernels_are_exact_and_see_each_planted_fault(cuda_ctx, backend, dtype):
    cells = [
        _cell("dense_single", None, dtype),
        _cell("dense_half", None, dtype),
        _cell("block_shock_half", "random_2of4", dtype),
        _cell("block_shock_half", "magnitude_2of4", dtype, n=8192, b=64),
    ]
    figs = probe_cells(cuda_ctx, [c.as_dict() for c in cells], 3, backend)
    for cell, fig in zip(cells, figs, strict=True):
        assert_exact(fig, f"{cell.name} {backend}", 0)
    figures = probe_faults(cuda_ctx, cells[2].as_dict(), 0, 5, backend)
    assert_exact(figures["none"], cells[2].name, 0)
    for kind in FAULTS:
        assert figures[kind].mismatches > 0, f"{kind} on {backend} not seen"


def test_two_gloo_ranks_on_one_gpu_are_exact_and_see_a_planted_fault():
    pool = RankPool(2, "cuda", Timeouts(task_s=300))
    try:
        cells = [
            _cell(m, mask, d, ws=2)
            for m, mask in (
                ("block_shock", "random_2of4"),
                ("dense_tp_row", None),
                ("dense_tp_col", None),
            )
            for d in ("bf16", "fp16")
        ]
        for rank, figs in enumerate(pool.run(probe_cells, [c.as_dict() for c in cells], 3)):
            for cell, fig in zip(cells, figs, strict=True):
                assert_exact(fig, cell.name, rank)
        for rank, figs in enumerate(pool.run(probe_faults, cells[0].as_dict(), 1, 5)):
            assert figs["none"].mismatches == 0
            assert all(figs[k].mismatches > 0 for k in FAULTS), f"rank {rank}"
    finally:
        pool.close()
