"""Compress a 2:4 half into this project's format (kernels/compressed24.py) in one Triton pass.

Why: a T1 train step re-compresses W_g (and W_g^T for the 2:4 backward) after every optimizer
step. cuSPARSELt's compress took 99 ms for the two at N=32768 on an H100 (two thirds of the
step), and the torch reference path (`compressed24.compress`) builds int64 temporaries of N^2
elements. The bytes are one read of W_g and one write of 9/16 of it: about 2 ms at N=32768.

One program takes BLOCK_R rows x 32 * WORDS input columns through any strides (so W_g^T is
compressed from a transposed view, no copy), finds each group's nonzeros, keeps them and the
lowest free positions (the reference's rule, so both paths give the same bytes), writes the
two values and the meta words, and counts the groups holding more than two nonzeros: the
caller turns a nonzero count into a MaskError naming the first such group.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.format24 import COLUMNS_PER_WORD, Compressed24

BLOCK_R = 32
WORDS = 4  # meta words per program row: 128 input columns


def _pair_table() -> int:
    """Nibble i0 | i1 << 2 for each 4-bit nonzero pattern (bit p: lane p nonzero), 16 x 4 bits:
    the pattern's lanes, then the lowest free ones, two in all, ascending. Patterns with three
    or four nonzeros are counted as errors by the kernel; their entries are never used."""
    table = 0
    for pattern in range(16):
        lanes = [p for p in range(4) if pattern >> p & 1][:2]
        lanes += [p for p in range(4) if p not in lanes][: 2 - len(lanes)]
        i0, i1 = sorted(lanes)
        table |= (i0 | i1 << 2) << (4 * pattern)
    return table


PAIR_TABLE = _pair_table()


@triton.jit
def _lane(a, b, c, d, i):
    """Lane i (a tensor of 0..3) of the four lane tensors."""
    return tl.where(i == 0, a, tl.where(i == 1, b, tl.where(i == 2, c, d)))


@triton.jit
def _nonzero(w):
    """1 where w != 0 as the reference compares (-0.0 is zero, NaN is not), from the bits: the
    same on the GPU and in the interpreter, which keeps bf16 as integers."""
    return ((w.to(tl.int16, bitcast=True) & 0x7FFF) != 0).to(tl.int32)


@triton.jit
def _group_lanes(w_ptr, rows, g0, stride_r, stride_c, G: tl.constexpr):
    """Lanes 0..3 (four rows x G tensors) of groups g0.. of `rows`: one 2-D load, coalesced
    along whichever stride is 1, then lane p = 2a + b of the (a, b) split."""
    in_cols = g0 * 4 + tl.arange(0, 4 * G)
    tile = tl.load(w_ptr + rows[:, None] * stride_r + in_cols[None, :] * stride_c)
    even, odd = tl.split(tl.reshape(tile, (rows.shape[0], G, 2, 2)))
    w0, w2 = tl.split(even)
    w1, w3 = tl.split(odd)
    return w0, w1, w2, w3


@triton.jit
def _store_pairs(values_ptr, rows, g0, n_groups, v0, v1):
    """Each group's two kept values, side by side, at groups g0.. of `rows` of the values."""
    G: tl.constexpr = v0.shape[1]
    cols = 2 * g0 + tl.arange(0, 2 * G)
    pairs = tl.reshape(tl.join(v0, v1), (rows.shape[0], 2 * G))
    tl.store(values_ptr + rows[:, None] * (2 * n_groups) + cols[None, :], pairs)


