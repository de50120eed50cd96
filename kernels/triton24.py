"""Y = X W_g^T (+ bias) in Triton, reading W_g only in its compressed 2:4 form (compressed24).

Why: at small B the product is memory-bound, so a 2:4 half can take 9/16 of a dense weight's
time at best; cuSPARSELt's small-batch kernels sit near half of that floor on Hopper.

Design. Program (n, s) owns BLOCK_N output features and the s-th of SPLIT_K slices of the input
features. Per K tile it takes the tile's value pairs as int32 words (one word = one group's two
kept values) and the meta words, builds the dense BLOCK_N x BLOCK_K tile in registers (each
group's four lanes as one 64-bit word v0 << 16*i0 | v1 << 16*i1, then two interleaves), and feeds
it as the left operand of a dense tl.dot against the X^T tile (BLOCK_K x BLOCK_B, B padded to 16
or more): the accumulator is BLOCK_N x BLOCK_B in fp32. Two ways to fetch the tiles:
- pointer loads (`_sparse24_mm_kernel`): per-element pointers, cp.async for the weight tiles;
- the copy engine (`_sparse24_tma_kernel`, configs named tma_*): tensor descriptors for pairs,
  meta and X, so the loop has no address arithmetic, X is pipelined too, and rows of X past B
  arrive as zeros. Sm_90 SASS compiled off the GPU: ~39 loop instructions per group for the
  pointer kernel with the old select-based expansion, ~30 for this one.
Each compressed byte is read once; X (small) is re-read by every column block from L2 (at B 64
and 128-row tiles nearly as many bytes as the weight), which is what BLOCK_N 256 (with SPLIT_K 2
to keep the SMs busy) buys back. With SPLIT_K > 1 each slice writes fp32 partials and a second
kernel sums them, adds the bias and casts (deterministic, no atomics). Configurations live in
CONFIGS; kernels/tune24.py picks one per GPU, dtype, shape and B bucket outside any timed region.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from common.errors import CellSpecError
from kernels.compressed24 import Compressed24

B_MAX = 256
MIN_BLOCK_B = 16  # tl.dot needs every dim >= 16
N_OUT_MULTIPLE = 64  # the smallest BLOCK_N
N_IN_MULTIPLE = 128  # the smallest BLOCK_K (and a multiple of the meta word's 32 columns)
DTYPES = (torch.bfloat16, torch.float16)
TMA_ALIGN = 16  # bytes: the copy engine's rule for a tensor's base and row strides
# How a group's pair and index nibble become four dense lanes (`_expand`): one 64-bit shift
# word, two 32-bit words, or the 32-bit words in PTX (GPU only).
EXPANSIONS = ("shift64", "shift32", "asm")
EXPANSION = "asm"  # the fastest of the three on an H100 (notes/triton24_perf.md)


@dataclass(frozen=True)
class Config:
    """One tiling of the kernel; `name` is what the tuning cache stores."""

    block_n: int
    block_k: int
    split_k: int
    num_warps: int
    num_stages: int
    tma: bool = False  # tiles fetched by the copy engine (tensor descriptors), see the docstring

    @property
    def name(self) -> str:
        b = self
        prefix = "tma_" if b.tma else ""
        return f"{prefix}n{b.block_n}_k{b.block_k}_s{b.split_k}_w{b.num_warps}_p{b.num_stages}"

    def fits(self, n_out: int, n_in: int) -> bool:
        return n_out % self.block_n == 0 and n_in % (self.block_k * self.split_k) == 0


def _configs() -> tuple[Config, ...]:
    # (BLOCK_N, BLOCK_K, warps, stages): 64 x 128 for few output rows (N 4096), 128-row tiles to
    # halve X's re-reads from L2 at B 32-64, 256 rows for the GEMM-like B 128-256; each with
    # SPLIT_K 1, 2, 4 for occupancy where N_out / BLOCK_N programs are few; two stages only
    # where B's X tile is large (B 256).
    tiles = ((64, 128, 4, 4), (64, 256, 4, 3), (128, 128, 4, 3), (128, 128, 4, 4))
    tiles += ((128, 256, 8, 3), (256, 128, 8, 3), (64, 128, 4, 2), (128, 128, 8, 2))
    pointer = tuple(Config(n, k, s, w, p) for n, k, w, p in tiles for s in (1, 2, 4))
    # Copy-engine variant: 128-row tiles for B 16-32 (one program per SM at N_out 16384), 256-row
    # tiles for B 64 (half of X's re-reads from L2, SPLIT_K 2 to keep 128 programs), deep
    # pipelines (3-4 stages of 18-36 KB) for the bytes in flight one SM needs.
    tma_tiles = ((128, 128, 4, 4), (128, 256, 8, 3), (128, 128, 8, 4), (256, 128, 8, 3))
    tma_tiles += ((256, 128, 8, 2), (64, 256, 4, 4), (128, 256, 8, 2))
    tma = tuple(Config(n, k, s, w, p, True) for n, k, w, p in tma_tiles for s in (1, 2, 4))
    return pointer + tma


CONFIGS: tuple[Config, ...] = _configs()
CONFIG_BY_NAME = {c.name: c for c in CONFIGS}


def block_b(batch: int) -> int:
    """B padded to the power of two >= 16 that one program's accumulator covers."""
    return max(MIN_BLOCK_B, triton.next_power_of_2(batch))


