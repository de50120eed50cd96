"""A 2:4 backend added in one file, behind kernels/backends/base.Backend: this project's
compressed format (values + metadata, kernels/compressed24.py), multiplied by decompressing
W_g each call. It runs anywhere (the CPU too), so the CPU suite can run it in every phase."""

import torch
import torch.nn.functional as F

from common.errors import CellSpecError
from kernels.backends.base import Backend, HalfRecord
from kernels.compressed24 import COLUMNS_PER_WORD, compress, compress_into, decompress
from kernels.registry import BackendSpec, register_backend

NAME = "dummy24"
LABEL = "dummy24: decompress, then dense"


class DecompressingHalf:
    def __init__(self, name: str, w_masked: torch.Tensor, bias: torch.Tensor | None, where: str):
        self.where, self.bias = where, bias
        self.compressed = compress(w_masked, where)
        self.stored_bytes = self.compressed.nbytes
        self.record = HalfRecord(name, alg_id="decompress", alg_source="fixed")

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, decompress(self.compressed), self.bias)

    def mm_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return out.copy_(self.mm(x))

    def recompress(self, w_masked: torch.Tensor) -> None:
        compress_into(w_masked, self.compressed, self.where)


class Dummy24(Backend):
    def available(self, device: torch.device) -> str | None:
        return None

    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        if n_in % COLUMNS_PER_WORD:
            raise CellSpecError(
                f"{where}: backend {self.name} needs N_in a multiple of {COLUMNS_PER_WORD}, "
                f"got {n_in}"
            )

    def build(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ) -> DecompressingHalf:
        return DecompressingHalf(self.name, w_masked, bias, where)


register_backend(
    BackendSpec(NAME, Dummy24, "decompress W_g each call (a test's backend)", "X", LABEL)
)
