"""What a phase adds to a rank's result beyond the forward check (common/phases.py says which
phase fills which field): the backward's check, the train step's checks and state, drift."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from common.schema.checks import ErrorFigures

# What a training check compares with float64 (measure/checks/train_steps.py), in the order a
# step's checks are asserted: grad_x: the step's grad_X against float64 grad_Y W_c of its own
# grad_Y and the backward copy the step multiplied (one GEMM's bound, as phase2's);
# grad_x_trajectory: the same grad_X against the float64 reference trajectory's, with the bound
# carried from step 0; loss: the step's loss against the trajectory's; forward_copy /
# backward_copy: the weights the next forward / grad_X multiply (a 2:4 half's compressed W_g
# and W_g^T, read back through their kernels; a dense method's W both ways) against the
# trajectory's; master: the fp32 master weights after the last step.
TrainCheck = Literal[
    "grad_x", "grad_x_trajectory", "loss", "forward_copy", "backward_copy", "master"
]
TRAIN_CHECKS: tuple[TrainCheck, ...] = (
    "grad_x", "grad_x_trajectory", "loss", "forward_copy", "backward_copy", "master"
)  # fmt: skip


@dataclass(kw_only=True)
class StepCheck:
    """One training check on one rank after one step, and how much room its bound leaves.

    `error_over_bound` is the measured error over the derived bound, the largest over the
    check's elements: <= 1 passes, and how far below 1 it sits is the room a fault has to hide
    in (NaN where a value was NaN/inf). A bound of zero (T2's frozen copies) demands equality.
    """

    check: TrainCheck
    step: int  # 1..steps: the step that produced it (a copy: the step after which it was read)
    error_over_bound: float
    rel_fro: float | None  # ||run - reference|| / ||reference||; None for a scalar (the loss)
    rel_fro_bound: float | None  # ||bound|| / ||reference||
    nonfinite: int


@dataclass(kw_only=True)
class CopyMismatch:
    """The first element of a copy the exact training probe found wrong (in the copy's layout:
    kernels/methods.py's `local_rows`)."""

    copy: str  # forward or backward
    row: int
    col: int
    got: float
    want: float


@dataclass(kw_only=True)
class TrainProbeFigures:
    """The exact training probe on one rank (measure/checks/train_probe.py): one optimizer step
    on inputs chosen so every copy after it must equal the float64 reference rounded to the
    dtype, bit for bit."""

    optimizer: str  # the step taken (the cell's, or sgd where the cell's cannot be exact)
    why_optimizer: str | None  # why the probe's optimizer is not the cell's (None: it is)
    rule: str  # "exact" (every value exactly representable) or "rounding margin"
    lr: float
    grad_scale: float  # D: every element of grad_Y is +-D
    groups: int  # 2:4 groups of the input features
    covered_groups: int  # groups a probe row has nonzero input in
    elements: int  # copy elements compared (every copy, every position)
    moved: int  # of them, those the step changed: a stale copy is wrong in every one
    mismatches: int  # elements != the reference (NaN counts)
    nonfinite: int
    # rounding margin: the smallest distance of a reference value from a rounding boundary of
    # the dtype over the fp32 optimizer's error bound (> 1: the rounded copy is determined)
    margin_over_bound: float | None
    first_mismatch: CopyMismatch | None


@dataclass(kw_only=True)
class TrainFigures:
    """After `steps` optimizer steps: this rank's weights and every loss against the float64
    reference trained by the same rule, each over its bound; every check of every step
    (`checks`) and the exact training probe (`probe`), both None in records before version 4."""

    steps: int
    nonfinite: int  # NaN/inf weights or losses
    weight_rel_fro: float
    weight_rel_fro_bound: float
    weight_max_abs_over_bound: float
    losses: list[float]
    reference_losses: list[float]
    loss_error_over_bound: float
    checks: list[StepCheck] | None = None
    probe: TrainProbeFigures | None = None


def worst_checks(figs: list[TrainFigures]) -> dict[TrainCheck, float]:
    """The largest measured error / bound of each check over steps and ranks (NaN where any was
    NaN: a NaN/inf value), in TRAIN_CHECKS order: one line of the summary and the report."""
    out: dict[TrainCheck, float] = {}
    for check in TRAIN_CHECKS:
        values = [c.error_over_bound for f in figs for c in f.checks or [] if c.check == check]
        if values:
            out[check] = math.nan if any(math.isnan(v) for v in values) else max(values)
    return out


@dataclass(kw_only=True)
class DriftFigures:
    """x <- x + tanh(layer(x)) applied step by step: the relative error against the float64
    trajectory after each step (NaN where a step's output was not finite) and its bound."""

    errors: list[float]
    bounds: list[float]
    nonfinite: int
    lipschitz: float  # L = 1 + ||W_eff||_2, the per-step growth the bound allows


@dataclass(kw_only=True)
class PhaseFigures:
    """The fields a phase fills (PhaseInfo.figures); the others stay None."""

    backward_backend: str | None = None  # phase2: the path that computed grad_X
    backward_errors: ErrorFigures | None = None  # phase2: grad_X against float64
    train: TrainFigures | None = None  # phase3
    # phase3: "captured" where the timed step ran as a CUDA graph, else why it ran eagerly
    step_capture: str | None = None
    master_bytes: int | None = None  # phase3: training state this rank holds
    optimizer_bytes: int | None = None
    grad_bytes: int | None = None
    drift: DriftFigures | None = None  # drift
