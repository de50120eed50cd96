"""Fixtures for cells and for cells of one's own: the run, the ranks, seeds, masks, inputs."""

from __future__ import annotations

import pytest
import torch

from measure.plugin.session import BenchSession


@pytest.fixture(scope="session")
def bench(request) -> BenchSession:
    """The run: matrix, suite, seed, timing policy, records, and the rank pools."""
    return request.config.bs


@pytest.fixture
def ranks(bench, cell):
    """The process group for this cell's world size (started once per run, then reused): for
    a cell of one's own that sends tasks to the ranks; the harness's cells go through
    `bench.run(cell)`."""
    return bench.pool(cell.world_size)


@pytest.fixture
def cell_seed(bench, cell) -> int:
    """A seed per cell, derived from the run's base seed and the cell id (recorded)."""
    return bench.cell_seed(cell)


@pytest.fixture
def mask_pair():
    """make(name, weight, seed=0) -> validated complementary 2:4 masks (M0, M1) for `weight`."""
    from kernels.masks import make_mask_pair

    def make(name, weight, seed=0):
        g = torch.Generator(device=weight.device)
        g.manual_seed(seed)
        return make_mask_pair(name, weight, g)

    return make


@pytest.fixture
def workload_inputs():
    """make(workload, B, N_in, N_out, bias=False, dtype=bf16, seed=0) -> (X, W, b) on the CPU."""
    from measure.cells.workloads import make_inputs

    def make(workload, batch, n_in, n_out, bias=False, dtype=torch.bfloat16, seed=0):
        return make_inputs(workload, batch, n_in, n_out, bias, dtype, torch.device("cpu"), seed)

    return make
