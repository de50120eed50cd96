"""The training half on the real 2:4 kernels (cuSPARSELt, and this project's Triton kernel):
run by the lead on a GPU machine.

Skipped with the reason on a machine with no CUDA device; the CPU tests cover the same checks
on the emulated backend."""

import pytest
import torch

from common.cell import CellSpec
from measure.checks import bounds as checks
from measure.checks.train_steps import assert_trained
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


# -- issue 24: every copy every step, the exact training probe, the SDDMM, a captured step ----


def _probe_cell(variant, optimizer, n=1024, b=64):
    return CellSpec("phase3", "block_shock_half", n, n, b, "bf16", "transposable_random",
                    "gaussian", 1, False, None, optimizer, variant, 3)  # fmt: skip


@pytest.mark.parametrize("backend", ["cslt", "triton", "sm90"])
def test_the_exact_training_probe_on_each_2to4_backend(cuda_ctx, backend):
    """Every copy read back through the backend's own kernel equals float64 after one exact
    step, and one wrong kept value re-compressed into W_g^T's half is found where it is."""
    from kernels import registry
    from kernels.masks import make_mask_pair
    from kernels.methods import BlockShockHalf
    from measure.checks.train_probe import assert_probe_exact, train_probe
    from tests.measure.train_plants import WrongBackwardValue

    reason = registry.backend(backend).available(torch.device("cuda"))
    if reason is not None:
        pytest.skip(reason)
    g = torch.Generator(device="cuda").manual_seed(21)
    masks = make_mask_pair("transposable_random", torch.empty(1024, 1024, device="cuda"), g)
    for variant, optimizer in (("T1", "sgd"), ("T1m", "adamw"), ("T2", "sgd")):
        cell = _probe_cell(variant, optimizer)
        fig = train_probe(cuda_ctx, BlockShockHalf, cell, masks, backend, 9)
        assert_probe_exact(fig, f"{cell.name} {backend}", 0)
        assert fig.moved > 0 or variant == "T2"
    planted = train_probe(cuda_ctx, WrongBackwardValue, _probe_cell("T1", "sgd"), masks, backend, 9)
    assert planted.mismatches == 1 and planted.first_mismatch.copy == "backward"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_block_shock_grad_weight_is_the_sddmm_and_matches_its_dense_twin(cuda_ctx, dtype):
    """On a GPU a Block-Shock half's grad_W is the SDDMM (fp32, kept values only); against
    float64 within the fp32 GEMM bound, and beside the dense GEMM + select within the dtype's."""
    from kernels.compressed24 import select
    from kernels.masks import make_mask_pair
    from kernels.methods import BlockShockHalf, BuildArgs

    g = torch.Generator(device="cuda").manual_seed(22)
    w = torch.randn(2048, 4096, device="cuda", generator=g).to(dtype)
    masks = make_mask_pair("transposable_random", w, g)
    layer = BlockShockHalf(BuildArgs(w, None, masks, "transposable_random", 64, None, "cslt"))
    x = torch.randn(64, 4096, device="cuda", generator=g).to(dtype)
    gy = torch.randn(64, 2048, device="cuda", generator=g).to(dtype)
    fast, dense = layer.grad_weight(x, gy), layer.grad_weight_dense(x, gy)
    torch.cuda.synchronize()
    assert fast.dtype == torch.float32 and dense.dtype == dtype
    ref, absref = checks.reference(gy.t(), x.t(), None)
    kept = layer.kept()
    fig = checks.error_figures(fast, select(ref, kept), select(absref, kept),
                               checks.bounds(torch.float32, 64, None, 1))  # fmt: skip
    checks.assert_correct(fig, f"sddmm {dtype}")
    bound = checks.bounds(dtype, 64, None, 1)["elementwise_factor"] * select(absref, kept)
    assert ((fast.double() - dense.double()).abs() <= bound).all()


@pytest.mark.parametrize("backend", ["triton", "cslt"])
@pytest.mark.parametrize("variant, optimizer", [("T1", "adamw"), ("T1m", "sgd"), ("T2", "adamw")])
def test_phase3_checks_every_step_and_times_a_captured_step(cuda_ctx, backend, variant, optimizer):
    """The whole phase3 task on the GPU: every check of every step passes, the exact training
    probe is exact, and the step is timed in a CUDA graph (Triton: its compress skips the host
    check inside a capture; cuSPARSELt: if its compress cannot be captured, the step is timed
    eagerly and `step_capture` says why, which this test reports)."""
    from kernels import registry
    from measure.phases.pipeline import TaskOptions
    from measure.phases.train import CAPTURED, run_train_step
    from measure.timing.policy import TimingPolicy

    if backend == "triton":
        pytest.importorskip("triton", reason="triton is not installed")
    cell = CellSpec("phase3", "block_shock_half", 2048, 2048, 64, "bf16", "transposable_random",
                    "gaussian", 1, False, backend, optimizer, variant, 3)  # fmt: skip
    policy = TimingPolicy(min_samples=3, min_time_s=0.01, max_time_s=0.2, sample_s=0.002,
                          warmup_s=0.02)  # fmt: skip
    options = TaskOptions(backend=backend, energy=False, policy=policy)
    result = run_train_step(cuda_ctx, cell.as_dict(), registry.spec(cell.method), 23, options)
    assert result.failure is None, result.failure
    pf = result.phase_figures
    assert pf.train.probe.mismatches == 0 and len(pf.train.checks) >= 3 * 5
    step = result.timing["step"]
    if backend == "triton":
        assert pf.step_capture == CAPTURED and step.mode == "graph"
    else:
        print(f"cuSPARSELt {variant} {optimizer}: step_capture = {pf.step_capture}")
        assert (pf.step_capture == CAPTURED) == (step.mode == "graph")
    assert "step_eager" in result.timing or step.mode == "eager"
    if variant != "T1m":
        assert "grad_weight_dense" in result.timing
