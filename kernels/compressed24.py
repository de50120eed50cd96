"""This project's own compressed form of a 2:4 half W_g (N_out x N_in, 2:4 along input columns).

Why our own: cuSPARSELt's packed buffer is opaque, so a kernel of ours (kernels/triton24.py)
needs a layout it can read with wide loads. Per row, every group of 4 input columns keeps 2:

- `values`: N_out x N_in/2, the weight's dtype, the two kept values of group g at columns 2g and
  2g+1 in increasing input-column order. Read as int32, one word is one group's pair (the value
  at column 2g in the low half); the kernel reads int64 words, two groups' pairs each.
- `meta`: N_out x N_in/32 int32. Group g's two in-group indices (i0 < i1, each 2 bits) form the
  nibble i0 | i1 << 2 at bits 4*(g % 8) of word g // 8: 16 indices per word. Read as bytes,
  byte j holds groups 2j (low nibble) and 2j + 1, the two groups of the kernel's int64 word j.

At 16-bit values that is N_in * 2 + N_in / 8 bytes a row against N_in * 2 * 2 dense: 9/16.
A group with fewer than two nonzeros (a kept weight that is exactly zero) keeps its nonzero and
the lowest free positions, so `decompress(compress(w))` equals `w` for every valid input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from common.errors import CellSpecError, MaskError

GROUPS_PER_WORD = 8  # nibbles of one int32 meta word
COLUMNS_PER_WORD = 4 * GROUPS_PER_WORD


@dataclass(frozen=True)
class Compressed24:
    """A 2:4 half in this project's format (see the module docstring for the layout)."""

    values: torch.Tensor  # N_out x N_in/2, the weight's dtype
    meta: torch.Tensor  # N_out x N_in/32, int32

    @property
    def shape(self) -> tuple[int, int]:
        """(N_out, N_in) of the dense weight this stands for."""
        return self.values.shape[0], self.values.shape[1] * 2

    @property
    def nbytes(self) -> int:
        """Bytes a kernel must read to use the whole weight."""
        return sum(t.numel() * t.element_size() for t in (self.values, self.meta))


def compress(w_masked: torch.Tensor, where: str = "compress24") -> Compressed24:
    """Compress a 2-D weight with at most two nonzeros in every group of 4 input columns.

    Raises CellSpecError for a shape the format cannot hold and MaskError naming the first
    group that keeps more than two. On a GPU with Triton, shapes its kernel takes are
    compressed in one pass (kernels/triton_compress24.py), else by the torch reference below;
    both write the same bytes.
    """
    if w_masked.dim() != 2 or w_masked.shape[1] % COLUMNS_PER_WORD:
        raise CellSpecError(
            f"{where}: the 2:4 format needs a 2-D weight with N_in a multiple of "
            f"{COLUMNS_PER_WORD} (8 groups per int32 meta word), got {tuple(w_masked.shape)}"
        )
    fast = _triton_compressor(w_masked, compressing=True)
    if fast is None:
        return compress_reference(w_masked, where)
    n_out, n_in = w_masked.shape
    out = empty_like_compressed(n_out, n_in, w_masked.dtype, w_masked.device)
    compress_into(w_masked, out, where)
    return out


