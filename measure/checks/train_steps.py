"""Every copy, every step: a phase3 run's weights, grad_X and losses against the float64 reference.

A train step leaves behind more than its master weights: the copies the next step multiplies
(a 2:4 half's compressed W_g for the forward and W_g^T, or its masked-dense stand-in, for
grad_X; a dense method's one W both ways), and it computes a grad_X that a lone layer passes
nowhere. A W_g^T that one step left stale, or a grad_X computed with the previous step's
weights, leaves the master and the loss as they should be, so a check of those alone passes
it. This module records, on every rank and after every step, the loss, grad_X and each copy read
back through its own kernel (`Method.copies`), and compares:
- grad_X with float64 grad_Y W_c of the step's own grad_Y and the backward copy it multiplied,
  under one GEMM's bound (phase2's): tight, so grad_X from any other weights fails;
- grad_X, the loss and every copy with the float64 trajectory (measure/checks/training.py),
  chunk of rows by chunk as the reference trains, under the bounds carried there: a copy
  against u |W_eff| + (1 + u) E_k M, grad_X against its propagated bound (loose: every step's
  worst case), the loss and, after the last step, the master as before.
Each comparison is one `StepCheck` in the record: its measured error over its bound, so the
room a fault has to hide in is data. A failure names the check (which copy, grad_X, the loss,
the master), the step and the rank.

Memory: the copies of every step are held until the reference has run (two dense N_out x N_in
tensors in the dtype a step: 12 GiB at N = 32768 over three steps, on the device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from common.errors import CorrectnessError
from common.schema.phase_figures import TRAIN_CHECKS, StepCheck, TrainCheck, TrainFigures
from kernels.training import TrainState
from measure.checks import bounds as checks
from measure.checks.training import (
    REFERENCE_CHUNK_ELEMENTS,
    Collectives,
    GradMask,
    MaskOfStep,
    TrainReference,
    effective_mask,
    reference_training,
)

COPIES: dict[str, TrainCheck] = {"forward": "forward_copy", "backward": "backward_copy"}
WHAT = {  # check: (what it compares, with what)
    "grad_x": ("grad_X", " (against float64 of its own grad_Y and the backward copy)"),
    "grad_x_trajectory": ("grad_X", " (against the float64 trajectory's)"),
    "loss": ("the loss", ""),
    "forward_copy": ("the forward copy (the weights the next forward multiplies)", ""),
    "backward_copy": ("the backward copy (the weights the next grad_X multiplies)", ""),
    "master": ("the master weights", ""),
}


@dataclass
class TrainedSteps:
    """What a run left after each of its steps, read on this rank: the loss, grad_X, every copy
    of the weights (`Method.copies`), and the step-local grad_X check (`step_checks`: grad_X
    against its own grad_Y and backward copy, made while they were at hand)."""

    losses: list[float] = field(default_factory=list)
    grad_x: list[torch.Tensor] = field(default_factory=list)
    copies: list[dict[str, torch.Tensor]] = field(default_factory=list)
    step_checks: list[StepCheck] = field(default_factory=list)


def train_and_record(state: TrainState, x_local: torch.Tensor, steps: int) -> TrainedSteps:
    """Run `steps` train steps, reading after each what the check compares. Call it on every
    rank of the group together (the grad_X check sums its float64 partials over the ranks)."""
    run = TrainedSteps()
    before = state.layer.copies()
    for step in range(1, steps + 1):
        run.losses.append(state.step(x_local).item())
        assert state.grad_x is not None and state.grad_y is not None  # every step sets them
        run.grad_x.append(state.grad_x.clone())
        run.step_checks.append(
            grad_x_check(state, state.grad_y, before["backward"], state.grad_x, step)
        )
        before = state.layer.copies()
        run.copies.append(before)
    return run


def grad_x_check(
    state: TrainState,
    grad_y: torch.Tensor,
    copy: torch.Tensor,
    grad_x: torch.Tensor,
    step: int,
) -> StepCheck:
    """grad_X of one step against float64 grad_Y W_c of that step's own grad_Y (this rank's
    part) and the backward copy it multiplied (read before the step), summed over the ranks
    as the backward's collective sums or gathers them; bound phi_b |grad_Y| |W_c| with
    phi_b = c u + N_out ua (phase2's). The trajectory check bounds grad_X loosely (its bound
    carries every step's worst case); this one holds it to one GEMM's rounding, so a grad_X
    computed from other weights than the step's copy (the previous step's, say) fails here."""
    layer = state.layer
    gy = grad_y.double()
    batch, n_out = gy.shape[0], state.target.shape[1]
    partial = torch.zeros(batch, copy.shape[1], dtype=torch.float64, device=gy.device)
    partial_abs = torch.zeros_like(partial)
    rows = max(1, REFERENCE_CHUNK_ELEMENTS // copy.shape[1])
    for i in range(0, copy.shape[0], rows):  # no float64 copy of the whole W_c
        w = copy[i : i + rows].double()
        partial += gy[:, i : i + rows] @ w
        partial_abs += gy[:, i : i + rows].abs() @ w.abs()
    cols = layer.local_columns()
    want, absref = partial, partial_abs
    if cols is not None:  # this rank's columns of the full grad_X
        want = torch.zeros(batch, state.n_in, dtype=torch.float64, device=gy.device)
        absref = torch.zeros_like(want)
        want[:, cols], absref[:, cols] = partial, partial_abs
    if layer.ws > 1:
        dist.all_reduce(want, group=layer.group)
        dist.all_reduce(absref, group=layer.group)
    shown = layer.backward_columns()
    if shown is not None:
        want, absref = want[:, shown], absref[:, shown]
    phi_b = checks.bounds(grad_x.dtype, n_out, layer.backward_collective, layer.ws)[
        "elementwise_factor"
    ]
    tally = Tally()
    tally.add(grad_x, want, phi_b * absref)
    return tally.figure("grad_x", step)


@dataclass
class Tally:
    """One check's comparison, accumulated chunk by chunk: squared norms of the difference, the
    reference and the bound, the largest |difference| / bound, NaN/inf counted."""

    nonfinite: int = 0
    diff_sq: float = 0.0
    ref_sq: float = 0.0
    bound_sq: float = 0.0
    over: float = 0.0

    def add(self, run: torch.Tensor, ref: torch.Tensor, bound: torch.Tensor) -> None:
        run = run.double()
        finite = torch.isfinite(run)
        self.nonfinite += int((~finite).sum())
        diff = torch.where(finite, run - ref, torch.zeros_like(ref))
        self.diff_sq += diff.pow(2).sum().item()
        self.ref_sq += ref.pow(2).sum().item()
        self.bound_sq += bound.pow(2).sum().item()
        if diff.numel():
            # a zero bound (T2's frozen copies, a mask's zeros) demands equality
            self.over = max(self.over, (diff.abs() / (bound + 1e-300)).max().item())

    def figure(self, check: TrainCheck, step: int) -> StepCheck:
        norm = math.sqrt(self.ref_sq)
        return StepCheck(
            check=check,
            step=step,
            error_over_bound=math.nan if self.nonfinite else self.over,
            rel_fro=math.sqrt(self.diff_sq) / norm if norm else math.nan,
            rel_fro_bound=math.sqrt(self.bound_sq) / norm if norm else math.nan,
            nonfinite=self.nonfinite,
        )


class StepComparison:
    """This rank's run against the reference, as the reference hands over its chunks of rows
    (measure/checks/training.ReferenceVisitor): every step's copies in the layout the method
    keeps them (`Method.local_rows`, with the mask pair each step used) and the master after
    the last step in what the rank holds (`Method.shard_rows`; all of it for T1m)."""

    def __init__(self, state: TrainState, run: TrainedSteps, pairs: list[Any]):
        self.layer = state.layer
        self.run, self.pairs = run, pairs
        self.master_now = state.master.detach()
        self.master_rows = (
            (lambda w, rows: (w, rows)) if state.full_master else state.layer.shard_rows
        )
        self.tallies: dict[tuple[TrainCheck, int], Tally] = {}

    def _tally(self, check: TrainCheck, step: int) -> Tally:
        return self.tallies.setdefault((check, step), Tally())

    def copy(self, step: int, rows: slice, w_eff: torch.Tensor, bound: torch.Tensor) -> None:
        held = self.layer.local_rows(w_eff, rows, self.pairs[step])
        if held is None:
            return
        ref, local = held
        local_bound = self.layer.local_rows(bound, rows, self.pairs[step])[0]  # type: ignore[index]
        for name, copy in self.run.copies[step - 1].items():
            self._tally(COPIES[name], step).add(copy[local], ref, local_bound)

    def master(self, rows: slice, w: torch.Tensor, bound: torch.Tensor) -> None:
        held = self.master_rows(w, rows)
        if held is None:
            return
        ref, local = held
        held_bound = self.master_rows(bound, rows)[0]  # type: ignore[index]
        self._tally("master", len(self.run.losses)).add(self.master_now[local], ref, held_bound)

    def grad_x(self, ref: TrainReference) -> None:
        """Every step's grad_X (the columns this rank's backward returns) against the
        reference's, once the reference has summed it over all rows."""
        cols = self.layer.backward_columns()
        for i, (gx, want, bound) in enumerate(
            zip(self.run.grad_x, ref.grad_x, ref.grad_x_bounds, strict=True)
        ):
            if cols is not None:
                want, bound = want[:, cols], bound[:, cols]
            self._tally("grad_x_trajectory", i + 1).add(gx, want, bound)

    def checks(self, ref: TrainReference) -> list[StepCheck]:
        """Every check of every step, in step order, each step's checks in TRAIN_CHECKS order."""
        out = [t.figure(check, step) for (check, step), t in self.tallies.items()]
        out += self.run.step_checks
        for i, (loss, want, bound) in enumerate(
            zip(self.run.losses, ref.losses, ref.loss_bounds, strict=True)
        ):
            finite = math.isfinite(loss)
            over = abs(loss - want) / bound if bound > 0 else math.inf
            out.append(
                StepCheck(
                    check="loss",
                    step=i + 1,
                    error_over_bound=over if finite else math.nan,
                    rel_fro=None,
                    rel_fro_bound=None,
                    nonfinite=0 if finite else 1,
                )
            )
        return sorted(out, key=lambda c: (c.step, TRAIN_CHECKS.index(c.check)))


