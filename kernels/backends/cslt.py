"""cuSPARSELt: torch._cslt_compress once, then torch._cslt_sparse_mm with the algorithm id that
torch._cslt_sparse_mm_search picked (searched outside any timed region, once per machine and
shape: see kernels/alg_cache.py), so a call costs no descriptor or dispatch beyond one op.

The bias is not fused into the product (`mm_into` adds it on the copy into `out`): it was unfused
after an fp16 bias cell failed in the search on an H100, before fp16 search itself was found to
be the cause; a fused bias on a transposed result has not been tried since.
"""

from __future__ import annotations

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


def choose_alg(packed: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> tuple[int, str]:
    """The cached alg id for this machine and shape, else the search's (then cached)."""
    path = alg_cache.cache_path()
    name = torch.cuda.get_device_name(w.device)
    k = alg_cache.key(name, w.dtype, w.shape[0], w.shape[1], x.shape[0])
    if path is not None:
        alg = alg_cache.lookup(path, k)
        if alg is not None:
            return alg, f"cache {path}"
    found = torch._cslt_sparse_mm_search(packed, x.t(), transpose_result=True)
    alg = int(found[0] if isinstance(found, tuple) else found)
    if path is not None:
        alg_cache.store(path, k, alg)
    return alg, "search"


def safe_alg(packed: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> tuple[int, str, str | None]:
    """(alg id, its source, why no search ran): the searched alg where the search is safe,
    else alg 0 with the reason."""
    if search_is_safe(w.dtype):
        return (*choose_alg(packed, w, x), None)
    return 0, "default", FP16_SEARCH_BROKEN


class CsltHalf:
    """One rank's half as cuSPARSELt's packed buffer; the alg id chosen at build."""

    def __init__(self, name: str, w_masked: torch.Tensor, bias: torch.Tensor | None):
        self.bias = bias
        self.packed = torch._cslt_compress(w_masked)
        self.stored_bytes = tensor_bytes(self.packed)
        self.alg_id = 0
        self.record = HalfRecord(name)

    def use_alg(self, chosen: tuple[int, str, str | None], padded_batch: int | None = None) -> None:
        """Run with `chosen` (safe_alg's answer) from now on, and say so in the record."""
        self.alg_id, source, error = chosen
        self.record = HalfRecord(self.record.backend, self.alg_id, source, error, padded_batch)

    def product(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W_g^T without the bias (a new tensor from cuSPARSELt)."""
        return torch._cslt_sparse_mm(self.packed, x.t(), transpose_result=True, alg_id=self.alg_id)

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
