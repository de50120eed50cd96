"""The linear-layer methods the harness compares, one class each, all with one shape.

A method is built on one rank from the full weight W (N_out x N_in), the optional bias, the
mask pair and the explicit process group; it keeps only what that rank would hold. Its
forward is split into `compute` (this rank's GEMM) and `collect` (the collective), so the
timer can measure each alone. Every forward writes into the preallocated `out` buffer, which
the correctness check poisons before the run.

The backward wrt the input (phase2) has the same shape: `prepare_backward` builds what it needs
(buffers; a 2:4 method's second compressed copy, of W_g^T), kept out of the constructor so a
forward-only cell holds no extra bytes; `compute_backward` and `collect_backward` split it so
the collective can be timed alone; `backward_input(grad_y)` returns the full B x N_in grad_X on
every rank (a single-device half: its own part, see `backward_columns`). For training,
`shard(w)` is what this rank holds of a full weight, `grad_weight` its gradient and
`load_weight` refreshes the compute copy (re-compresses a 2:4 half) from updated values.

What the harness reads off a built method is declared here, typed: `out`, `weight_bytes`, the
buffers a forward or backward writes (`forward_buffers`, `backward_buffers`: the checks poison
them), the 2:4 `half` a semi-structured method multiplies (kernels/backends/base.Half) and the
record of the kernel it ran (`kernel_record`). A method's name and collectives come from its spec
in kernels/registry.py when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from common.errors import CellSpecError
from kernels import registry
from kernels.backends.base import Half, HalfRecord
from kernels.collectives import (
    all_gather_columns,
    all_gather_to_columns,
    all_reduce_sum,
    group_size,
)
from kernels.compressed24 import kept_positions, place, select
from kernels.masks import is_transposable, periodic_columns, validate_transposable_pair


@dataclass
class BuildArgs:
    """What every method is built from (identical on every rank)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    masks: tuple[torch.Tensor, torch.Tensor] | None
    mask_name: str | None
    batch: int
    group: dist.ProcessGroup | None
    backend: str | None  # the 2:4 backend's registered name (semi-structured methods only)
    require_sparse_backward: bool = False  # a cell that demands the 2:4 backward (transposable)


