"""A method added in one file: `--bs-extension tests.extension.dummy_method` (or the
BS_EXTENSIONS variable) imports it, and the registry knows it in every process of the run.

It keeps W^T and multiplies X by it: an exact but different layout of the dense product."""

import torch

from kernels.methods import BuildArgs, Method
from kernels.registry import MethodSpec, Style, register

NAME = "dummy_transposed"
LABEL = "dummy: X (W^T), from an extension"


class DummyTransposed(Method):
    def build(self, a: BuildArgs) -> None:
        self.wt, self.b = a.weight.t().contiguous(), a.bias
        self.weight_bytes = self._bytes(self.wt, self.b)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        if self.b is not None:
            return torch.addmm(self.b, x, self.wt, out=self.out)
        return torch.mm(x, self.wt, out=self.out)


register(
    MethodSpec(
        NAME,
        DummyTransposed,
        world_size=1,
        phases=("phase0", "phase1"),
        label=LABEL,
        style=Style("tab:gray", "X"),
    )
)
