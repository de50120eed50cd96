"""Y = X W_g^T (+ bias) in Triton, reading W_g only in its compressed 2:4 form (compressed24).

Why: at small B the product is memory-bound, so a 2:4 half can take 9/16 of a dense weight's
time at best; cuSPARSELt's small-batch kernels sit near half of that floor on Hopper.

Design. Program (n, s) owns BLOCK_N output features and the s-th of SPLIT_K slices of the input
features. Per K tile (BLOCK_K columns = H pairs of groups) it reads the compressed bytes as
int64 words (one word = two groups' value pairs) and meta bytes (one byte = their two index
nibbles), and never builds the dense tile: the sum over a group's four columns splits into four
lanes, so W_tile X_tile^T = sum over (even/odd group, lane p) of W_{e,p} X_{e,p}^T, eight dots
of K = H where W_{e,p} holds lane p of each even (odd) group, a kept value or zero, and X_{e,p}
the matching columns of X (`_tile_product`). Each W_{e,p} is elementwise in the loaded words and
bytes, so Triton loads them from shared memory straight into the tensor cores' A-operand
register layout and expands them there: no shuffle of the weight tile through shared memory
(the dense-tile version spent a shared-memory round trip and a barrier a tile on it). Only X,
B x BLOCK_K, is split in registers. The accumulator is BLOCK_N x BLOCK_B in fp32 (B padded to
16 or more, tl.dot's smallest). Two ways to fetch the tiles:
- pointer loads (`_sparse24_mm_kernel`);
- the copy engine (`_sparse24_tma_kernel`, configs named tma_*): tensor descriptors for pairs,
  meta and X, no address arithmetic in the loop, and rows of X past B arrive as zeros.
Each compressed byte is read once; X (small) is re-read by every column block from L2, which is
what BLOCK_N 256 buys back at B 64. With SPLIT_K > 1 each slice writes fp32 partials and a second
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
# How a group's pair and index nibble become its four lanes (`_group_lanes`): one 64-bit shift
# word, two 32-bit words, or byte permutes in PTX (GPU only; the interpreter runs the others).
EXPANSIONS = ("shift64", "shift32", "prmt")
EXPANSION = "prmt"  # the fewest instructions and the fastest on an H100 (notes/triton24_perf.md)


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
    tiles: tuple[tuple[int, int, int, int], ...]
    tiles = ((64, 128, 4, 4), (64, 256, 4, 3), (128, 128, 4, 3), (128, 128, 4, 4))
    tiles += ((128, 256, 8, 3), (256, 128, 8, 3), (64, 128, 4, 2), (128, 128, 8, 2))
    pointer = tuple(Config(n, k, s, w, p) for n, k, w, p in tiles for s in (1, 2, 4))
    # Copy-engine variant: 64- and 128-row tiles for B 16-32 (one or two programs per SM at
    # N_out 16384), 128-row tiles of one warpgroup and 3 stages for B 64 (two programs share an
    # SM, so one's expansion overlaps the other's MMA waits), 256-row tiles (half of X's
    # re-reads from L2), deep pipelines (3-4 stages) for the bytes in flight one SM needs, and
    # two stages of 128 x 128 for B 256 (a 64 KB X tile a stage).
    tma_tiles: tuple[tuple[int, int, int, int], ...]
    tma_tiles = ((64, 128, 4, 4), (64, 256, 4, 4), (128, 128, 4, 3), (128, 128, 4, 4))
    tma_tiles += ((128, 128, 8, 3), (128, 256, 8, 3), (128, 256, 4, 2), (128, 256, 8, 2))
    tma_tiles += ((256, 128, 8, 2), (256, 128, 8, 3), (128, 128, 8, 2))
    tma = tuple(Config(n, k, s, w, p, True) for n, k, w, p in tma_tiles for s in (1, 2, 4))
    return pointer + tma


CONFIGS: tuple[Config, ...] = _configs()
CONFIG_BY_NAME = {c.name: c for c in CONFIGS}


def block_b(batch: int) -> int:
    """B padded to the power of two >= 16 that one program's accumulator covers."""
    return max(MIN_BLOCK_B, triton.next_power_of_2(batch))


def check_shape(
    n_out: int,
    n_in: int,
    batch: int,
    dtype: torch.dtype,
    where: str,
    who: str = "the Triton 2:4 kernel",
) -> None:
    """Raise CellSpecError naming the cell, `who` (the backend) and the rule before anything
    runs."""
    if dtype not in DTYPES:
        raise CellSpecError(f"{where}: {who} needs bf16 or fp16, got {dtype}")
    if n_out % N_OUT_MULTIPLE or n_in % N_IN_MULTIPLE:
        raise CellSpecError(
            f"{where}: {who} needs N_out a multiple of {N_OUT_MULTIPLE} and N_in a "
            f"multiple of {N_IN_MULTIPLE} (its smallest tile), got {n_out} x {n_in}"
        )
    if not 1 <= batch <= B_MAX:
        raise CellSpecError(
            f"{where}: {who} takes B from 1 to {B_MAX} (one accumulator tile), got B={batch}"
        )


