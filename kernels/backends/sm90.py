"""CUTLASS 3's sm90 sparse tensor-core GEMMs (kernels/sm90_24.py: wgmma.sp, the compressed weight
as operand A and the tokens as the MMA's N) as a 2:4 backend. The extension is built just in
time on the first call of `available` in a process (minutes on a 16-core machine, then loaded
from ~/.cache/block-shock-bench/sm90_24), so a machine without Hopper, nvcc or CUTLASS's
headers is told why before any cell runs; the record's alg_id names the chosen variant."""

from __future__ import annotations

import torch

from kernels import sm90_24
from kernels.backends.base import Backend, HalfRecord, needs_cuda


class Sm90Half:
    def __init__(
        self,
        name: str,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ):
        self.gemm = sm90_24.Sm90Sparse24Half(w_masked, bias, x_example, where)
        self.stored_bytes = self.gemm.stored_bytes
        self.record = HalfRecord(name, self.gemm.alg_id, self.gemm.alg_source)

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        return self.gemm.mm(x)

    def mm_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return self.gemm.mm_into(x, out)

    def recompress(self, w_masked: torch.Tensor) -> None:
        self.gemm.recompress(w_masked)


class Sm90(Backend):
    def available(self, device: torch.device) -> str | None:
        reason = needs_cuda(self.name, device)
        if reason is not None:
            return reason
        ok, why = sm90_24.available()
        return None if ok else f"the {self.name} 2:4 backend: {why}"

    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        sm90_24.check_shape(n_out, n_in, batch, dtype, where)

    def build(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ) -> Sm90Half:
        return Sm90Half(self.name, w_masked, bias, x_example, where)
