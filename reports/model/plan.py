"""Which method and layout wins on a machine, by how much, with an interval, and why.

The planner's logic, apart from its command line (reports/planner.py): every candidate layout of
one linear layer on `world_size` GPUs is predicted with the time model (or composed from the
machine's measured one-GPU half plus the link model where that half was measured at this very
shape), the fastest wins, and its margin over the runner-up gets a 95% interval from a bootstrap:
each draw refits the model on the source machine's cells resampled with replacement, recalibrates
it on the target's resampled cells, and multiplies each prediction by one of its kernel's
relative residuals (the model's own error, drawn at random), so the interval covers both the
fit's uncertainty and how far the model strays from cells it was fitted on. A one-GPU layout the
records measured at this very shape is its measured median, a composed one its measured half plus
the link model: their intervals carry the link's residuals only (records keep medians, not the
samples behind them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from common.errors import ReportInputError
from kernels import registry
from kernels.registry import spec
from reports.model.compose import compose
from reports.model.compose import measured as measured_cell
from reports.model.fitting import calibrate, fit, with_fallbacks
from reports.model.machine import GpuSpec, LinkSpec
from reports.model.observations import Measured
from reports.model.time_model import Cell, Fit, Prediction, predict


@dataclass(frozen=True)
class Candidate:
    """One layout's predicted time, its terms, and what the number rests on."""

    cell: Cell
    prediction: Prediction
    total_s: float  # the prediction's, or the composed one where a measured half exists
    basis: str  # "model", a measured half it was composed from, or a warning
    draws: np.ndarray  # bootstrap totals, seconds

    @property
    def interval(self) -> tuple[float, float]:
        lo, hi = np.percentile(self.draws, [2.5, 97.5])
        return float(lo), float(hi)


@dataclass(frozen=True)
class Answer:
    """The winner on one machine and how it wins."""

    gpu: GpuSpec
    fit: Fit
    candidates: tuple[Candidate, ...]  # fastest first

    @property
    def winner(self) -> Candidate:
        return self.candidates[0]

    @property
    def runner_up(self) -> Candidate | None:
        return self.candidates[1] if len(self.candidates) > 1 else None

    @property
    def margin(self) -> tuple[float, float, float]:
        """runner-up / winner, and its 95% interval over the bootstrap draws."""
        r = self.runner_up
        if r is None:
            return 1.0, 1.0, 1.0
        ratio = r.draws / self.winner.draws
        lo, hi = np.percentile(ratio, [2.5, 97.5])
        return r.total_s / self.winner.total_s, float(lo), float(hi)

    @property
    def wins_share(self) -> float:
        """Share of bootstrap draws in which the winner is fastest of all candidates."""
        stack = np.vstack([c.draws for c in self.candidates])
        return float(np.mean(np.argmin(stack, axis=0) == 0))

    @property
    def decided_by(self) -> str:
        """The term (per-call, memory, math, link) that differs most, runner-up over winner."""
        r = self.runner_up
        if r is None:
            return self.winner.prediction.regime
        w = self.winner.prediction.terms
        d = {k: v - w[k] for k, v in r.prediction.terms.items()}
        return max(d, key=lambda k: d[k])


def link_library(measured: Measured, gpus: Mapping[str, GpuSpec]) -> dict[str, Fit]:
    """Each machine's own link fit, from the collectives it timed: links are a property of the
    link kind, so a machine with none borrows one of the same kind (labelled)."""
    out = {}
    for key in sorted(
        {c.machine for c in measured.collectives} | {o.machine for o in measured.cells}
    ):
        m = measured.on(key)
        if m.collectives or any(o.collective_s for o in m.cells):
            out[key] = fit(m, gpus[key])
    return out


def with_links(base: Fit, library: Mapping[str, Fit]) -> Fit:
    """`base` with every link the library fitted that it lacks, each labelled by its machine."""
    links, origin = dict(base.links), dict(base.origin)
    for machine, f in library.items():
        for key, params in f.links.items():
            if key not in links:
                links[key] = params
                origin[f"link {key}"] = f"fit on {machine}'s collectives"
    return replace(base, links=links, origin=origin)


REGIME_PARAM = {"memory": "bw_eff", "math": "math_eff"}


def unconstrained(fit_: Fit, p: Prediction) -> str | None:
    """A warning when the parameter of the term that bounds `p` was never constrained by a
    measured cell (a default prior): such a prediction is a guess, not a fit."""
    param = REGIME_PARAM.get(p.regime, f"per_call_s.{p.cell.mode}")
    if p.regime == "link":
        return None
    origin = fit_.origin.get(f"{p.cell.kernel}.{param}", "")
    return f"GUESS: its {param} is a default prior" if "default prior" in origin else None


