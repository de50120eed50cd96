"""grad_W of a 2:4 half at its kept positions only: an SDDMM in Triton.

Why: a Block-Shock half trains its kept values only (N_out x N_in/2, kernels/compressed24.py's
value order), yet computing grad_W = grad_Y^T X densely and then reading the kept values out
(`compressed24.select`) writes and re-reads the whole N_out x N_in gradient: at N=32768 that is
2 GiB written in the dtype, 2 GiB read back, 1 GiB written, then cast to the fp32 the optimizer
takes. This kernel evaluates grad_Y^T X tile by tile in registers and writes only the kept
values, in fp32 (the master's gradient dtype), straight into the optimizer's layout: the bytes
moved are grad_Y, X and the N_out x N_in/2 fp32 output.

Design. Program (m, n) owns BLOCK_M output features (rows of grad_W) and 32 * WORDS input columns
(8 * WORDS groups, WORDS meta words). It accumulates the dense BLOCK_M x 32*WORDS tile of
grad_Y^T X over the batch in BLOCK_K slices on the tensor cores (tl.dot, fp32 accumulator; rows
of the batch past B are loaded as zeros), splits the tile into each group's four lanes, picks the
two lanes the group's meta nibble keeps (i0 < i1, the compressed layout's order) and stores the
pairs: the select of kernels/triton_compress24.py, fused onto the product, with its helpers. The
tensor cores have no sparse-output instruction, so the product is still computed for all four
lanes; what the kernel saves is memory traffic, not FLOPs.

Takes 16-bit grad_Y and X only (tl.dot would run fp32 operands as TF32, outside the bound the
check holds grad_W to), N_out a multiple of BLOCK_M and N_in of 32 * WORDS; `fits` says which
calls it takes and `compressed24`-style callers fall back to dense-then-select for the rest.
The configuration is one fixed tiling, not tuned per GPU (kernels/tune24.py tunes the forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels.compressed24 import COLUMNS_PER_WORD
from kernels.triton_compress24 import _lane, _nibbles, _store_pairs

DTYPES = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class Config:
    """One tiling: BLOCK_M rows x 32 * WORDS columns a program, BLOCK_K batch rows a slice."""

    block_m: int = 64
    words: int = 4
    block_k: int = 32
    num_warps: int = 4
    num_stages: int = 3

    @property
    def columns(self) -> int:
        return COLUMNS_PER_WORD * self.words


DEFAULT = Config()


@triton.jit
def _tile_lanes(acc, BLOCK_M: tl.constexpr, G: tl.constexpr):
    """Lanes 0..3 (BLOCK_M x G each) of the dense tile's G groups (column 4g + p is lane p of
    group g), split as kernels/triton_compress24._group_lanes splits a loaded tile."""
    even, odd = tl.split(tl.reshape(acc, (BLOCK_M, G, 2, 2)))
    a0, a2 = tl.split(even)
    a1, a3 = tl.split(odd)
    return a0, a1, a2, a3


@triton.jit
def _sddmm24_kernel(
    gy_ptr, x_ptr, meta_ptr, out_ptr, batch, n_groups,
    stride_gb, stride_gm, stride_xb, stride_xk,
    BLOCK_M: tl.constexpr, WORDS: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    G: tl.constexpr = WORDS * 8
    rows = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    g0 = tl.program_id(1) * G
    cols = (g0 * 4 + tl.arange(0, 4 * G)).to(tl.int64)
    acc = tl.zeros((BLOCK_M, 4 * G), dtype=tl.float32)
    for k0 in range(0, batch, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        live = ks < batch
        # grad_Y^T tile (BLOCK_M x BLOCK_K) read through grad_Y's strides, no transposed copy
        a = tl.load(
            gy_ptr + ks[None, :] * stride_gb + rows[:, None] * stride_gm,
            mask=live[None, :],
            other=0.0,
        )
        b = tl.load(
            x_ptr + ks[:, None] * stride_xb + cols[None, :] * stride_xk,
            mask=live[:, None],
            other=0.0,
        )
        acc = tl.dot(a, b, acc)
    a0, a1, a2, a3 = _tile_lanes(acc, BLOCK_M, G)
    nibble = _nibbles(meta_ptr, rows, n_groups, tl.program_id(1) * WORDS, BLOCK_M, WORDS)
    v0 = _lane(a0, a1, a2, a3, nibble & 3)
    v1 = _lane(a0, a1, a2, a3, nibble >> 2)
    _store_pairs(out_ptr, rows, g0, n_groups, v0, v1)


def fits(grad_y: torch.Tensor, x: torch.Tensor, config: Config = DEFAULT) -> bool:
    """The calls this kernel takes: CUDA, 16-bit operands of one dtype, grad_Y B x N_out and X
    B x N_in with N_out a multiple of BLOCK_M and N_in of the program's columns."""
    return (
        grad_y.is_cuda
        and x.is_cuda
        and grad_y.dtype in DTYPES
        and x.dtype == grad_y.dtype
        and grad_y.dim() == 2
        and x.dim() == 2
        and grad_y.shape[0] == x.shape[0]
        and grad_y.shape[1] % config.block_m == 0
        and x.shape[1] % config.columns == 0
    )


def sddmm24(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    meta: torch.Tensor,
    out: torch.Tensor | None = None,
    config: Config = DEFAULT,
) -> torch.Tensor:
    """grad_Y^T X at the positions `meta` keeps (kernels/compressed24.py's meta words, N_out x
    N_in/32 int32), as N_out x N_in/2 fp32 in the compressed value order; into `out` when given
    (no allocation, so a CUDA graph replays it). grad_Y and X may have any strides."""
    batch, n_out = grad_y.shape
    n_in = x.shape[1]
    if out is None:
        out = torch.empty(n_out, n_in // 2, dtype=torch.float32, device=x.device)
    grid = (n_out // config.block_m, n_in // config.columns)
    _sddmm24_kernel[grid](
        grad_y, x, meta, out, batch, n_in // 4,
        grad_y.stride(0), grad_y.stride(1), x.stride(0), x.stride(1),
        BLOCK_M=config.block_m, WORDS=config.words, BLOCK_K=config.block_k,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )  # fmt: skip
    return out