def check_shape(
    n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str, backend: str = "triton"
) -> None:
    """Raise CellSpecError naming the cell, the backend and the rule before anything runs."""
    if dtype not in DTYPES:
        raise CellSpecError(f"{where}: backend {backend} needs bf16 or fp16, got {dtype}")
    if n_out % N_OUT_MULTIPLE or n_in % N_IN_MULTIPLE:
        raise CellSpecError(
            f"{where}: backend {backend} needs N_out a multiple of {N_OUT_MULTIPLE} and N_in a "
            f"multiple of {N_IN_MULTIPLE} (its smallest tile), got {n_out} x {n_in}"
        )
    if not 1 <= batch <= B_MAX:
        raise CellSpecError(
            f"{where}: backend {backend} takes B from 1 to {B_MAX} (one accumulator tile), "
            f"got B={batch}"
        )


@triton.jit
def _group_nibbles(words, BLOCK_N: tl.constexpr, G: tl.constexpr):
    """BLOCK_N x G index nibbles from BLOCK_N x G/8 meta words (group g at bits 4 * (g % 8))."""
    shifts = tl.arange(0, 8) * 4
    return tl.reshape((words[:, :, None] >> shifts[None, None, :]) & 0xF, (BLOCK_N, G))


@triton.jit
def _expand_tile(pairs, nibbles, DTYPE: tl.constexpr):
    """Dense BLOCK_N x 4G tile from G groups' value pairs (int32) and index nibbles.

    A group's four dense 16-bit lanes, read as one 64-bit word, are v0 << 16*i0 | v1 << 16*i1:
    two 64-bit shifts and an or (about half the instructions of per-lane compares and selects,
    which were most of the old kernel's loop); then the lanes are cut back out and interleaved.
    """
    v0 = (pairs & 0xFFFF).to(tl.int64)
    v1 = ((pairs >> 16) & 0xFFFF).to(tl.int64)
    dense = (v0 << ((nibbles & 3) * 16).to(tl.int64)) | (v1 << ((nibbles >> 2) * 16).to(tl.int64))
    return _lanes_to_tile(dense.to(tl.int32), (dense >> 32).to(tl.int32), DTYPE)


@triton.jit
def _lanes_to_tile(lo, hi, DTYPE: tl.constexpr):
    """Dense BLOCK_N x 4G tile from each group's lanes packed in two 32-bit words: lanes 0, 1
    in `lo` (low half first), lanes 2, 3 in `hi`."""
    w0 = lo.to(tl.int16).to(DTYPE, bitcast=True)
    w1 = (lo >> 16).to(tl.int16).to(DTYPE, bitcast=True)
    w2 = hi.to(tl.int16).to(DTYPE, bitcast=True)
    w3 = (hi >> 16).to(tl.int16).to(DTYPE, bitcast=True)
    # interleave(interleave(w0, w2), interleave(w1, w3)) puts w_p at column 4g + p.
    return tl.interleave(tl.interleave(w0, w2), tl.interleave(w1, w3))