def link_basis(fit_: Fit, link: LinkSpec) -> str:
    """Where the fit's parameters for this link come from, in words."""
    if link.key not in fit_.links:
        same = sorted(k for k in fit_.links if k.startswith(link.kind))
        if not same:
            return f"none: no collective timed on a {link.kind} link"
        how = fit_.origin.get(f"link {same[0]}", fit_.basis)
        return f"{same[0]}'s ({how}), same kind as {link.name}: extrapolated"
    return fit_.origin.get(f"link {link.key}") or fit_.origin.get("link.bw_eff") or fit_.basis


def target_fit(src: Fit, measured: Measured, gpu: GpuSpec, library: Mapping[str, Fit]) -> Fit:
    """The source's fit on `gpu`: its own where it is the source, calibrated with the target's
    cells where there are any, else extrapolated (labelled)."""
    if gpu.key == src.machine:
        return src
    return with_fallbacks(with_links(calibrate(src, measured.on(gpu.key), gpu), library))


def candidates(n: int, batch: int, dtype: str, world_size: int, mode: str, fit_: Fit) -> list[Cell]:
    """One layer on `world_size` GPUs, every layout the registry lists (one GPU dense; row and
    column TP at any world size; the masked split and Block-Shock, two-rank methods, at two,
    Block-Shock on each 2:4 backend the fit has parameters for)."""
    out = []
    for m in registry.layouts():  # ways to lay the layer out, in the registry's order
        if m.world_size is None:  # any world size its split divides: here the one asked
            ws = world_size if world_size >= 2 else None
        else:
            ws = m.world_size if m.world_size in (1, world_size) else None
        if ws is None:
            continue
        if not m.semi_structured:
            out.append(Cell(m.name, None, n, n, batch, dtype, ws, mode))
        elif dtype != "fp32":  # 2:4 kernels take bf16 and fp16 only
            for kernel in sorted(k for k in fit_.kernels if k.startswith("2:4 ")):
                out.append(Cell(m.name, kernel.removeprefix("2:4 "), n, n, batch, dtype, ws, mode))
    return out


def _draw_fits(
    src_measured: Measured,
    src_gpu: GpuSpec,
    measured: Measured,
    gpu: GpuSpec,
    library: Mapping[str, Fit],
    src: Fit,
    draws: int,
    rng: np.random.Generator,
) -> list[Fit]:
    """Fits on resampled cells: the source's, then calibrated on the target's resampled cells."""
    cells, tcells = src_measured.cells, measured.on(gpu.key).cells
    out = []
    for _ in range(draws):
        pick = [cells[i] for i in rng.integers(0, len(cells), len(cells))]
        f = with_fallbacks(
            with_links(fit(replace(src_measured, cells=pick), src_gpu, src), library)
        )
        if gpu.key != src_gpu.key:
            tpick = [tcells[i] for i in rng.integers(0, len(tcells), len(tcells))] if tcells else []
            f = with_fallbacks(
                with_links(calibrate(f, replace(measured, cells=tpick), gpu), library)
            )
        out.append(f)
    return out


def answer(
    gpu: GpuSpec,
    src: Fit,
    src_measured: Measured,
    src_gpu: GpuSpec,
    measured: Measured,
    library: Mapping[str, Fit],
    cells: Sequence[Cell],
    draws: int = 100,
    seed: int = 0,
) -> Answer:
    """Predict every candidate on `gpu`, with bootstrap draws, fastest first."""
    base = target_fit(src, measured, gpu, library)
    rng = np.random.default_rng(seed)
    fits = _draw_fits(src_measured, src_gpu, measured, gpu, library, src, draws, rng)
    out = []
    for cell in cells:
        try:
            p = predict(cell, gpu, base)
        except ReportInputError:
            continue  # a kernel or link the fit cannot answer: not a candidate here
        composed = compose(cell, measured.cells, gpu, base)
        direct = measured_cell(cell, measured.cells, gpu) if cell.world_size == 1 else None
        res = np.array(base.residuals.get(cell.kernel, (0.0,)))
        noise = 1 + rng.choice(res, size=draws)
        if direct is not None:  # a one-GPU layout measured at this very shape: its time
            total = direct.median_s
            basis = f"measured ({Path(direct.source.split('::')[0]).name})"
            sims = direct.median_s * np.ones(draws)
        elif composed is not None:
            total, basis = composed.total_s, composed.basis
            link_res = np.array(base.residuals.get("link", (0.0,)))
            coll = composed.collective_s * (1 + rng.choice(link_res, size=draws))
            sims = composed.half.median_s + coll
        else:
            total, basis = p.total_s, unconstrained(base, p) or "model"
            if spec(cell.method).collective == "all_gather" and not any(
                o.collective_s and spec(o.cell.method).collective == "all_gather"
                for o in measured.cells
            ):
                basis += "; all-gather never timed in a cell (the all-reduce's link fit)"
            sims = np.array([predict(cell, gpu, f).total_s for f in fits]) * noise
        out.append(Candidate(cell, p, total, basis, sims))
    if not out:
        raise ReportInputError(f"{gpu.name}: no candidate layout can be predicted ({base.basis})")
    return Answer(gpu, base, tuple(sorted(out, key=lambda c: c.total_s)))
