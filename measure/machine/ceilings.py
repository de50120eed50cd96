"""The machine's ceilings, measured once per run and device: every floor is built from these.

- copy bandwidth: a device-to-device copy, bytes read plus bytes written over device time;
- matrix rate: a square GEMM in the cell dtype's usual precision (bf16 on GPU, fp32 on CPU);
- collective bandwidth (world_size > 1): all-reduce and all-gather bus bandwidth as nccl-tests
  define it (all-reduce moves 2(n-1)/n of the buffer per rank, all-gather (n-1)/n).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from measure.timing.policy import TimingPolicy
from measure.timing.sampler import Sampler


# The GPU ceilings are taken after a warm-up under load, like the cells: a power-capped GPU's
# GEMM rate at its loaded clocks is the rate the cells can reach.
@dataclass(frozen=True)
class _Sizes:
    copy_bytes: int  # the copied buffer, well beyond the last-level cache
    gemm_n: int  # the square GEMM's side
    coll_bytes: int  # the collectives' buffer
    warmup_s: float


_GPU = _Sizes(copy_bytes=1 << 30, gemm_n=8192, coll_bytes=256 << 20, warmup_s=0.5)
_CPU = _Sizes(copy_bytes=64 << 20, gemm_n=512, coll_bytes=8 << 20, warmup_s=0.05)
_POLICY = TimingPolicy(min_samples=5, min_time_s=0.05, max_time_s=2.0, max_noise=0.02)


def measure_ceilings(ctx) -> dict:
    """Run on every rank of ctx together; returns this rank's ceilings."""
    cuda = ctx.device.type == "cuda"
    size = _GPU if cuda else _CPU
    sampler = Sampler(ctx, _POLICY.updated(warmup_s=size.warmup_s))
    mode = "eager" if cuda else "host"
    dev = ctx.device

    src = torch.empty(size.copy_bytes // 2, dtype=torch.bfloat16, device=dev).normal_()
    dst = torch.empty_like(src)
    t_copy = sampler.measure(lambda: dst.copy_(src), mode).median

    n = size.gemm_n
    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    c = torch.empty(n, n, device=dev, dtype=dtype)
    t_gemm = sampler.measure(lambda: torch.mm(a, b, out=c), mode).median

    out = {
        "copy_bytes_per_s": size.copy_bytes * 2 / t_copy,
        "matmul_flop_per_s": 2 * n**3 / t_gemm,
        "matmul_dtype": str(dtype).replace("torch.", ""),
        "copy_bytes": size.copy_bytes,
        "gemm_n": n,
    }
    if ctx.world_size > 1:
        nr = ctx.world_size
        buf = torch.randn(size.coll_bytes // 2, device=dev).to(torch.bfloat16)
        t_ar = sampler.measure(lambda: dist.all_reduce(buf, group=ctx.group), mode).median
        chunks = list(torch.empty(nr, buf.numel() // nr, dtype=buf.dtype, device=dev).unbind(0))
        part = buf[: buf.numel() // nr]
        t_ag = sampler.measure(lambda: dist.all_gather(chunks, part, group=ctx.group), mode).median
        nbytes = buf.numel() * buf.element_size()
        out.update(
            {
                "all_reduce_bus_bytes_per_s": nbytes * 2 * (nr - 1) / nr / t_ar,
                "all_gather_bus_bytes_per_s": nbytes * (nr - 1) / nr / t_ag,
                "collective_bytes": nbytes,
                "collective_backend": ctx.backend,
            }
        )
    return out
