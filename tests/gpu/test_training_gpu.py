"""The training half on the real 2:4 kernels (cuSPARSELt, and this project's Triton kernel):
run by the lead on a GPU machine.

Skipped with the reason on a machine with no CUDA device; the CPU tests cover the same checks
on the emulated backend."""

import pytest
import torch

from common.cell import CellSpec
from measure.checks import bounds as checks
from measure.checks.training import assert_trained
from measure.ranks.context import RankContext
from tests.measure.rank_tasks import backward_figures, train_figures

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU for the cuSPARSELt 2:4 kernels"
    ),
]


@pytest.fixture
def cuda_ctx():
    return RankContext(0, 1, torch.device("cuda"), "gloo", None, False)


def _cell(mask, phase):
    return CellSpec(phase, "block_shock_half", 256, 256, 64, "bf16", mask, "gaussian", 1, False)


def test_2of4_backward_on_compressed_w_transpose(cuda_ctx):
    cell = _cell("transposable_magnitude", "phase2")
    fig = backward_figures(cuda_ctx, cell.as_dict(), 41, require_sparse=True, backend="cslt")
    checks.assert_correct(fig.errors, cell.name)
    assert fig.backward_backend == "cslt"


@pytest.mark.parametrize("variant", ["T1", "T1m", "T2"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_train_steps_with_cslt_recompression(cuda_ctx, variant, optimizer):
    cell = _cell("transposable_random", "phase3")
    fig = train_figures(cuda_ctx, cell.as_dict(), 42, optimizer, variant, 3, backend="cslt")
    assert_trained(fig, cell.name)


@pytest.mark.parametrize("variant, optimizer", [("T1", "adamw"), ("T1m", "sgd"), ("T2", "sgd")])
def test_train_steps_with_triton_recompression(cuda_ctx, variant, optimizer):
    """The Triton half re-compresses into its own buffers (its descriptors stay valid)."""
    pytest.importorskip("triton", reason="triton is not installed")
    cell = _cell("transposable_random", "phase3")
    fig = train_figures(cuda_ctx, cell.as_dict(), 43, optimizer, variant, 3, backend="triton")
    assert_trained(fig, cell.name)


def test_2of4_backward_on_the_triton_kernel(cuda_ctx):
    pytest.importorskip("triton", reason="triton is not installed")
    cell = _cell("transposable_magnitude", "phase2")
    fig = backward_figures(cuda_ctx, cell.as_dict(), 44, require_sparse=True, backend="triton")
    checks.assert_correct(fig.errors, cell.name)
    assert fig.backward_backend == "triton"
