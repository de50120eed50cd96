"""Faults planted in a real train step, for the phase3 check's tests (tests/measure/
test_train_checks.py). Each is a context manager that patches one method of a real class and
puts it back, so it works in this process (ws1 cells through the session) and inside a rank
worker (`run_planted`, a task the two-rank pool runs); and a Method subclass where the fault
lives in one copy of the weights (the exact training probe builds the class it is given)."""

from __future__ import annotations

import contextlib

import torch

from kernels.compressed24 import place
from kernels.methods import BlockShock, BlockShockHalf, DenseMethod


@contextlib.contextmanager
def stale_backward_copy():
    """Block-Shock re-compresses its forward half after each optimizer step but leaves W_g^T's
    half (the 2:4 backward's copy) as it was: one step stale, then more."""
    original = BlockShock.load_weight

    def forward_only(self, w_local, mask=None):
        if mask is None:
            w_local = place(w_local, self.kept())
        else:
            self.mask, self._kept = mask, None
        self.half.recompress(w_local)

    BlockShock.load_weight = forward_only
    try:
        yield
    finally:
        BlockShock.load_weight = original


@contextlib.contextmanager
def lagging_grad_x(cls: type = DenseMethod):
    """grad_X multiplies the weights of the step before: each refresh keeps the weights it
    replaces and the backward uses those; every copy and the master stay right."""
    original_load, original_backward = cls.load_weight, cls.compute_backward

    def keep_previous(self, w_local, mask=None):
        self.previous = self.copies()["forward"]  # the weights this step multiplied
        original_load(self, w_local, mask)

    def backward_with_previous(self, grad_y):
        if getattr(self, "previous", None) is None:
            return original_backward(self, grad_y)
        return torch.mm(grad_y, self.previous, out=self.grad_x)

    cls.load_weight, cls.compute_backward = keep_previous, backward_with_previous
    try:
        yield
    finally:
        cls.load_weight, cls.compute_backward = original_load, original_backward


PLANTS = {"stale_backward_copy": stale_backward_copy, "lagging_grad_x": lagging_grad_x}


def run_planted(ctx, plant, cell_dict, method, seed, options):
    """phase3's real task on this rank with `plant` in force (a two-rank pool runs it)."""
    from measure.phases.train import run_train_step

    with PLANTS[plant]():
        return run_train_step(ctx, cell_dict, method, seed, options)


def _next_up(v: torch.Tensor) -> torch.Tensor:
    """The next value of v's dtype above v: one unit in the last place."""
    bits = v.view(torch.int16)
    return (bits + torch.where(v > 0, 1, -1).to(torch.int16)).view(v.dtype)


class _OneWrongValue(BlockShockHalf):
    """A Block-Shock half whose re-compression writes one kept value of one copy one unit in
    the last place off (row 5, its first kept position), through the half's own recompress."""

    copy = "forward"
    swap = False

    def load_weight(self, w_local, mask=None):
        super().load_weight(w_local, mask)
        dense = place(w_local, self.kept()) if mask is None else w_local.clone()
        row = 5
        kept = dense[row].nonzero().flatten()
        if self.swap:  # the two kept values of the row's first group exchange places
            a, b = kept[0].item(), kept[1].item()
            dense[row, a], dense[row, b] = dense[row, b].clone(), dense[row, a].clone()
        else:
            dense[row, kept[0]] = _next_up(dense[row, kept[0]])
        if self.copy == "forward":
            self.half.recompress(dense)
        else:
            assert self.half_t is not None
            self.half_t.recompress(dense.t())


class WrongForwardValue(_OneWrongValue):
    copy = "forward"


class WrongBackwardValue(_OneWrongValue):
    copy = "backward"


class SwappedBackwardPair(_OneWrongValue):
    copy = "backward"
    swap = True


class StaleBackwardHalf(BlockShockHalf):
    """A Block-Shock half whose refresh re-compresses the forward half only (W_g^T's stays)."""

    def load_weight(self, w_local, mask=None):
        with stale_backward_copy():
            BlockShock.load_weight(self, w_local, mask)
