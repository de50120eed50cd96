"""H1 and H3 for two GPUs, predicted from one GPU's measured halves: labelled predictions, never
mixed with the measured verdicts.

Two-GPU machines are scarce. Each rank of a two-rank method runs exactly a one-GPU cell the
harness times (its one-GPU twin, kernels/registry.py): Block-Shock's rank a 2:4 half
(`block_shock_half` on the same backend), row-parallel TP's the dense half (`dense_half`), the
masked split's a full dense GEMM (`dense_single`). So where a report holds those halves on a shape
but no two-GPU cell of the ratio, reports/model/compose.py gives each two-GPU forward as the
measured half plus the collective the link model predicts, and the ratio follows. Its 95%
interval resamples each half's samples (as the measured verdicts do) and draws the link model's
error from its own residuals; it cannot see what composition leaves out (the overlap of the two
ranks' work, a second GPU's clock), which the check against the committed two-GPU runs measures
(README, "Two GPUs from one").

The link's parameters come from the collectives the inputs timed on that GPU, else from the
committed two-GPU runs (the planner's records): that GPU's own, else a GPU's with the same kind of
link, each said in the verdict's basis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import ReportInputError
from common.phases import with_primary
from kernels import registry
from reports.analysis.figures import KEY, _verdict, cell_label
from reports.analysis.verdicts import H1, H3, Verdict
from reports.model import machine
from reports.model.compose import Composed, compose
from reports.model.fitting import fit
from reports.model.machine import GpuSpec
from reports.model.observations import Measured, from_figures, load
from reports.model.plan import link_library
from reports.model.time_model import Cell, Fit, link_params
from reports.model.validation import H100X2_RUNS, H200X2_RUNS

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_LINKS = tuple(ROOT / p for p in (*H100X2_RUNS, *H200X2_RUNS))
PREDICTED = "PREDICTED"
DRAWS = 2000


@dataclass(frozen=True)
class Link:
    """The link model a prediction adds to the halves, and where its parameters come from."""

    fit: Fit
    basis: str


@cache
def _committed() -> tuple[Measured, dict[str, Fit]]:
    """The committed two-GPU runs' cells and each machine's link fit (read once per process)."""
    gpus = machine.load_all()
    measured = load([p for p in COMMITTED_LINKS if p.exists()], gpus)
    return measured, link_library(measured, gpus)


def link_for(gpu: GpuSpec, own: Measured) -> Link | None:
    """The link model for `gpu` (module doc), None where no collective was timed on a link of
    its kind."""
    mine = own.on(gpu.key)
    if mine.collectives or any(o.collective_s for o in mine.cells):
        f = fit(mine, gpu)
        n = len(f.residuals.get("link", ()))
        return Link(f, f"{gpu.link.name} fitted on {n} collectives timed in these inputs")
    _, library = _committed()
    ranked = sorted(library.items(), key=lambda kv: kv[0] != gpu.key)  # this GPU's own first
    for key, f in ranked:
        try:
            link_params(f, gpu.link)
        except ReportInputError:
            continue
        n = len(f.residuals.get("link", ()))
        where = "this GPU's" if key == gpu.key else f"{f.machine}'s (same kind of link)"
        what = f"{gpu.link.name} fitted on {n} collectives of {where} committed two-GPU run"
        return Link(f, what)
    return None


def _observations(rows: pd.DataFrame, gpus: Mapping[str, GpuSpec]) -> Measured:
    out = Measured()
    for r in rows.to_dict("records"):
        out += from_figures(r, r, r["median_s"], str(r["name"]), gpus)
    return out


SHAPE = [*KEY, "mode"]  # what a composed forward and its halves share


@dataclass(frozen=True)
class Forward:
    """One two-GPU forward composed from its one-GPU half, and its bootstrap draws."""

    composed: Composed
    shape: dict
    draws: np.ndarray

    @property
    def row(self) -> dict:
        c = self.composed
        return {
            "method": c.cell.method,
            "backend": c.cell.backend,
            **{k: self.shape[k] for k in ("N", "N_out", "B", "dtype", "mode")},
            "predicted_s": c.total_s,
            "from (measured)": c.half.cell.label,
            "half_s": c.half.median_s,
            "collective (model)": registry.spec(c.cell.method).collective,
            "collective_s": c.collective_s,
        }


def _draws(c: Composed, samples: Sequence[float], residuals: np.ndarray, rng) -> np.ndarray:
    """Bootstrap totals of a composed forward: the half's median moved as its resampled
    samples' median moves, plus the modelled collective times one of the link fit's relative
    residuals."""
    half = np.asarray(samples, float)
    medians = np.median(rng.choice(half, (DRAWS, half.size)), axis=1) / np.median(half)
    return c.half.median_s * medians + c.collective_s * (1 + rng.choice(residuals, DRAWS))


def composed(
    t1: pd.DataFrame, gpu: GpuSpec, link: Link, rng
) -> dict[tuple[tuple, str, str | None], Forward]:
    """Every two-GPU forward composable from the one-GPU halves measured on a shape where that
    two-GPU method was not measured, by (shape, method, 2:4 backend)."""
    halves = _observations(t1[t1.world_size == 1], {gpu.key: gpu})
    samples = dict(zip(t1.name.astype(str), t1.samples, strict=True))
    residuals = np.asarray(link.fit.residuals.get("link", (0.0,)), float)
    out = {}
    for key, g in t1.groupby(SHAPE, dropna=False):
        shape = dict(zip(SHAPE, key, strict=True))
        measured = set(g.method[g.world_size > 1])
        for method, twin in registry.twins().items():
            if method in measured:
                continue  # measured on two GPUs: nothing to predict
            semi = registry.spec(method).semi_structured
            backends = sorted(g.backend[g.method == twin].dropna().unique()) if semi else [None]
            for backend in backends:
                cell = Cell(
                    method,
                    backend,
                    int(shape["N"]),
                    int(shape["N_out"]),
                    int(shape["B"]),
                    str(shape["dtype"]),
                    2,
                    str(shape["mode"]),
                )
                c = compose(cell, halves.cells, gpu, link.fit)
                if c is not None:
                    draws = _draws(c, samples[c.half.source], residuals, rng)
                    out[(key, method, backend)] = Forward(c, shape, draws)
    return out


def _named(method: str, backend: str | None) -> str:
    return f"{method}[{backend}]" if registry.spec(method).semi_structured else method


def _ratios(forwards: Mapping[tuple, Forward], question: str) -> dict[str, pd.DataFrame]:
    """Per 2:4 backend: `question`'s two-rank ratio on every shape where both of its sides
    were composed (so neither was measured)."""
    (pair,) = [p for p in registry.pairs(question) if not p.proxy]
    sides = (pair.numerator, pair.denominator)
    semi = next(m for m in sides if registry.spec(m).semi_structured)  # the side with backends
    rows: dict[str, list[dict]] = {}
    for (key, method, b), found in forwards.items():
        if method != semi:
            continue
        pick = {m: forwards.get((key, m, b if m == semi else None)) for m in sides}
        num, den = pick[pair.numerator], pick[pair.denominator]
        if num is None or den is None:
            continue
        lo, hi = np.percentile(num.draws / den.draws, [2.5, 97.5])
        what = f"{_named(pair.numerator, b)}/{_named(pair.denominator, b)}"
        rows.setdefault(str(b), []).append(
            {
                **{k: found.shape[k] for k in ("N", "N_out", "B", "dtype", "mode")},
                "numerator": pair.numerator,
                "denominator": pair.denominator,
                "backend": b,
                "ratio": num.composed.total_s / den.composed.total_s,
                "lo": float(lo),
                "hi": float(hi),
                "label": f"{cell_label(found.shape)} {what}",
            }
        )
    return {b: pd.DataFrame(r) for b, r in rows.items()}


@dataclass(frozen=True)
class Predictions:
    """The predicted verdicts, every composed forward (their basis), and why a GPU's rows could
    not be predicted for, if any."""

    verdicts: list[Verdict]
    composed: pd.DataFrame  # one row per composed two-GPU forward (its half, its collective)
    notes: list[str]


LinkSource = Callable[[GpuSpec, Measured], Link | None]


def predictions(t: pd.DataFrame, seed: int = 0, links: LinkSource = link_for) -> Predictions:
    """H1 and H3 predicted (module doc) on every GPU the forward rows name, per 2:4 backend;
    `links` gives a GPU's link model from its measured cells (the module doc's rule, or a
    test's choice of run to fit it on)."""
    none = Predictions([], pd.DataFrame(), [])
    if t.empty:
        return none
    t1 = t[t.phase.isin(with_primary("forward")) & ~t.emulated.astype(bool)]
    if t1.empty or "gpu" not in t1 or not (t1.world_size == 1).any():
        return none
    gpus = machine.load_all()
    rng = np.random.default_rng(seed)
    verdicts, table, notes = [], [], []
    for name, rows in t1.groupby("gpu"):
        gpu = machine.for_device(str(name), gpus)
        if gpu is None:
            notes.append(f"{name}: no machine description names it, so no link model")
            continue
        link = links(gpu, _observations(rows, {gpu.key: gpu}))
        if link is None:
            notes.append(f"{name}: no collective timed on a {gpu.link.kind} link to model")
            continue
        forwards = composed(rows, gpu, link, rng)
        table += [{"gpu": gpu.name, **f.row} for f in forwards.values()]
        for question, claim_below_one, text in (("H1", True, H1), ("H3", False, H3)):
            for backend, ratios in _ratios(forwards, question).items():
                num, den = ratios.numerator.iloc[0], ratios.denominator.iloc[0]
                basis = (
                    f"{_named(num, backend)} vs {_named(den, backend)} on two {gpu.name}, each "
                    f"composed from this GPU's measured one-GPU half + the link model "
                    f"({link.basis})"
                )
                verdicts.append(
                    Verdict(
                        f"{PREDICTED} {text} [backend {backend}, {gpu.name}]",
                        f"predicted {_verdict(ratios, claim_below_one)}",
                        basis,
                        ratios,
                        f"predicted_{question.lower()}_{backend}_{gpu.key}",
                    )
                )
    frame = pd.DataFrame(table)
    if not frame.empty:
        frame = frame.sort_values(["gpu", "N", "B", "method", "backend"], na_position="first")
    return Predictions(verdicts, frame, notes)
