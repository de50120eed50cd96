"""What a phase adds to a rank's result beyond the forward check (common/phases.py says which
phase fills which field): the backward's check, the train step's check and state, drift."""

from __future__ import annotations

from dataclasses import dataclass

from common.schema.checks import ErrorFigures


@dataclass(kw_only=True)
class TrainFigures:
    """After `steps` optimizer steps: this rank's weights and every loss against the float64
    reference trained by the same rule, each over its bound."""

    steps: int
    nonfinite: int  # NaN/inf weights or losses
    weight_rel_fro: float
    weight_rel_fro_bound: float
    weight_max_abs_over_bound: float
    losses: list[float]
    reference_losses: list[float]
    loss_error_over_bound: float


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
    master_bytes: int | None = None  # phase3: training state this rank holds
    optimizer_bytes: int | None = None
    grad_bytes: int | None = None
    drift: DriftFigures | None = None  # drift
