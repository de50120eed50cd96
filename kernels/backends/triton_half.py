"""This project's compressed format (kernels/compressed24.py) and Triton kernel
(kernels/triton24.py), its configuration tuned per GPU and shape (kernels/tune24.py); the
record's alg_id is the configuration's name. Triton is imported when a half is built or a shape
checked, so a machine without it still imports this module and `available` says why."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import torch

from kernels.backends.base import Backend, HalfRecord, needs_cuda

if TYPE_CHECKING:
    from kernels.compressed24 import Compressed24
    from kernels.triton24 import Sparse24Matmul


class TritonHalf:
    def __init__(
        self,
        name: str,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ):
        from kernels import triton24, tune24
        from kernels.compressed24 import compress

        self.where = where
        self.compressed: Compressed24 = compress(w_masked, where)
        config, source, _ = tune24.choose(self.compressed, bias, x_example, where)
        self.record = HalfRecord(name, config.name, source)
        self.kernel: Sparse24Matmul = triton24.Sparse24Matmul(
            self.compressed, bias, x_example.shape[0], config, where
        )
        self.stored_bytes = self.compressed.nbytes

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape[0], self.compressed.shape[0], dtype=x.dtype, device=x.device)
        return self.kernel(x, out)

    def mm_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The kernel writes `out` itself, the bias fused."""
        return self.kernel(x, out)

    def recompress(self, w_masked: torch.Tensor) -> None:
        """Into the kernel's own buffers (its descriptors and a captured graph stay valid),
        from any strides: W_g^T is compressed from a transposed view, no copy."""
        from kernels.compressed24 import compress_into

        compress_into(w_masked, self.compressed, f"{self.where} recompress")


class Triton(Backend):
    def available(self, device: torch.device) -> str | None:
        if importlib.util.find_spec("triton") is None:
            return f"the {self.name} 2:4 backend needs triton (pip install triton)"
        return needs_cuda(self.name, device)

    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        from kernels.triton24 import check_shape

        check_shape(n_out, n_in, batch, dtype, where, f"backend {self.name}")

    def build(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ) -> TritonHalf:
        return TritonHalf(self.name, w_masked, bias, x_example, where)
