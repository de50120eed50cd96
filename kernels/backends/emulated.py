"""Masked dense math in place of a 2:4 kernel, where none exists (the CPU): W_g kept dense with
its zeros, F.linear. Every record of a cell that used it says emulated.

An emulated cell stands for a GPU run, so it takes only shapes some GPU 2:4 kernel takes: one no
GPU could run (N=100, say) is refused at collection rather than emulated (issue #23)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.backends.base import Backend, HalfRecord, check_gpu_dims, tensor_bytes


class EmulatedHalf:
    def __init__(self, name: str, w_masked: torch.Tensor, bias: torch.Tensor | None):
        self.bias = bias
        self.weight = w_masked.contiguous()
        self.stored_bytes = tensor_bytes(self.weight)
        self.record = HalfRecord(name)

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def mm_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return out.copy_(self.mm(x))

    def recompress(self, w_masked: torch.Tensor) -> None:
        self.weight.copy_(w_masked)


class Emulated(Backend):
    def available(self, device: torch.device) -> str | None:
        return None

    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        """Dense math takes any dtype and batch, but the weight dims must be ones a GPU 2:4
        kernel takes: the result stands for a GPU run."""
        check_gpu_dims(
            "any GPU backend", n_out, n_in, f"{where} (emulated, but no GPU could run it)"
        )

    def build(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ) -> EmulatedHalf:
        return EmulatedHalf(self.name, w_masked, bias)