def reference_for(
    state: TrainState,
    args,
    x: torch.Tensor,
    target: torch.Tensor,
    run: TrainedSteps,
    world_size: int,
    chunk_rows: int | None = None,
) -> tuple[TrainReference, StepComparison]:
    """The float64 reference of a TrainState's run (its method, variant, masks, optimizer), and
    the run's copies, grad_X, losses and master compared with it."""
    kind = type(state.layer)
    steps = len(run.losses)
    step_mask: MaskOfStep | None  # the forward's mask at step i (T1m), else None
    grad_mask: GradMask
    if state.full_master:
        history = state.m0_history
        if history is None or len(history) < steps + 1:
            raise ValueError("T1m's check needs the TrainState built with record_masks=True")
        pairs = [(m0, ~m0) for m0 in history]

        def step_mask(i, rows):
            return effective_mask(kind, args, pairs[i], rows)

        def grad_mask(rows):
            return None
    else:
        pairs = [args.masks] * (steps + 1)

        def grad_mask(rows):
            return effective_mask(kind, args, rows=rows)

        step_mask = None  # the gradient's mask at every step

    comparison = StepComparison(state, run, pairs)
    layer = state.layer
    coll = Collectives(layer.collective, layer.backward_collective, world_size)
    ref = reference_training(
        x, args.weight, target, state.cfg, steps, step_mask, grad_mask, coll, comparison,
        chunk_rows,
    )  # fmt: skip
    comparison.grad_x(ref)
    return ref, comparison


