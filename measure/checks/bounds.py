"""Correctness against float64: error figures, the bounds they must meet, and the assertion.

The bounds come from the dtype and K, not from what a kernel happened to produce:
- unit roundoff u of the storage dtype (bf16 2^-8, fp16 2^-11, fp32 2^-24) and of the fp32
  accumulator; c roundings in the storage dtype touch each output: 1 for a single GEMM or a
  gather, 2R-1 for an all-reduce of R partials (R partials rounded, R-1 sums rounded).
- relative Frobenius error <= sqrt(c)*u + 2*sqrt(K)*u_acc: independent roundings add in
  quadrature (each has rms below u), accumulation error grows like sqrt(K) (Higham & Mary's
  probabilistic bound), with a factor 2 of margin on that term only.
- every element: |out - ref| <= (c*u + K*u_acc) * (|X| |W|^T + |b|): the classical worst case.
A method that drops one 2:4 group in every row at N=256 misses the Frobenius bound by 10x.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from common.dtypes import UNIT_ROUNDOFF
from common.errors import CorrectnessError
from common.schema.checks import ErrorFigures

ACCUMULATOR_ROUNDOFF = 2.0**-24
REFERENCE_CHUNK_BYTES = 1 << 30


def roundings(collective: str | None, world_size: int) -> int:
    return 2 * world_size - 1 if collective == "all_reduce" and world_size > 1 else 1


def bounds(dtype: torch.dtype, k: int, collective: str | None, world_size: int) -> dict[str, Any]:
    """rel_fro_bound, elementwise_factor and roundings (c) for K and the collective."""
    u, ua = UNIT_ROUNDOFF[dtype], ACCUMULATOR_ROUNDOFF
    c = roundings(collective, world_size)
    return {
        "rel_fro_bound": math.sqrt(c) * u + 2 * math.sqrt(k) * ua,
        "elementwise_factor": c * u + k * ua,
        "roundings": c,
    }


def reference(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 X W^T + b and |X| |W|^T + |b|, chunked over output rows to bound memory."""
    x64 = x.double()
    rows = max(1, REFERENCE_CHUNK_BYTES // (8 * w.shape[1]))
    ref = torch.empty(x.shape[0], w.shape[0], dtype=torch.float64, device=x.device)
    absref = torch.empty_like(ref)
    for i in range(0, w.shape[0], rows):
        w64 = w[i : i + rows].double()
        torch.mm(x64, w64.t(), out=ref[:, i : i + rows])
        torch.mm(x64.abs(), w64.abs().t(), out=absref[:, i : i + rows])
    if b is not None:
        ref += b.double()
        absref += b.double().abs()
    return ref, absref


def count_nonfinite(*tensors: torch.Tensor | None) -> int:
    return sum(int((~torch.isfinite(t)).sum()) for t in tensors if t is not None)


def error_figures(
    out: torch.Tensor,
    ref: torch.Tensor,
    absref: torch.Tensor,
    bound: dict[str, Any],
    nonfinite_inputs: int = 0,
) -> ErrorFigures:
    """Figures that go into the record; NaN or inf anywhere (poison left) makes them fail."""
    o = out.double()
    finite = torch.isfinite(o)
    nonfinite = int((~finite).sum())
    diff = torch.where(finite, o - ref, torch.zeros_like(ref))
    ref_norm = float(ref.norm())
    allowed = bound["elementwise_factor"] * absref + torch.finfo(torch.float64).tiny
    return ErrorFigures(
        nonfinite=nonfinite,
        nonfinite_inputs=nonfinite_inputs,
        rel_fro=float(diff.norm()) / ref_norm if ref_norm else float("inf"),
        max_abs=float(diff.abs().max()),
        mean_abs=float(diff.abs().mean()),
        max_rel=float((diff.abs() / ref.abs().clamp_min(1e-30)).max()),
        max_abs_over_bound=float((diff.abs() / allowed).max()),
        ref_fro=ref_norm,
        rel_fro_bound=bound["rel_fro_bound"],
        elementwise_factor=bound["elementwise_factor"],
        roundings=bound["roundings"],
    )


def assert_correct(fig: ErrorFigures, cell: str, rank: int | None = None) -> None:
    """Raise CorrectnessError naming the cell, the rank and the broken rule."""
    who = f"{cell}" + (f" rank {rank}" if rank is not None else "")
    if fig.nonfinite_inputs:
        raise CorrectnessError(
            f"{who}: the inputs (X, W or b) hold {fig.nonfinite_inputs} NaN/inf values: the "
            "workload, not the method, is broken"
        )
    if fig.nonfinite:
        raise CorrectnessError(
            f"{who}: {fig.nonfinite} output elements are NaN/inf (unwritten or overflowed)"
        )
    if not fig.rel_fro <= fig.rel_fro_bound:
        raise CorrectnessError(
            f"{who}: relative Frobenius error {fig.rel_fro:.3e} exceeds the bound "
            f"{fig.rel_fro_bound:.3e} (sqrt(c)*u + 2*sqrt(K)*u_acc, c={fig.roundings})"
        )
    if not fig.max_abs_over_bound <= 1.0:
        raise CorrectnessError(
            f"{who}: an element's error is {fig.max_abs_over_bound:.2f}x its worst-case bound "
            f"(c*u + K*u_acc) * (|X||W|^T + |b|); max abs error {fig.max_abs:.3e}"
        )