@triton.jit
def _lanes_shift64(pairs, nibbles):
    """A group's four dense 16-bit lanes from its pair (int32, v0 low) and index nibble
    i0 | i1 << 2, as two 32-bit words: lanes 0, 1 in `lo` (low half first), lanes 2, 3 in `hi`.
    Read as one 64-bit word the lanes are v0 << 16*i0 | v1 << 16*i1: two 64-bit shifts."""
    v0 = (pairs & 0xFFFF).to(tl.int64)
    v1 = ((pairs >> 16) & 0xFFFF).to(tl.int64)
    dense = (v0 << ((nibbles & 3) * 16).to(tl.int64)) | (v1 << ((nibbles >> 2) * 16).to(tl.int64))
    return dense.to(tl.int32), (dense >> 32).to(tl.int32)


@triton.jit
def _lanes_shift32(pairs, nibbles):
    """As `_lanes_shift64` in 32-bit words: lo = v0 << 16*i0 | v1 << 16*i1 where a shift of 32
    or more gives 0, hi the same with 32 taken off each shift."""
    v0 = pairs & 0xFFFF
    v1 = (pairs >> 16) & 0xFFFF
    s0 = (nibbles & 3) << 4
    s1 = (nibbles & 12) << 2
    lo = tl.where(s0 < 32, v0 << (s0 & 31), 0) | tl.where(s1 < 32, v1 << (s1 & 31), 0)
    hi = tl.where(s0 >= 32, v0 << (s0 & 31), 0) | tl.where(s1 >= 32, v1 << (s1 & 31), 0)
    return lo, hi


@triton.jit
def _lanes_prmt(pairs, nibbles):
    """As `_lanes_shift64` with byte permutes (PTX, GPU only): each lane's source (0 none,
    1 v0, 2 v1) is a nibble of idx = 1 << 4*i0 | 2 << 4*i1; one prmt looks the four sources up
    in a 3-byte table of prmt selectors (0x44 zeros, 0x10 v0, 0x32 v1), and one prmt per
    output word applies them to the pair: 10 instructions a group, no 64-bit arithmetic."""
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 a, b, i, s;
        and.b32 a, $3, 3;
        shl.b32 a, a, 2;
        and.b32 b, $3, 12;
        shl.b32 a, 1, a;
        shl.b32 b, 2, b;
        or.b32 i, a, b;
        prmt.b32 s, 0x00321044, 0, i;
        prmt.b32 $0, $2, 0, s;
        shr.b32 s, s, 16;
        prmt.b32 $1, $2, 0, s;
        }""",
        constraints="=r,=r,r,r",
        args=[pairs, nibbles],
        dtype=(tl.int32, tl.int32),
        is_pure=True,
        pack=1,
    )


@triton.jit
def _group_lanes(pairs, nibbles, EXPAND: tl.constexpr):
    """The expansion named by EXPAND (see EXPANSIONS): (lo, hi) lane words of each group."""
    if EXPAND == 0:
        return _lanes_shift64(pairs, nibbles)
    elif EXPAND == 1:
        return _lanes_shift32(pairs, nibbles)
    else:
        return _lanes_prmt(pairs, nibbles)


@triton.jit
def _pair_nibbles(meta_bytes):
    """A meta byte's two index nibbles: the even group's (low) and the odd group's (high)."""
    return meta_bytes & 0xF, (meta_bytes >> 4) & 0xF


@triton.jit
def _lane_tiles(lo, hi, DTYPE: tl.constexpr):
    """The four lane tiles W_0..W_3 (BLOCK_N x H) of a set of groups from their lane words:
    W_p holds lane p of each group, a kept value or zero."""
    w0 = lo.to(tl.int16).to(DTYPE, bitcast=True)
    w1 = (lo >> 16).to(tl.int16).to(DTYPE, bitcast=True)
    w2 = hi.to(tl.int16).to(DTYPE, bitcast=True)
    w3 = (hi >> 16).to(tl.int16).to(DTYPE, bitcast=True)
    return w0, w1, w2, w3


@triton.jit
def _lane_dots(lo, hi, x0, x1, x2, x3, acc, DTYPE: tl.constexpr):
    """acc + sum over lanes p of W_p X_p^T, X_p (BLOCK_B x H) the input column of each group
    that lane p multiplies."""
    w0, w1, w2, w3 = _lane_tiles(lo, hi, DTYPE)
    acc = tl.dot(w0, tl.trans(x0), acc)
    acc = tl.dot(w1, tl.trans(x1), acc)
    acc = tl.dot(w2, tl.trans(x2), acc)
    return tl.dot(w3, tl.trans(x3), acc)


