"""This project's own compressed form of a 2:4 half W_g (N_out x N_in, 2:4 along input columns).

Why our own: cuSPARSELt's packed buffer is opaque, so a kernel of ours (kernels/triton/gemm24.py)
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


def empty_like_compressed(n_out: int, n_in: int, dtype, device) -> Compressed24:
    values = torch.empty(n_out, n_in // 2, dtype=dtype, device=device)
    meta = torch.empty(n_out, n_in // COLUMNS_PER_WORD, dtype=torch.int32, device=device)
    return Compressed24(values, meta)