@triton.jit
def _compress24_kernel(
    w_ptr,
    values_ptr,
    meta_ptr,
    bad_ptr,
    stride_r,
    stride_c,
    n_groups,
    PAIRS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    WORDS: tl.constexpr,
):
    G: tl.constexpr = WORDS * 8
    rows = (tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)
    g0 = tl.program_id(1) * G
    w0, w1, w2, w3 = _group_lanes(w_ptr, rows, g0, stride_r, stride_c, G)
    nz0, nz1, nz2, nz3 = _nonzero(w0), _nonzero(w1), _nonzero(w2), _nonzero(w3)
    pattern = nz0 | nz1 << 1 | nz2 << 2 | nz3 << 3
    bad = tl.sum(tl.sum(((nz0 + nz1 + nz2 + nz3) > 2).to(tl.int32), axis=1), axis=0)
    tl.atomic_add(bad_ptr, bad)
    nibble = ((PAIRS >> (pattern * 4).to(tl.int64)) & 0xF).to(tl.int32)
    i0, i1 = nibble & 3, nibble >> 2
    _store_pairs(
        values_ptr, rows, g0, n_groups, _lane(w0, w1, w2, w3, i0), _lane(w0, w1, w2, w3, i1)
    )
    shifts = tl.arange(0, 8) * 4
    words = tl.sum(tl.reshape(nibble, (BLOCK_R, WORDS, 8)) << shifts[None, None, :], axis=2)
    word_cols = tl.program_id(1) * WORDS + tl.arange(0, WORDS)
    tl.store(meta_ptr + rows[:, None] * (n_groups // 8) + word_cols[None, :], words)


@triton.jit
def _nibbles(meta_ptr, rows, n_groups, word0, BLOCK_R: tl.constexpr, WORDS: tl.constexpr):
    """BLOCK_R x 8 * WORDS index nibbles (i0 | i1 << 2) of the groups from word `word0` on."""
    cols = word0 + tl.arange(0, WORDS)
    words = tl.load(meta_ptr + rows[:, None] * (n_groups // 8) + cols[None, :])
    shifts = tl.arange(0, 8) * 4  # group g at bits 4 * (g % 8) of word g // 8
    return tl.reshape((words[:, :, None] >> shifts[None, None, :]) & 0xF, (BLOCK_R, WORDS * 8))


@triton.jit
def _select24_kernel(
    w_ptr, meta_ptr, values_ptr, stride_r, stride_c, n_groups,
    BLOCK_R: tl.constexpr, WORDS: tl.constexpr,
):  # fmt: skip
    G: tl.constexpr = WORDS * 8
    rows = (tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)
    g0 = tl.program_id(1) * G
    w0, w1, w2, w3 = _group_lanes(w_ptr, rows, g0, stride_r, stride_c, G)
    nibble = _nibbles(meta_ptr, rows, n_groups, tl.program_id(1) * WORDS, BLOCK_R, WORDS)
    v0, v1 = _lane(w0, w1, w2, w3, nibble & 3), _lane(w0, w1, w2, w3, nibble >> 2)
    _store_pairs(values_ptr, rows, g0, n_groups, v0, v1)


@triton.jit
def _place24_kernel(
    values_ptr, meta_ptr, w_ptr, n_groups, BLOCK_R: tl.constexpr, WORDS: tl.constexpr
):  # fmt: skip
    G: tl.constexpr = WORDS * 8
    rows = (tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)
    g0 = tl.program_id(1) * G
    cols = 2 * g0 + tl.arange(0, 2 * G)
    pairs = tl.load(values_ptr + rows[:, None] * (2 * n_groups) + cols[None, :])
    v0, v1 = tl.split(tl.reshape(pairs, (BLOCK_R, G, 2)))
    nibble = _nibbles(meta_ptr, rows, n_groups, tl.program_id(1) * WORDS, BLOCK_R, WORDS)
    i0, i1 = nibble & 3, nibble >> 2
    zero = tl.zeros_like(v0)
    w0 = tl.where(i0 == 0, v0, zero)
    w1 = tl.where(i0 == 1, v0, tl.where(i1 == 1, v1, zero))
    w2 = tl.where(i0 == 2, v0, tl.where(i1 == 2, v1, zero))
    w3 = tl.where(i1 == 3, v1, zero)
    # lane p = 2a + b: the inverse of the split in the kernels above
    tile = tl.reshape(tl.join(tl.join(w0, w2), tl.join(w1, w3)), (BLOCK_R, 4 * G))
    out_cols = g0 * 4 + tl.arange(0, 4 * G)
    tl.store(w_ptr + rows[:, None] * (4 * n_groups) + out_cols[None, :], tile)


def _grid(n_out: int, n_in: int) -> tuple[int, int]:
    """One program per BLOCK_R rows x 32 * WORDS dense columns."""
    return n_out // BLOCK_R, n_in // (COLUMNS_PER_WORD * WORDS)


def select(w: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    """`compressed24.select` in one pass (any strides of w)."""
    n_out, n_in = w.shape
    values = torch.empty(n_out, n_in // 2, dtype=w.dtype, device=w.device)
    grid = _grid(n_out, n_in)
    _select24_kernel[grid](
        w, meta, values, w.stride(0), w.stride(1), n_in // 4, BLOCK_R=BLOCK_R, WORDS=WORDS
    )
    return values


def place(values: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    """`compressed24.place` in one pass."""
    n_out, n_in = values.shape[0], values.shape[1] * 2
    w = torch.empty(n_out, n_in, dtype=values.dtype, device=values.device)
    grid = _grid(n_out, n_in)
    _place24_kernel[grid](values.contiguous(), meta, w, n_in // 4, BLOCK_R=BLOCK_R, WORDS=WORDS)
    return w


def fits(w: torch.Tensor, columns: int | None = None) -> bool:
    """Shapes these kernels take (the torch paths take the rest the format allows); `columns`
    is the dense width where `w` holds values."""
    columns = w.shape[-1] if columns is None else columns
    return (
        w.is_cuda
        and w.dim() == 2
        and w.shape[0] % BLOCK_R == 0
        and columns % (COLUMNS_PER_WORD * WORDS) == 0
    )


def compress_into(w_masked: torch.Tensor, out: Compressed24, bad: torch.Tensor) -> None:
    """Write W_g's values and meta into `out`'s buffers (any strides of W_g); add to `bad` the
    number of groups with more than two nonzeros. No host synchronisation."""
    n_out, n_in = w_masked.shape
    grid = _grid(n_out, n_in)
    _compress24_kernel[grid](
        w_masked,
        out.values,
        out.meta,
        bad,
        w_masked.stride(0),
        w_masked.stride(1),
        n_in // 4,
        PAIRS=PAIR_TABLE,
        BLOCK_R=BLOCK_R,
        WORDS=WORDS,
        num_warps=4,
    )