class Method:
    """Base: subclasses set `weight_bytes` and implement `build` and `compute`."""

    name: str
    collective: str | None  # "all_reduce", "all_gather" or None
    backward_collective: str | None  # the same, for grad_X
    weight_bytes: int  # what the method keeps for its weights (a 2:4 half as stored)
    half: Half | None = None  # the compressed W_g a semi-structured method multiplies
    backward_backend = registry.DENSE_KERNEL  # the kernel of grad_X (Block-Shock says its own)
    grad_x: torch.Tensor  # B x N_in, made by prepare_backward

    def __init__(self, a: BuildArgs):
        spec = registry.spec_for(type(self))
        self.name = spec.name
        self.collective = spec.collective
        self.backward_collective = spec.backward_collective
        self.group = a.group
        self.rank = dist.get_rank(a.group) if group_size(a.group) > 1 else 0
        self.ws = group_size(a.group)
        w = a.weight
        self.out = torch.empty(a.batch, w.shape[0], dtype=w.dtype, device=w.device)
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

    # -- what the harness reads -----------------------------------------------------------
    def forward_buffers(self) -> list[torch.Tensor]:
        """The buffers a forward writes (the check fills them with NaN first)."""
        return [self.out]

    def backward_buffers(self) -> list[torch.Tensor]:
        """The buffers a backward writes, once `prepare_backward` made them."""
        return [self.grad_x]

    def kernel_record(self) -> HalfRecord:
        """What the record says of the kernel that runs this rank's GEMM."""
        return self.half.record if self.half is not None else HalfRecord(registry.DENSE_KERNEL)

    # -- shared -------------------------------------------------------------------------
    def collect(self, partial: torch.Tensor) -> torch.Tensor:
        if self.collective == "all_reduce":
            return all_reduce_sum(partial, self.group)
        return partial

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.collect(self.compute(x))

    def _mm(self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """out = x @ w^T (+ bias) with no temporary, the bias on rank 0 only."""
        if bias is not None and self.rank == 0:
            return torch.addmm(bias, x, w.t(), out=self.out)
        return torch.mm(x, w.t(), out=self.out)

    @staticmethod
    def _bytes(*tensors: torch.Tensor | None) -> int:
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def _buffer(self, a: BuildArgs, cols: int) -> torch.Tensor:
        return torch.empty(a.batch, cols, dtype=a.weight.dtype, device=a.weight.device)

    # -- backward wrt the input ---------------------------------------------------------
    def prepare_backward(self, a: BuildArgs) -> None:
        """Allocate grad_X (B x N_in) and whatever else `compute_backward` needs."""
        self.grad_x = self._buffer(a, a.weight.shape[1])

    def local_grad_output(self, grad_y: torch.Tensor) -> torch.Tensor:
        """The part of the full grad_Y (B x N_out) this rank's backward receives."""
        return grad_y

    def compute_backward(self, grad_y: torch.Tensor) -> torch.Tensor:
        """This rank's grad_Y W_local (written into a preallocated buffer)."""
        raise NotImplementedError

    def collect_backward(self, partial: torch.Tensor) -> torch.Tensor:
        if self.backward_collective == "all_reduce":
            return all_reduce_sum(partial, self.group)
        return partial

    def backward_input(self, grad_y: torch.Tensor) -> torch.Tensor:
        """grad_X = grad_Y W_eff, the full B x N_in on every rank (`backward_columns` of it for a
        single-device half), from this rank's `local_grad_output`."""
        return self.collect_backward(self.compute_backward(grad_y))

    def backward_columns(self) -> torch.Tensor | None:
        """The input columns `backward_input` returns (None: all of them)."""
        return None

    # -- training -----------------------------------------------------------------------
    def shard(self, w: torch.Tensor) -> torch.Tensor:
        """What this rank holds of a full N_out x N_in weight (a new tensor)."""
        return w.clone()

    def shard_rows(self, w_rows: torch.Tensor, rows: slice) -> tuple[torch.Tensor, slice] | None:
        """What this rank holds of rows `rows` of a full weight (`w_rows` is those rows), and
        which rows of `shard(W)` that is; None when it holds none of them. The training check
        compares a weight too large for several float64 copies chunk by chunk."""
        return self.shard(w_rows), rows

    def grad_weight(self, x: torch.Tensor, grad_y: torch.Tensor) -> torch.Tensor:
        """grad_Y^T X restricted to what this rank holds, from the local X and local grad_Y."""
        return torch.mm(grad_y.t(), x)

    def own_weight(self, built_from: torch.Tensor) -> None:
        """Training updates the compute copy in place: one that shares storage with the weight
        the method was built from becomes its own copy (a method that compresses keeps none)."""

    def load_weight(self, w_local: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Refresh the compute copy from updated values shaped like `shard(W)` (`mask`: a new
        mask for this rank, where the method takes one)."""
        raise NotImplementedError


class DenseMethod(Method):
    """A method whose rank multiplies a dense copy `w` of what it holds (bias `b`)."""

    w: torch.Tensor
    b: torch.Tensor | None

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return self._mm(x, self.w, self.b)

    def compute_backward(self, grad_y: torch.Tensor) -> torch.Tensor:
        return torch.mm(grad_y, self.w, out=self.grad_x)

    def own_weight(self, built_from: torch.Tensor) -> None:
        """dense_single and dense_tp_col multiply by a view of W."""
        if self.w.untyped_storage().data_ptr() == built_from.untyped_storage().data_ptr():
            self.w = self.w.clone()

    def load_weight(self, w_local: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Cast the new values into the compute copy, in place."""
        self.w.copy_(w_local)


class DenseSingle(DenseMethod):
    def build(self, a: BuildArgs) -> None:
        self.w, self.b = a.weight.contiguous(), a.bias
        self.weight_bytes = self._bytes(self.w, self.b)


class DenseTPRow(DenseMethod):
    """Row-parallel TP: input features split in contiguous blocks, partial sums all-reduced."""

    def _columns(self, n_in: int, rank: int) -> torch.Tensor:
        step = n_in // self.ws
        return torch.arange(rank * step, (rank + 1) * step)

    def build(self, a: BuildArgs) -> None:
        self.cols = self._columns(a.weight.shape[1], self.rank).to(a.weight.device)
        self.w = self.shard(a.weight)
        self.b = a.bias
        self.weight_bytes = self._bytes(self.w, self.b if self.rank == 0 else None)

    def local_input(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.cols].contiguous()

    def shard(self, w: torch.Tensor) -> torch.Tensor:
        return w[:, self.cols].contiguous()

    def prepare_backward(self, a: BuildArgs) -> None:
        """grad_Y W_shard is this rank's columns of grad_X; the all-gather lays them out."""
        super().prepare_backward(a)
        self.grad_local = self._buffer(a, len(self.cols))
        self.grad_staging = torch.empty(
            self.ws, *self.grad_local.shape, dtype=self.grad_local.dtype, device=self.w.device
        )

    def backward_buffers(self) -> list[torch.Tensor]:
        return [self.grad_x, self.grad_local]

    def compute_backward(self, grad_y: torch.Tensor) -> torch.Tensor:
        return torch.mm(grad_y, self.w, out=self.grad_local)

    def collect_backward(self, partial: torch.Tensor) -> torch.Tensor:
        return all_gather_columns(partial, self.grad_x, self.grad_staging, self.group)


class DenseTPInterleaved(DenseTPRow):
    """Row-parallel TP whose shard is the columns a periodic 2:4 mask gives each rank.

    This is what Block-Shock with a periodic mask reduces to, so it is that cell's fair twin.
    """

    def build(self, a: BuildArgs) -> None:
        if a.mask_name is None:
            raise CellSpecError(f"{self.name} needs a periodic mask; it was built without one")
        self.mask_name = a.mask_name
        super().build(a)

    def _columns(self, n_in: int, rank: int) -> torch.Tensor:
        return periodic_columns(self.mask_name, n_in, rank)

    def prepare_backward(self, a: BuildArgs) -> None:
        super().prepare_backward(a)
        n_in = a.weight.shape[1]
        every = [self._columns(n_in, r) for r in range(self.ws)]
        self.gathered_columns = torch.cat(every).to(self.w.device)

    def collect_backward(self, partial: torch.Tensor) -> torch.Tensor:
        """All-gather the shards, then scatter each rank's block to its interleaved columns."""
        return all_gather_to_columns(
            partial, self.grad_x, self.grad_staging, self.gathered_columns, self.group
        )


class DenseTPCol(DenseMethod):
    """Column-parallel TP: output features split, the column blocks all-gathered."""

    def build(self, a: BuildArgs) -> None:
        n_out = a.weight.shape[0]
        step = n_out // self.ws
        self.rows = rows = slice(self.rank * step, (self.rank + 1) * step)
        self.w = self.shard(a.weight)
        self.b = None if a.bias is None else a.bias[rows].contiguous()
        self.local = torch.empty(a.batch, step, dtype=a.weight.dtype, device=a.weight.device)
        self.staging = torch.empty(
            self.ws, a.batch, step, dtype=self.local.dtype, device=self.local.device
        )
        self.weight_bytes = self._bytes(self.w, self.b)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        if self.b is not None:
            return torch.addmm(self.b, x, self.w.t(), out=self.local)
        return torch.mm(x, self.w.t(), out=self.local)

    def forward_buffers(self) -> list[torch.Tensor]:
        return [self.out, self.local]

    def collect(self, partial: torch.Tensor) -> torch.Tensor:
        return all_gather_columns(partial, self.out, self.staging, self.group)

    def shard(self, w: torch.Tensor) -> torch.Tensor:
        return w[self.rows].contiguous()

    def shard_rows(self, w_rows: torch.Tensor, rows: slice) -> tuple[torch.Tensor, slice] | None:
        lo, hi = max(rows.start, self.rows.start), min(rows.stop, self.rows.stop)
        if lo >= hi:
            return None
        held = w_rows[lo - rows.start : hi - rows.start]
        return held.clone(), slice(lo - self.rows.start, hi - self.rows.start)

    def local_grad_output(self, grad_y: torch.Tensor) -> torch.Tensor:
        """Column parallel: this rank's output features of grad_Y; partial grad_X all-reduced."""
        return grad_y[:, self.rows].contiguous()


def _masks(a: BuildArgs) -> tuple[torch.Tensor, torch.Tensor]:
    """The cell's mask pair (the registry's mask rule gives a masked method one)."""
    if a.masks is None:
        raise CellSpecError("a masked method was built without a mask pair")
    return a.masks


class MaskedSplitDense(DenseMethod):
    """Each rank multiplies W*M_g as a dense GEMM (zeros not skipped): the H3 ablation. It
    trains W*M_g in the full layout too: the zeros are the method."""

    def build(self, a: BuildArgs) -> None:
        self.mask = _masks(a)[self.rank]
        self.w = self.shard(a.weight)
        self.b = a.bias
        self.weight_bytes = self._bytes(self.w, self.b if self.rank == 0 else None)

    def shard(self, w: torch.Tensor) -> torch.Tensor:
        return (w * self.mask).contiguous()

    def shard_rows(self, w_rows: torch.Tensor, rows: slice) -> tuple[torch.Tensor, slice] | None:
        return w_rows * self.mask[rows], rows

    def grad_weight(self, x: torch.Tensor, grad_y: torch.Tensor) -> torch.Tensor:
        """(grad_Y^T X) * M_g: the dense GEMM, then the mask keeps this rank's entries."""
        return torch.mm(grad_y.t(), x).mul_(self.mask)


class BlockShock(Method):
    """Each rank multiplies its compressed 2:4 half W*M_g on the sparse path; all-reduce sums."""

    half: Half
    half_t: Half | None = None  # compressed W_g^T, for the 2:4 backward
    w_backward: torch.Tensor | None = None  # dense W_g, for the masked-dense backward

    def _half_mask(self, a: BuildArgs) -> torch.Tensor:
        return _masks(a)[self.rank]

    def build(self, a: BuildArgs) -> None:
        if a.backend is None:
            raise CellSpecError(f"{self.name} was built without a 2:4 backend")
        self.backend = registry.backend(a.backend)
        self.mask = self._half_mask(a)
        self.mask_where = f"{a.mask_name} on {self.name}"
        self._kept: torch.Tensor | None = None
        bias = a.bias if self.rank == 0 else None
        x_example = torch.randn(
            a.batch, a.weight.shape[1], dtype=a.weight.dtype, device=a.weight.device
        )
        where = f"{self.name} half {tuple(a.weight.shape)} B={a.batch}"
        self.half = self.backend.build(self.masked(a.weight), bias, x_example, where)
        self.weight_bytes = self.half.stored_bytes + self._bytes(bias)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return self.half.mm_into(x, self.out)

    def prepare_backward(self, a: BuildArgs) -> None:
        """A transposable mask: compress W_g^T (the 2:4 backward). Any other: keep W_g dense
        (masked-dense backward, named in `backward_backend`), or refuse if the cell demands 2:4."""
        super().prepare_backward(a)
        w_g = self.masked(a.weight)
        if is_transposable(self.mask):
            gy_example = self._buffer(a, a.weight.shape[0]).normal_()
            where = f"{self.name} transposed half {tuple(w_g.shape[::-1])} B={a.batch}"
            self.half_t = self.backend.build(w_g.t().contiguous(), None, gy_example, where)
            self.backward_backend = self.half_t.record.backend
            return
        if a.require_sparse_backward:  # the validator raises, naming the tile and column
            validate_transposable_pair(self.mask, ~self.mask, self.mask_where)
        self.w_backward = w_g
        self.backward_backend = registry.MASKED_DENSE_KERNEL

    def compute_backward(self, grad_y: torch.Tensor) -> torch.Tensor:
        if self.half_t is not None:
            return self.half_t.mm_into(grad_y, self.grad_x)
        assert self.w_backward is not None  # prepare_backward keeps one or the other
        return torch.mm(grad_y, self.w_backward, out=self.grad_x)

    # -- training: the rank trains W_g's kept values only (N_out x N_in/2), not W * M_g in the
    # full layout, so its master, gradient and optimizer state hold no zeros (half the bytes
    # and half the optimizer's work of a full-layout copy, as many as the dense half's).
    def masked(self, w: torch.Tensor) -> torch.Tensor:
        """W * M_g in the full layout, what the 2:4 halves are compressed from."""
        return (w * self.mask).contiguous()

    def kept(self) -> torch.Tensor:
        """The meta words of this rank's mask, made when training first needs them (a forward
        never does; a mask that keeps other than two of every four is refused here)."""
        if self._kept is None:
            self._kept = kept_positions(self.mask, self.mask_where)
        return self._kept

    def shard(self, w: torch.Tensor) -> torch.Tensor:
        return select(w, self.kept())

    def shard_rows(self, w_rows: torch.Tensor, rows: slice) -> tuple[torch.Tensor, slice] | None:
        return select(w_rows, self.kept()[rows]), rows

    def grad_weight(self, x: torch.Tensor, grad_y: torch.Tensor) -> torch.Tensor:
        """grad_Y^T X at the kept positions: a dense GEMM, then its kept values read out (no
        sparse-output kernel is used)."""
        return select(torch.mm(grad_y.t(), x), self.kept())

    def load_weight(self, w_local: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Re-compress the forward half (and W_g^T for the 2:4 backward) from new kept values
        (shaped like `shard(W)`), or, with `mask`, from a whole masked W_g whose mask replaces
        this rank's (T1m re-chooses it and trains a full master)."""
        if mask is None:
            w_local = place(w_local, self.kept())
        else:
            self.mask, self._kept = mask, None  # made again from this mask if ever needed
        self.half.recompress(w_local)
        if self.half_t is not None:
            self.half_t.recompress(w_local.t())
        elif self.w_backward is not None:
            self.w_backward.copy_(w_local)


class BlockShockHalf(BlockShock):
    """Rank 0's half of Block-Shock alone on one device: the kernel the two-GPU method runs."""

    def _half_mask(self, a: BuildArgs) -> torch.Tensor:
        return _masks(a)[0]

    @staticmethod
    def effective_weight(a: BuildArgs) -> torch.Tensor:
        return a.weight * _masks(a)[0]


class DenseHalf(DenseTPRow):
    """Rank 0's shard of 2-way row-parallel TP alone on one device (N_out x N_in/2, dense)."""

    def _columns(self, n_in: int, rank: int) -> torch.Tensor:
        return torch.arange(0, n_in // 2)

    def prepare_backward(self, a: BuildArgs) -> None:
        """One device: grad_Y W_shard is the result (its columns), nothing to gather."""
        self.grad_local = self._buffer(a, len(self.cols))

    def backward_buffers(self) -> list[torch.Tensor]:
        return [self.grad_local]

    def collect_backward(self, partial: torch.Tensor) -> torch.Tensor:
        return partial

    def backward_columns(self) -> torch.Tensor | None:
        return self.cols

    @staticmethod
    def effective_weight(a: BuildArgs) -> torch.Tensor:
        w = a.weight.clone()
        w[:, a.weight.shape[1] // 2 :] = 0
        return w
