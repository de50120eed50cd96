"""The GPU path, run on a GPU machine: `python -m pytest -m gpu tests`. Each test is skipped
with its reason where no CUDA device is visible (CI has none; the closing notes say where
these ran and what they gave).

They check what the CPU suite cannot: the real 2:4 halves (cuSPARSELt and F.linear) against
float64, gloo ranks sharing one GPU, the CUDA-event sampler against a kernel of known length,
graph capture, the NVML energy meter against NVML's raw counter, and the loaded cuSPARSELt's
own version.
"""

from __future__ import annotations

import re
import time

import pytest
import torch

from common.cell import CellSpec
from measure.phases.pipeline import TaskOptions
from measure.timing.policy import TimingPolicy

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)"),
]


@pytest.fixture(scope="module")
def gpu_ctx():
    from measure.ranks.context import RankContext

    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    return RankContext(0, 1, device, "nccl", None, False)


def _cell(method, mask, ws, n=1024, b=64, dtype="bf16", bias=False):
    return CellSpec("phase0", method, n, n, b, dtype, mask, "gaussian", ws, bias)


@pytest.mark.parametrize("backend", ["cslt", "flinear"])
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_the_real_2of4_half_matches_float64(gpu_ctx, backend, dtype):
    from kernels.registry import spec
    from measure.phases.forward import run_check

    cell = _cell("block_shock_half", "random_2of4", 1, dtype=dtype, bias=True)
    r = run_check(gpu_ctx, cell.as_dict(), spec(cell.method), 3, TaskOptions(backend=backend))
    assert r.failure is None, r.failure
    assert r.kernel_backend == backend and not r.emulated
    assert r.errors.rel_fro < r.errors.rel_fro_bound
    assert r.memory.weight_bytes < 1024 * 1024 * 2 * 0.6  # compressed: ~9/16 of the dense bytes


def test_gloo_ranks_sharing_one_gpu_compute_block_shock(tmp_path):
    from kernels.registry import spec
    from measure.phases.forward import run_check
    from measure.ranks.failures import Timeouts
    from measure.ranks.pool import RankPool

    pool = RankPool(2, "cuda", Timeouts(task_s=300))
    try:
        assert pool.backend == "gloo" and pool.shared_device
        cell = _cell("block_shock", "random_2of4", 2)
        options = TaskOptions(backend="cslt")
        results = pool.run(run_check, cell.as_dict(), spec("block_shock"), 5, options)
    finally:
        pool.close()
    for r in results:
        assert r.failure is None, r.failure
        assert r.kernel_backend == "cslt" and r.device.startswith("cuda")


def test_a_kernel_of_known_length_times_within_3_percent(gpu_ctx):
    """torch.cuda._sleep spins for a number of SM cycles: its length is cycles over the SM
    clock, which the sampler reads after every sample."""
    from measure.timing.sampler import Sampler

    cycles = 2_000_000
    policy = TimingPolicy(
        min_samples=10, min_time_s=0.2, max_time_s=5, max_noise=0.01, warmup_s=0.2, max_duty=0.5
    )
    stats = Sampler(gpu_ctx, policy).measure(lambda: torch.cuda._sleep(cycles), "graph")
    assert stats.sm_clock_mhz, "NVML gave no SM clock"
    expected = cycles / (sorted(stats.sm_clock_mhz)[len(stats.sm_clock_mhz) // 2] * 1e6)
    error = stats.median / expected - 1
    print(
        f"known-length kernel: {stats.median * 1e3:.4f} ms vs {expected * 1e3:.4f} ms "
        f"from cycles over the clock ({error:+.2%})"
    )
    assert abs(error) < 0.03
    assert stats.stopped_by in ("noise", "time_cap") and stats.throttled is not None


def test_graph_replay_equals_eager_results(gpu_ctx):
    from measure.cells.build import build
    from measure.timing.sampler import capture_graph

    built = build(gpu_ctx, _cell("block_shock_half", "random_2of4", 1), 9, "cslt")
    x = built.layer.local_input(built.x)
    eager = built.layer.forward(x).clone()
    built.layer.out.fill_(float("nan"))
    capture_graph(lambda: built.layer.forward(x), gpu_ctx.device).replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(built.layer.out, eager, rtol=0, atol=0)


def test_the_nvml_meter_agrees_with_the_raw_energy_counter(gpu_ctx):
    from measure.machine import energy, nvml

    h = nvml.handle(gpu_ctx.device)
    meter = energy.NvmlMeter(gpu_ctx.device)
    a = torch.randn(8192, 8192, device=gpu_ctx.device, dtype=torch.bfloat16)
    start_mj = nvml.energy_mj(h)
    meter.begin_window("gemm")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        for _ in range(20):
            a @ a
        torch.cuda.synchronize()
    window = meter.end_window("gemm")
    raw_j = (nvml.energy_mj(h) - start_mj) / 1e3
    print(f"meter {window.joules:.1f} J, raw counter {raw_j:.1f} J over {window.seconds:.2f} s")
    assert window.joules > 0 and window.method == "nvml_energy_counter"
    assert window.joules == pytest.approx(raw_j, rel=0.05)  # the raw window is a few ms wider


def test_the_loaded_cusparselt_reports_its_own_version(gpu_ctx):
    from measure.machine.environment import cusparselt_runtime_version

    pattern = torch.tensor([1.0, 1.0, 0.0, 0.0], device=gpu_ctx.device, dtype=torch.bfloat16)
    torch._cslt_compress(pattern.repeat(64, 16))  # loads the library if nothing had yet
    version = cusparselt_runtime_version()
    print(f"cuSPARSELt loaded: {version}; torch built with {torch.backends.cusparselt.version()}")
    assert version is not None and re.fullmatch(r"\d+\.\d+\.\d+", version)