@triton.jit
def _expand_tile_32(pairs, nibbles, DTYPE: tl.constexpr):
    """As `_expand_tile` with 32-bit words only: lane word lo = v0 << 16*i0 | v1 << 16*i1 where
    a shift of 32 or more gives 0, hi the same with 32 taken off each shift (PTX's shl.b32
    clamps, so on a GPU each where() can fold into the shift)."""
    v0 = pairs & 0xFFFF
    v1 = (pairs >> 16) & 0xFFFF
    s0 = (nibbles & 3) << 4
    s1 = (nibbles & 12) << 2
    lo = tl.where(s0 < 32, v0 << (s0 & 31), 0) | tl.where(s1 < 32, v1 << (s1 & 31), 0)
    hi = tl.where(s0 >= 32, v0 << (s0 & 31), 0) | tl.where(s1 >= 32, v1 << (s1 & 31), 0)
    return _lanes_to_tile(lo, hi, DTYPE)


@triton.jit
def _expand_tile_asm(pairs, nibbles, DTYPE: tl.constexpr):
    """`_expand_tile_32` in PTX, relying on shl.b32's clamp (a shift of 32 or more gives 0):
    14 instructions a group, no 64-bit arithmetic. GPU only (the interpreter runs no PTX)."""
    lo, hi = tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 v0, v1, s0, s1, t;
        and.b32 v0, $2, 0xFFFF;
        shr.b32 v1, $2, 16;
        and.b32 s0, $3, 3;
        shl.b32 s0, s0, 4;
        and.b32 s1, $3, 12;
        shl.b32 s1, s1, 2;
        shl.b32 $0, v0, s0;
        shl.b32 t, v1, s1;
        or.b32 $0, $0, t;
        xor.b32 s0, s0, 32;
        xor.b32 s1, s1, 32;
        shl.b32 $1, v0, s0;
        shl.b32 t, v1, s1;
        or.b32 $1, $1, t;
        }""",
        constraints="=r,=r,r,r",
        args=[pairs, nibbles],
        dtype=(tl.int32, tl.int32),
        is_pure=True,
        pack=1,
    )
    return _lanes_to_tile(lo, hi, DTYPE)


@triton.jit
def _expand(pairs, nibbles, DTYPE: tl.constexpr, EXPAND: tl.constexpr):
    """The expansion named by EXPAND (see EXPANSIONS)."""
    if EXPAND == 0:
        return _expand_tile(pairs, nibbles, DTYPE)
    elif EXPAND == 1:
        return _expand_tile_32(pairs, nibbles, DTYPE)
    else:
        return _expand_tile_asm(pairs, nibbles, DTYPE)


@triton.jit
def _store_tile(acc, bias_ptr, out_ptr, batch, stride_ob, stride_os, DTYPE, HAS_BIAS, SPLIT_K):
    """Write program (n, s)'s BLOCK_N x BLOCK_B accumulator: Y^T with the bias, or fp32 partials."""
    BLOCK_N: tl.constexpr = acc.shape[0]
    BLOCK_B: tl.constexpr = acc.shape[1]
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    bs = tl.arange(0, BLOCK_B)
    out_ptrs = out_ptr + tl.program_id(1) * stride_os + bs[None, :] * stride_ob + cols[:, None]
    mask = bs[None, :] < batch
    if SPLIT_K == 1:
        if HAS_BIAS:
            acc += tl.load(bias_ptr + cols).to(tl.float32)[:, None]
        tl.store(out_ptrs, acc.to(DTYPE), mask=mask)
    else:
        tl.store(out_ptrs, acc, mask=mask)


