"""The linear-layer methods the harness compares, one class each, all with one shape.

A method is built on one rank from the full weight W (N_out x N_in), the optional bias, the
mask pair and the explicit process group; it keeps only what that rank would hold. Its
forward is split into `compute` (this rank's GEMM) and `collect` (the collective), so the
timer can measure each alone. Every forward writes into the preallocated `out` buffer, which
the correctness check poisons before the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from kernels.collectives import all_gather_columns, all_reduce_sum, group_size
from kernels.masks import periodic_columns
from kernels.sparse24 import SemiStructuredHalf


@dataclass
class BuildArgs:
    """What every method is built from (identical on every rank)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    masks: tuple[torch.Tensor, torch.Tensor] | None
    mask_name: str | None
    batch: int
    group: object
    backend: str  # 2:4 backend, used by the semi-structured methods only


class Method:
    """Base: subclasses set `weight_bytes` and implement compute. `name`, `collective` and
    `semi_structured` come from the method's spec in kernels/registry.py."""

    name = ""
    collective: str | None = None  # "all_reduce", "all_gather" or None
    semi_structured = False

    def __init__(self, a: BuildArgs):
        self.group = a.group
        self.rank = dist.get_rank(a.group) if group_size(a.group) > 1 else 0
        self.ws = group_size(a.group)
        w = a.weight
        self.out = torch.empty(a.batch, w.shape[0], dtype=w.dtype, device=w.device)
        self.alg_id = None
        self.build(a)

    # -- what a subclass provides -------------------------------------------------------
    def build(self, a: BuildArgs) -> None:
        raise NotImplementedError

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's local product (written into `out` or a local buffer)."""
        raise NotImplementedError

    def local_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input this rank receives (replicated X unless the method splits features)."""
        return x

    @staticmethod
    def effective_weight(a: BuildArgs) -> torch.Tensor:
        """The weight the whole method multiplies the full X by (the reference uses it)."""
        return a.weight

    # -- shared -------------------------------------------------------------------------
    def collect(self, partial: torch.Tensor) -> torch.Tensor:
        if self.collective == "all_reduce":
            return all_reduce_sum(partial, self.group)
        return partial

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.collect(self.compute(x))

    def _mm(self, x, w, bias):
        """out = x @ w^T (+ bias) with no temporary, the bias on rank 0 only."""
        if bias is not None and self.rank == 0:
            return torch.addmm(bias, x, w.t(), out=self.out)
        return torch.mm(x, w.t(), out=self.out)

    @staticmethod
    def _bytes(*tensors) -> int:
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


class DenseSingle(Method):
    def build(self, a):
        self.w, self.b = a.weight.contiguous(), a.bias
        self.weight_bytes = self._bytes(self.w, self.b)

    def compute(self, x):
        return self._mm(x, self.w, self.b)


class DenseTPRow(Method):
    """Row-parallel TP: input features split in contiguous blocks, partial sums all-reduced."""

    def _columns(self, n_in):
        step = n_in // self.ws
        return torch.arange(self.rank * step, (self.rank + 1) * step)

    def build(self, a):
        self.cols = self._columns(a.weight.shape[1]).to(a.weight.device)
        self.w = a.weight[:, self.cols].contiguous()
        self.b = a.bias
        self.weight_bytes = self._bytes(self.w, self.b if self.rank == 0 else None)

    def local_input(self, x):
        return x[:, self.cols].contiguous()

    def compute(self, x):
        return self._mm(x, self.w, self.b)


class DenseTPInterleaved(DenseTPRow):
    """Row-parallel TP whose shard is the columns a periodic 2:4 mask gives each rank.

    This is what Block-Shock with a periodic mask reduces to, so it is that cell's fair twin.
    """

    def build(self, a):
        self.mask_name = a.mask_name
        super().build(a)

    def _columns(self, n_in):
        return periodic_columns(self.mask_name, n_in, self.rank)


class DenseTPCol(Method):
    """Column-parallel TP: output features split, the column blocks all-gathered."""

    def build(self, a):
        n_out = a.weight.shape[0]
        step = n_out // self.ws
        rows = slice(self.rank * step, (self.rank + 1) * step)
        self.w = a.weight[rows].contiguous()
        self.b = None if a.bias is None else a.bias[rows].contiguous()
        self.local = torch.empty(a.batch, step, dtype=a.weight.dtype, device=a.weight.device)
        self.staging = torch.empty(
            self.ws, a.batch, step, dtype=self.local.dtype, device=self.local.device
        )
        self.weight_bytes = self._bytes(self.w, self.b)

    def compute(self, x):
        if self.b is not None:
            return torch.addmm(self.b, x, self.w.t(), out=self.local)
        return torch.mm(x, self.w.t(), out=self.local)

    def collect(self, partial):
        return all_gather_columns(partial, self.out, self.staging, self.group)


class MaskedSplitDense(Method):
    """Each rank multiplies W*M_g as a dense GEMM (zeros not skipped): the H3 ablation."""

    def build(self, a):
        self.w = (a.weight * a.masks[self.rank]).contiguous()
        self.b = a.bias
        self.weight_bytes = self._bytes(self.w, self.b if self.rank == 0 else None)

    def compute(self, x):
        return self._mm(x, self.w, self.b)


class BlockShock(Method):
    """Each rank multiplies its compressed 2:4 half W*M_g on the sparse path; all-reduce sums."""

    def _half_mask(self, a):
        return a.masks[self.rank]

    def build(self, a):
        bias = a.bias if self.rank == 0 else None
        x_example = torch.randn(
            a.batch, a.weight.shape[1], dtype=a.weight.dtype, device=a.weight.device
        )
        self.half = SemiStructuredHalf(a.weight * self._half_mask(a), bias, a.backend, x_example)
        self.alg_id = self.half.alg_id
        self.weight_bytes = self.half.stored_bytes + self._bytes(bias)

    def compute(self, x):
        return self.half.mm_into(x, self.out)


class BlockShockHalf(BlockShock):
    """Rank 0's half of Block-Shock alone on one device: the kernel the two-GPU method runs."""

    def _half_mask(self, a):
        return a.masks[0]

    @staticmethod
    def effective_weight(a):
        return a.weight * a.masks[0]


class DenseHalf(DenseTPRow):
    """Rank 0's shard of 2-way row-parallel TP alone on one device (N_out x N_in/2, dense)."""

    def _columns(self, n_in):
        return torch.arange(0, n_in // 2)

    @staticmethod
    def effective_weight(a):
        w = a.weight.clone()
        w[:, a.weight.shape[1] // 2 :] = 0
        return w