def training_figures(comparison: StepComparison, ref: TrainReference) -> TrainFigures:
    """The run's figures: every check of every step (`checks`), and the summary figures of
    the master and the losses that records before version 4 kept alone."""
    checks = comparison.checks(ref)
    losses = comparison.run.losses
    loss_over = [c.error_over_bound for c in checks if c.check == "loss"]
    tally = comparison.tallies.get(("master", len(losses)), Tally())
    ref_norm = math.sqrt(tally.ref_sq)
    return TrainFigures(
        steps=len(losses),
        nonfinite=tally.nonfinite + sum(not math.isfinite(v) for v in losses),
        weight_rel_fro=math.sqrt(tally.diff_sq) / ref_norm if ref_norm else math.nan,
        weight_rel_fro_bound=math.sqrt(tally.bound_sq) / ref_norm if ref_norm else math.nan,
        weight_max_abs_over_bound=math.nan if tally.nonfinite else tally.over,
        losses=list(losses),
        reference_losses=list(ref.losses),
        loss_error_over_bound=max(loss_over),
        checks=checks,
    )


def describe(check: StepCheck, steps: int) -> str:
    """One check's failure in words: what, after which step, how far over its bound."""
    what, against = WHAT[check.check]
    if check.check in ("grad_x", "grad_x_trajectory", "loss"):
        when = f"of step {check.step}"
    else:
        when = f"after step {check.step}" + (f" of {steps}" if check.check == "master" else "")
    if check.nonfinite:
        return f"{what} {when} holds {check.nonfinite} NaN/inf values"
    frob = (
        ""
        if check.rel_fro is None
        else f" (rel. Frobenius error {check.rel_fro:.2e}, bound {check.rel_fro_bound:.2e})"
    )
    against = against or " from the float64 reference"
    return f"{what} {when} is {check.error_over_bound:.3g}x its bound{against}{frob}"


def assert_trained(fig: TrainFigures, cell: str, rank: int | None = None) -> None:
    """Raise CorrectnessError naming the cell, the rank, the check and the step of the first
    failed check (a step's grad_X and loss before the copies it left; steps in order)."""
    who = f"{cell}" + (f" rank {rank}" if rank is not None else "")
    if fig.checks is None:
        raise ValueError(f"{who}: these training figures hold no checks (record version < 4)")
    for check in fig.checks:
        if check.nonfinite or not check.error_over_bound <= 1.0:
            extra = ""
            if check.check == "loss":
                extra = f" (losses {fig.losses} vs {fig.reference_losses})"
            raise CorrectnessError(f"{who}: {describe(check, fig.steps)}{extra}")