@triton.jit
def _split_x(xt):
    """X tile (BLOCK_B x 8H) -> its eight column sets, r = 4*odd + p: set r holds the columns
    8j + r (lane p of the even or odd group of pair j). Returned as even lanes 0-3, odd 0-3."""
    BLOCK_B: tl.constexpr = xt.shape[0]
    H: tl.constexpr = xt.shape[1] // 8
    x8 = tl.reshape(xt, (BLOCK_B, H, 2, 2, 2))  # (b, j, odd, p1, p0)
    xp0, xp1 = tl.split(x8)  # by p0
    x00, x10 = tl.split(xp0)  # lanes 0, 2 (by p1)
    x01, x11 = tl.split(xp1)  # lanes 1, 3
    e0, o0 = tl.split(x00)
    e2, o2 = tl.split(x10)
    e1, o1 = tl.split(x01)
    e3, o3 = tl.split(x11)
    return e0, e1, e2, e3, o0, o1, o2, o3


@triton.jit
def _tile_product(q, meta_bytes, xt, acc, DTYPE: tl.constexpr, EXPAND: tl.constexpr):
    """acc + W_tile X_tile^T for one K tile of 8H input columns.

    q (BLOCK_N x H, int64) holds pair j of groups 2j (low word) and 2j+1; meta_bytes (BLOCK_N x H,
    int32 from uint8) their nibbles; xt is BLOCK_B x 8H. Every step is elementwise on q and the
    meta bytes, so Triton loads both from shared memory straight into the tensor cores' register
    layout (the A operand of wgmma); the K order of the eight dots (even/odd group x lane) is
    X's order after `_split_x`."""
    e0, e1, e2, e3, o0, o1, o2, o3 = _split_x(xt)
    even, odd = _pair_nibbles(meta_bytes)
    lo, hi = _group_lanes(q.to(tl.int32), even, EXPAND)
    acc = _lane_dots(lo, hi, e0, e1, e2, e3, acc, DTYPE)
    lo, hi = _group_lanes((q >> 32).to(tl.int32), odd, EXPAND)
    return _lane_dots(lo, hi, o0, o1, o2, o3, acc, DTYPE)


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
    H: tl.constexpr = BLOCK_K // 8  # group pairs a tile
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    k_len = n_in // SPLIT_K
    k0 = pid_s * k_len
    rows = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    bs = tl.arange(0, BLOCK_B)
    # pairs_ptr (int64) and meta_ptr (uint8) both hold N_in / 8 entries a row: one a group pair
    pair_offs = rows[:, None] * (n_in // 8) + (k0 // 8 + tl.arange(0, H))[None, :]
    pair_ptrs = pairs_ptr + pair_offs
    meta_ptrs = meta_ptr + pair_offs
    x_ptrs = x_ptr + bs[:, None] * stride_xb + (k0 + tl.arange(0, BLOCK_K))[None, :]
    x_mask = bs[:, None] < batch
    acc = tl.zeros((BLOCK_N, BLOCK_B), dtype=tl.float32)
    for _ in range(0, k_len, BLOCK_K):
        q = tl.load(pair_ptrs)
        meta_bytes = tl.load(meta_ptrs).to(tl.int32)
        xt = tl.load(x_ptrs, mask=x_mask, other=0.0)
        acc = _tile_product(q, meta_bytes, xt, acc, DTYPE, EXPAND)
        pair_ptrs += H
        meta_ptrs += H
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
    k_len = n_in // SPLIT_K
    k0 = tl.program_id(1) * k_len
    row0 = tl.program_id(0) * BLOCK_N
    acc = tl.zeros((BLOCK_N, BLOCK_B), dtype=tl.float32)
    for k in range(k0, k0 + k_len, BLOCK_K):
        q = pairs_desc.load([row0, k // 8])
        meta_bytes = meta_desc.load([row0, k // 8]).to(tl.int32)
        xt = x_desc.load([0, k])
        acc = _tile_product(q, meta_bytes, xt, acc, DTYPE, EXPAND)
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
        # One int64 = two groups' pairs, one meta byte = their two nibbles: N_in / 8 a row each.
        self.pairs = c.values.view(torch.int64)
        self.meta_bytes = c.meta.view(torch.uint8)
        if config.tma:
            block = [config.block_n, config.block_k // 8]
            self.pairs_desc = TensorDescriptor.from_tensor(self.pairs, block)
            self.meta_desc = TensorDescriptor.from_tensor(self.meta_bytes, block)
        # fp32 partials of the split-K slices (none without a split)
        split_shape = (config.split_k, batch, n_out) if config.split_k > 1 else (0, 0, 0)
        self.partials = torch.empty(split_shape, dtype=torch.float32, device=c.values.device)

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
                self.meta_bytes,
                bias,
                target,
                self.batch,
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