def empty_like_compressed(n_out: int, n_in: int, dtype, device) -> Compressed24:
    values = torch.empty(n_out, n_in // 2, dtype=dtype, device=device)
    meta = torch.empty(n_out, n_in // COLUMNS_PER_WORD, dtype=torch.int32, device=device)
    return Compressed24(values, meta)


def compress_into(w_masked: torch.Tensor, out: Compressed24, where: str = "compress24") -> None:
    """Compress new values into `out`'s buffers (a kernel reading them keeps its descriptors);
    the Triton pass where it applies, else the reference copied in. MaskError as `compress`.

    While a CUDA graph is being captured (phase3 times a captured train step), the Triton pass's
    count of bad groups is not read: reading it synchronizes, which a capture forbids. What a
    captured step compresses was laid out 2:4 by `place` (or masked by a transposable mask), and
    the same code ran eagerly, count read, in the cell's checked training before."""
    fast = _triton_compressor(w_masked, compressing=True)
    if fast is None:
        fresh = compress_reference(w_masked, where)
        out.values.copy_(fresh.values)
        out.meta.copy_(fresh.meta)
        return
    bad = torch.zeros(1, dtype=torch.int32, device=w_masked.device)
    fast.compress_into(w_masked, out, bad)
    if torch.cuda.is_current_stream_capturing():
        return
    if bad.item():  # the reference names the first group that keeps more than two
        compress_reference(w_masked, where)
        raise AssertionError("the Triton compress counted a bad group the reference did not")


def _triton_compressor(w: torch.Tensor, columns: int | None = None, compressing: bool = False):
    """kernels.triton_compress24 where it takes `w` (a CUDA tensor of its shapes; `columns`:
    the dense width when `w` holds values; its compress reads 16-bit values only), else None."""
    if not w.is_cuda or (compressing and w.element_size() != 2):
        return None
    try:
        from kernels import triton_compress24
    except ImportError:  # no Triton on this machine: the torch path
        return None
    return triton_compress24 if triton_compress24.fits(w, columns) else None


def compress_reference(w_masked: torch.Tensor, where: str = "compress24") -> Compressed24:
    """The torch definition of the format (any device, any shape the format holds)."""
    n_out, n_in = w_masked.shape
    groups = w_masked.reshape(n_out, n_in // 4, 4)
    nonzero = groups != 0
    count = nonzero.sum(-1)
    if (count > 2).any():
        r, g = (count > 2).nonzero()[0].tolist()
        raise MaskError(
            f"{where}: not 2:4: row {r}, group {g} (input columns {4 * g}..{4 * g + 3}) has "
            f"{count[r, g].item()} nonzeros, at most 2 of every 4 allowed"
        )
    pos = torch.arange(4, device=w_masked.device)
    # Nonzeros first, then the lowest free positions; the pair sorted ascending.
    rank = nonzero.to(torch.int64) * 8 + (3 - pos)
    idx = rank.topk(2, dim=-1).indices.sort(dim=-1).values  # n_out x G x 2
    values = groups.gather(-1, idx).reshape(n_out, n_in // 2).contiguous()
    nibble = (idx[..., 0] | (idx[..., 1] << 2)).reshape(n_out, -1, GROUPS_PER_WORD)
    shifts = 4 * torch.arange(GROUPS_PER_WORD, device=w_masked.device)
    word = (nibble << shifts).sum(-1)  # int64, < 2**32
    meta = torch.where(word >= 2**31, word - 2**32, word).to(torch.int32).contiguous()
    return Compressed24(values, meta)


def group_indices(meta: torch.Tensor) -> torch.Tensor:
    """N_out x G x 2 int64 in-group indices (i0, i1) unpacked from the meta words."""
    shifts = 4 * torch.arange(GROUPS_PER_WORD, device=meta.device)
    nibble = ((meta.to(torch.int64)[..., None] >> shifts) & 0xF).reshape(meta.shape[0], -1)
    return torch.stack((nibble & 3, nibble >> 2), dim=-1)


def decompress(c: Compressed24) -> torch.Tensor:
    """The dense N_out x N_in weight, zeros where the format keeps nothing."""
    n_out, n_in = c.shape
    dense = torch.zeros(n_out, n_in // 4, 4, dtype=c.values.dtype, device=c.values.device)
    dense.scatter_(-1, group_indices(c.meta), c.values.reshape(n_out, n_in // 4, 2))
    return dense.reshape(n_out, n_in)


def select(w: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    """The values of `w` (N_out x N_in, any dtype and strides) at the positions `meta` keeps:
    N_out x N_in/2 in the format's order. A 2:4 half's trainable values read from a dense tensor
    (the master at the start, grad_Y^T X every step), so training holds no zeros. One Triton
    pass on a GPU, torch elsewhere; both give the same values."""
    fast = _triton_compressor(w)
    if fast is not None:
        return fast.select(w, meta)
    n_out, n_in = w.shape
    groups = w.reshape(n_out, n_in // 4, 4)
    return groups.gather(-1, group_indices(meta)).reshape(n_out, n_in // 2)


def place(values: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    """The dense N_out x N_in tensor holding `values` at the positions `meta` keeps, zeros
    elsewhere (`select`'s inverse on those positions). One Triton pass on a GPU."""
    fast = _triton_compressor(values, columns=values.shape[1] * 2)
    if fast is not None:
        return fast.place(values, meta)
    return decompress(Compressed24(values, meta))


def kept_positions(mask: torch.Tensor, where: str) -> torch.Tensor:
    """The meta words of a mask that keeps exactly two of every four weights (a Block-Shock
    half's: its complement keeps the other two), for `select` and `place`. MaskError naming
    the first group that keeps another count."""
    n_out, n_in = mask.shape
    count = mask.reshape(n_out, n_in // 4, 4).sum(-1)
    if (count != 2).any():
        r, g = (count != 2).nonzero()[0].tolist()
        raise MaskError(
            f"{where}: a 2:4 half keeps exactly 2 of every 4 weights; row {r}, group {g} "
            f"(input columns {4 * g}..{4 * g + 3}) keeps {count[r, g].item()}"
        )
    return compress(mask.to(torch.bfloat16), where).meta
