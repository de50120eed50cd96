"""torch.sparse.to_sparse_semi_structured and F.linear: the path most users write. Kept
selectable so its per-call host cost is measured beside cuSPARSELt's, not asserted."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

from common.errors import CellSpecError
from kernels.backends.base import (
    Backend,
    HalfRecord,
    check_semi_structured,
    needs_cuda,
    tensor_bytes,
)


class FLinearHalf:
    def __init__(self, name: str, w_masked: torch.Tensor, bias: torch.Tensor | None):
        SparseSemiStructuredTensor._FORCE_CUTLASS = False
        self.bias = bias
        self.weight = to_sparse_semi_structured(w_masked)
        packed = self.weight.packed
        if packed is None:  # torch fills `packed` for a weight it multiplies as given
            raise CellSpecError(f"{name}: to_sparse_semi_structured kept no packed copy of W_g")
        self.stored_bytes = tensor_bytes(packed)
        self.record = HalfRecord(name)

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def mm_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return out.copy_(self.mm(x))

    def recompress(self, w_masked: torch.Tensor) -> None:
        """A new tensor: a CUDA graph captured on the old one does not see it."""
        self.weight = to_sparse_semi_structured(w_masked.contiguous())


class FLinear(Backend):
    def available(self, device: torch.device) -> str | None:
        return needs_cuda(self.name, device)

    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        check_semi_structured(self.name, n_out, n_in, dtype, where)

    def build(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ) -> FLinearHalf:
        return FLinearHalf(self.name, w_masked, bias)
