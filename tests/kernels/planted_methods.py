"""Methods registered by tests alone (`-p tests.kernels.planted_methods`): a correct toy method
and a dense_single planted 5% wrong. They show that a method is one class and one registration, and
that a wrong method's timing is never published."""

import torch

from kernels.methods import DenseSingle, Method
from kernels.registry import MethodSpec, register


class TransposedDense(Method):
    """A toy method: keeps W^T and multiplies X by it (a different but exact layout)."""

    def build(self, a):
        self.wt, self.b = a.weight.t().contiguous(), a.bias
        self.weight_bytes = self.wt.numel() * self.wt.element_size()

    def compute(self, x):
        if self.b is not None:
            return torch.addmm(self.b, x, self.wt, out=self.out)
        return torch.mm(x, self.wt, out=self.out)


class FivePercentWrongDense(DenseSingle):
    def compute(self, x):
        return super().compute(x).mul_(1.05)


register(MethodSpec("toy_transposed_dense", TransposedDense, world_size=1))
register(MethodSpec("planted_wrong_dense", FivePercentWrongDense, world_size=1))
