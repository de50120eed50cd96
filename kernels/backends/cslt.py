"""cuSPARSELt: torch._cslt_compress once, then torch._cslt_sparse_mm with the algorithm its search
picked (searched outside any timed region, once per machine and shape: see kernels/alg_cache.py),
so a call costs no descriptor or dispatch beyond one op.

The search is cuSPARSELt's own matmul search with split-K (torch._C._cusparselt.mm_search: it
returns the alg id, the split-K factor and whether the split runs as one kernel), so small
batches, where one output tile per SM leaves most of a wide-K weight to few SMs, get cuSPARSELt's
split-K kernels: its best chance. Where torch has only the older search (alg id alone), that one
is used and the record's alg_id says so by having no split.

The bias is not fused into the product (`mm_into` adds it on the copy into `out`): it was unfused
after an fp16 bias cell failed in the search on an H100, before fp16 search itself was found to
be the cause; a fused bias on a transposed result has not been tried since.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from common.errors import CellSpecError
from kernels import alg_cache
from kernels.backends.base import (
    Backend,
    HalfRecord,
    check_semi_structured,
    needs_cuda,
    tensor_bytes,
)

FP16_SEARCH_BROKEN = (
    "alg search skipped: cuSPARSELt 0.8.0's search raises an internal error for fp16 on an "
    "H100 and leaves the CUDA context unusable (illegal instruction); alg 0 is used"
)


def search_is_safe(dtype: torch.dtype) -> bool:
    """False where the alg search is known to break the context (seen 2026-11-24, H100)."""
    version = torch.backends.cusparselt.version() or 0
    return not (dtype == torch.float16 and version <= 800)


@dataclass(frozen=True)
class Alg:
    """What cuSPARSELt runs: its algorithm id and split-K (1: none; `one_kernel`: the split's
    partial sums reduced inside one kernel rather than by a second one)."""

    alg_id: int
    split_k: int = 1
    one_kernel: bool = True

    @property
    def name(self) -> str:
        """The record's alg_id ("17", "17 split-K 4 one kernel") and the cache's value."""
        if self.split_k == 1:
            return str(self.alg_id)
        return f"{self.alg_id} split-K {self.split_k} {'one kernel' if self.one_kernel else 'two'}"

    @classmethod
    def parse(cls, text: str) -> Alg:
        parts = text.split()
        if len(parts) == 1:
            return cls(int(parts[0]))
        return cls(int(parts[0]), int(parts[2]), parts[3] == "one")


def search(packed: torch.Tensor, x: torch.Tensor) -> Alg:
    """cuSPARSELt's search with split-K where torch exposes it, else the alg-id search."""
    mm_search = getattr(getattr(torch._C, "_cusparselt", None), "mm_search", None)
    if mm_search is not None:
        alg_id, split_k, one_kernel, _ = mm_search(packed, x.t(), None, None, None, True)
        return Alg(int(alg_id), int(split_k), bool(one_kernel))
    found = torch._cslt_sparse_mm_search(packed, x.t(), transpose_result=True)
    return Alg(int(found[0] if isinstance(found, tuple) else found))


def choose_alg(packed: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> tuple[Alg, str]:
    """The cached choice for this machine and shape, else the search's (then cached)."""
    path = alg_cache.cache_path()
    name = torch.cuda.get_device_name(w.device)
    k = alg_cache.key(name, w.dtype, w.shape[0], w.shape[1], x.shape[0])
    if path is not None:
        cached = alg_cache.lookup_name(path, k)
        if cached is not None:
            return Alg.parse(cached), f"cache {path}"
    alg = search(packed, x)
    if path is not None:
        alg_cache.store(path, k, alg.name)
    return alg, "search"


def safe_alg(packed: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> tuple[Alg, str, str | None]:
    """(the choice, its source, why no search ran): the searched one where the search is safe,
    else alg 0 with the reason."""
    if search_is_safe(w.dtype):
        return (*choose_alg(packed, w, x), None)
    return Alg(0), "default", FP16_SEARCH_BROKEN


class CsltHalf:
    """One rank's half as cuSPARSELt's packed buffer; the alg id chosen at build."""

    def __init__(self, name: str, w_masked: torch.Tensor, bias: torch.Tensor | None):
        self.bias = bias
        self.packed = torch._cslt_compress(w_masked)
        self.stored_bytes = tensor_bytes(self.packed)
        self.alg = Alg(0)
        self.record = HalfRecord(name)

    def use_alg(self, chosen: tuple[Alg, str, str | None], padded_batch: int | None = None) -> None:
        """Run with `chosen` (safe_alg's answer) from now on, and say so in the record."""
        self.alg, source, error = chosen
        self.record = HalfRecord(self.record.backend, self.alg.name, source, error, padded_batch)

    def product(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W_g^T without the bias (a new tensor from cuSPARSELt)."""
        a = self.alg
        if a.split_k == 1:
            return torch._cslt_sparse_mm(self.packed, x.t(), transpose_result=True, alg_id=a.alg_id)
        return torch._cslt_sparse_mm(
            self.packed,
            x.t(),
            transpose_result=True,
            alg_id=a.alg_id,
            split_k=a.split_k,
            split_k_mode=int(a.one_kernel),
        )

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        y = self.product(x)
        return y if self.bias is None else y + self.bias

    def mm_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The bias rides on the copy into `out`."""
        y = self.product(x)
        if self.bias is not None:
            return torch.add(y, self.bias, out=out)
        return out.copy_(y)

    def recompress(self, w_masked: torch.Tensor) -> None:
        """Into the same buffer, so a CUDA graph captured on it stays valid (the copy, 9/16 of
        W_g's bytes, is part of the compress time)."""
        self.packed.copy_(torch._cslt_compress(w_masked.contiguous()))


class Cslt(Backend):
    def available(self, device: torch.device) -> str | None:
        return needs_cuda(self.name, device)

    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        check_semi_structured(self.name, n_out, n_in, dtype, where)
        if batch % 8:
            raise CellSpecError(f"{where}: cuSPARSELt needs B a multiple of 8, got {batch}")

    def build(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ) -> CsltHalf:
        half = CsltHalf(self.name, w_masked, bias)
        half.use_alg(safe_alg(half.packed, w_masked, x_example))
        return half
