"""Pick the Triton 2:4 kernel's configuration per GPU, dtype, shape and B bucket, once.

Run outside any timed region (when a half is built): every configuration that fits the shape and
the chip is compiled and timed on the real compressed weight, the fastest one's name is kept on
disk (`$BS_TRITON24_CACHE`, default ~/.cache/block-shock-bench/triton24_configs.json, "off" to
tune in every process) through the same file helpers as the cuSPARSELt alg cache, so every
process times the same kernel. The key names the Triton version and KERNEL_VERSION: a change
to the kernel that can move the best choice must bump it.
"""

from __future__ import annotations

import torch
import triton
import triton.testing

from kernels import alg_cache, triton24
from kernels.compressed24 import Compressed24

ENV = "BS_TRITON24_CACHE"
# 2: the copy-engine variant and the shift-based expansion; 3: PTX expansion; 4: lane-split dots
KERNEL_VERSION = 4
SMEM_BUDGET = 200 * 1024  # bytes of shared memory a config may plan for (H100: 227 KB a block)
ACC_REGS_MAX = 128  # fp32 accumulator registers a thread may hold


def median_ms(fn, warmup_ms: float = 5, rep_ms: float = 25) -> float:
    """Device time of `fn` (CUDA events, L2 flushed between runs), median in ms."""
    return float(triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))


def candidates(n_out: int, n_in: int, batch: int, sm_count: int) -> list[triton24.Config]:
    """Configs that fit the shape, the register file and shared memory; split-K only where the
    output blocks alone give fewer than two programs per SM, and to at most four per SM."""
    bb = triton24.block_b(batch)
    out = []
    for c in triton24.CONFIGS:
        stage_bytes = c.block_n * c.block_k * 9 // 8 + c.block_k * bb * 2
        blocks = n_out // c.block_n
        programs = blocks * c.split_k
        if (
            c.fits(n_out, n_in)
            and c.block_n * bb // (32 * c.num_warps) <= ACC_REGS_MAX
            and c.num_stages * stage_bytes <= SMEM_BUDGET
            and (c.split_k == 1 or (programs <= 4 * sm_count and blocks < 2 * sm_count))
        ):
            out.append(c)
    return out


def cache_key(device_name: str, dtype: torch.dtype, n_out: int, n_in: int, batch: int) -> str:
    library = f"triton {triton.__version__} sparse24 v{KERNEL_VERSION}"
    bucket = triton24.block_b(batch)
    return alg_cache.key(device_name, dtype, n_out, n_in, bucket, library=library)


def choose(
    c: Compressed24,
    bias: torch.Tensor | None,
    x: torch.Tensor,
    where: str,
    configs: tuple[triton24.Config, ...] | None = None,
) -> tuple[triton24.Config, str, dict[str, float]]:
    """(config, where it came from, ms per config tried) for x @ W_g^T at x's batch size;
    `configs` narrows the search (a quick run), else every candidate is tried."""
    n_out, n_in = c.shape
    batch = x.shape[0]
    triton24.check_shape(n_out, n_in, batch, c.values.dtype, where)
    device = c.values.device
    path = alg_cache.cache_path(ENV, "triton24_configs.json")
    k = cache_key(torch.cuda.get_device_name(device), c.values.dtype, n_out, n_in, batch)
    if path is not None:
        name = alg_cache.lookup_name(path, k)
        if name in triton24.CONFIG_BY_NAME:
            return triton24.CONFIG_BY_NAME[name], f"cache {path}", {}
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    out = torch.empty(batch, n_out, dtype=c.values.dtype, device=device)
    times: dict[str, float] = {}
    for cfg in candidates(n_out, n_in, batch, sms):
        if configs is not None and cfg not in configs:
            continue
        mm = triton24.Sparse24Matmul(c, bias, batch, cfg, where)
        try:
            times[cfg.name] = median_ms(lambda mm=mm: mm(x, out))
        except triton.runtime.errors.OutOfResources:
            continue  # the compiler's own verdict on shared memory or registers
    if not times:
        raise triton.runtime.errors.OutOfResources(0, 0, f"{where}: no sparse24 config fits")
    best = min(times, key=times.__getitem__)
    if path is not None:
        alg_cache.store(path, k, best)
    return triton24.CONFIG_BY_NAME[best], "tuned", times