@triton.jit
def _sparse24_mm_kernel(
    x_ptr,
    pairs_ptr,
    meta_ptr,
    bias_ptr,
    out_ptr,
    batch,
    n_out,
    n_in,
    stride_xb,
    stride_ob,
    stride_os,
    DTYPE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_B: tl.constexpr,
    EXPAND: tl.constexpr,
):
    G: tl.constexpr = BLOCK_K // 4
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    k_len = n_in // SPLIT_K
    k0 = pid_s * k_len
    rows = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    groups = tl.arange(0, G)
    ks = tl.arange(0, BLOCK_K)
    bs = tl.arange(0, BLOCK_B)
    pair_ptrs = pairs_ptr + rows[:, None] * (n_in // 4) + (k0 // 4 + groups)[None, :]
    meta_ptrs = meta_ptr + rows[:, None] * (n_in // 32) + (k0 // 32 + tl.arange(0, G // 8))[None, :]
    x_ptrs = x_ptr + bs[None, :] * stride_xb + (k0 + ks)[:, None]
    x_mask = bs[None, :] < batch
    acc = tl.zeros((BLOCK_N, BLOCK_B), dtype=tl.float32)
    for _ in range(0, k_len, BLOCK_K):
        pairs = tl.load(pair_ptrs)
        words = tl.load(meta_ptrs)
        xt = tl.load(x_ptrs, mask=x_mask, other=0.0)
        w = _expand(pairs, _group_nibbles(words, BLOCK_N, G), DTYPE, EXPAND)
        acc = tl.dot(w, xt, acc)
        pair_ptrs += G
        meta_ptrs += G // 8
        x_ptrs += BLOCK_K
    _store_tile(acc, bias_ptr, out_ptr, batch, stride_ob, stride_os, DTYPE, HAS_BIAS, SPLIT_K)


@triton.jit
def _sparse24_tma_kernel(
    x_desc,
    pairs_desc,
    meta_desc,
    bias_ptr,
    out_ptr,
    batch,
    n_in,
    stride_ob,
    stride_os,
    DTYPE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_B: tl.constexpr,
    EXPAND: tl.constexpr,
):
    """The same product with every tile fetched by the copy engine (TMA) through tensor
    descriptors: no per-element address arithmetic in the loop (the pointer kernel spends about
    a third of its instructions there), X pipelined like the weight tiles, and rows of X past B
    filled with zeros by the copy engine instead of a mask."""
    G: tl.constexpr = BLOCK_K // 4
    k_len = n_in // SPLIT_K
    k0 = tl.program_id(1) * k_len
    row0 = tl.program_id(0) * BLOCK_N
    acc = tl.zeros((BLOCK_N, BLOCK_B), dtype=tl.float32)
    for k in range(k0, k0 + k_len, BLOCK_K):
        pairs = pairs_desc.load([row0, k // 4])
        words = meta_desc.load([row0, k // 32])
        xt = x_desc.load([0, k])
        w = _expand(pairs, _group_nibbles(words, BLOCK_N, G), DTYPE, EXPAND)
        acc = tl.dot(w, tl.trans(xt), acc)
    _store_tile(acc, bias_ptr, out_ptr, batch, stride_ob, stride_os, DTYPE, HAS_BIAS, SPLIT_K)


@triton.jit
def _split_sum_kernel(
    part_ptr,
    bias_ptr,
    out_ptr,
    numel,
    n_out,
    stride_s,
    DTYPE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    acc = tl.load(part_ptr + offs, mask=mask, other=0.0)
    for s in tl.static_range(1, SPLIT_K):
        acc += tl.load(part_ptr + s * stride_s + offs, mask=mask, other=0.0)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs % n_out, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, acc.to(DTYPE), mask=mask)


_TL_DTYPE = {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


class Sparse24Matmul:
    """x @ W_g^T (+ bias) for one compressed half, one batch size and one configuration.

    Buffers (the fp32 partials of split-K) are allocated here, once, so a forward allocates
    nothing and can be captured in a CUDA graph.
    """

    def __init__(
        self,
        c: Compressed24,
        bias: torch.Tensor | None,
        batch: int,
        config: Config,
        where: str,
        expansion: str | None = None,
    ):
        n_out, n_in = c.shape
        check_shape(n_out, n_in, batch, c.values.dtype, where)
        if not config.fits(n_out, n_in):
            raise CellSpecError(
                f"{where}: backend triton config {config.name} needs N_out a multiple of "
                f"{config.block_n} and N_in of {config.block_k * config.split_k}, "
                f"got {n_out} x {n_in}"
            )
        self.c, self.bias, self.batch, self.config = c, bias, batch, config
        self.expand = EXPANSIONS.index(expansion or EXPANSION)
        self.pairs = c.values.view(torch.int32)  # one word = one group's two values
        if config.tma:
            g = config.block_k // 4
            self.pairs_desc = TensorDescriptor.from_tensor(self.pairs, [config.block_n, g])
            self.meta_desc = TensorDescriptor.from_tensor(c.meta, [config.block_n, g // 8])
        self.partials = None
        if config.split_k > 1:
            self.partials = torch.empty(
                config.split_k, batch, n_out, dtype=torch.float32, device=c.values.device
            )

    def _x_descriptor(self, x: torch.Tensor) -> TensorDescriptor:
        """X's descriptor: the copy engine needs a 16-byte aligned base and row stride."""
        if x.data_ptr() % TMA_ALIGN or (x.stride(0) * x.element_size()) % TMA_ALIGN:
            raise CellSpecError(
                f"triton 2:4 config {self.config.name} reads X through the copy engine, which "
                f"needs a {TMA_ALIGN}-byte aligned X and row stride; got address "
                f"{x.data_ptr()} and row stride {x.stride(0)} elements"
            )
        block = [block_b(self.batch), self.config.block_k]
        return TensorDescriptor(x, [self.batch, x.shape[1]], [x.stride(0), 1], block)

    def __call__(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        n_out, n_in = self.c.shape
        if x.shape != (self.batch, n_in) or x.stride(1) != 1 or out.stride(1) != 1:
            raise CellSpecError(
                f"triton 2:4 kernel built for X {self.batch} x {n_in} with unit column stride, "
                f"got X {tuple(x.shape)} strides {x.stride()}, out strides {out.stride()}"
            )
        cfg = self.config
        split = cfg.split_k > 1
        target = self.partials if split else out
        dtype = _TL_DTYPE[self.c.values.dtype]
        bias = self.bias if self.bias is not None else out  # never read without HAS_BIAS
        grid = (n_out // cfg.block_n, cfg.split_k)
        tail = dict(
            DTYPE=dtype,
            HAS_BIAS=self.bias is not None and not split,
            SPLIT_K=cfg.split_k,
            BLOCK_N=cfg.block_n,
            BLOCK_K=cfg.block_k,
            BLOCK_B=block_b(self.batch),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
            EXPAND=self.expand,
        )
        stride_os = target.stride(0) if split else 0
        if cfg.tma:
            _sparse24_tma_kernel[grid](
                self._x_descriptor(x),
                self.pairs_desc,
                self.meta_desc,
                bias,
                target,
                self.batch,
                n_in,
                target.stride(-2),
                stride_os,
                **tail,
            )
        else:
            _sparse24_mm_kernel[grid](
                x,
                self.pairs,
                self.c.meta,
                bias,
                target,
                self.batch,
                n_out,
                n_in,
                x.stride(0),
                target.stride(-2),
                stride_os,
                **tail,
            )
        if split:
            numel = self.batch * n_out
            block = 1024
            _split_sum_kernel[(triton.cdiv(numel, block),)](
                self.partials,
                bias,
                out,
                numel,
                n_out,
                self.partials.stride(0),
                DTYPE=dtype,
                HAS_BIAS=self.bias is not None,
                SPLIT_K=cfg.split_k,
                BLOCK=block,
                num_warps=4,
            )
        return out
