"""What a check found on one rank: the float figures against float64 (with their bounds) and
the exact probe's (measure/checks/bounds.py and probe.py make them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class ErrorFigures:
    """One rank's output against float64: the figures and the bounds they are held to."""

    nonfinite: int  # output elements that are NaN/inf (poison left, or overflow)
    # NaN/inf in X, W or b themselves (a workload bug, not the method's); None: version 1
    nonfinite_inputs: int | None = None
    rel_fro: float  # NaN where the output held NaN (written as null)
    max_abs: float
    mean_abs: float | None = None  # None: not recorded in the earliest version-1 records
    max_rel: float
    max_abs_over_bound: float
    ref_fro: float
    rel_fro_bound: float  # sqrt(c)*u + 2*sqrt(K)*u_acc
    elementwise_factor: float  # c*u + K*u_acc
    roundings: int  # c: roundings in the storage dtype that touch each output


@dataclass(kw_only=True)
class Mismatch:
    """The first output element the exact probe found wrong."""

    probe: int
    row: int
    col: int
    got: float
    want: float


@dataclass(kw_only=True)
class ExactFigures:
    """What the exact probe found on one rank."""

    dtype: str
    exact_limit: int  # 2^p - 1: largest |partial sum| the probe allows
    groups: int  # 2:4 groups of K
    groups_per_row: int
    probes: int  # forwards run, each of the cell's B rows
    covered_groups: int  # groups some probe row had nonzero input in
    elements: int  # output elements compared
    mismatches: int  # elements != float64 reference (NaN counts)
    nonfinite: int
    max_abs_diff: float  # over finite elements
    first_mismatch: Mismatch | None
