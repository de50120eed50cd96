"""Out-of-sample checks of the time model: fitted on one machine, calibrated with at most one
cell per method on another, judged on the other's remaining cells.

Which cell calibrates a method changes the answer, so every choice is tried (or a seeded sample
of them where there are too many): the result gives the errors under a rule fixed in advance
(per method the cell with the largest N, then the smallest B: the shape a user times first) and,
over all choices, each method's median and worst |error| and the share of choices that meet the
target. Cells whose bytes fit in L2 are not judged (the model's memory term is DRAM's).
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reports.model.compose import Composed, compose, half_cell
from reports.model.fitting import calibrate, with_fallbacks
from reports.model.machine import GpuSpec
from reports.model.observations import Measured, Observation
from reports.model.time_model import Fit, predict, units

TARGET_MEDIAN, TARGET_WORST = 0.10, 0.25


@dataclass(frozen=True)
class Judged:
    """One held-out cell: the model's relative error and the term that bounds it."""

    observation: Observation
    error: float  # predicted / measured - 1
    regime: str
    compute_error: float | None = None  # where the cell timed its compute and collective apart
    collective_error: float | None = None

    @property
    def label(self) -> str:
        c = self.observation.cell
        return f"{c.label} N={c.n_in} B={c.batch} {c.mode}"


@dataclass(frozen=True)
class PairResult:
    """The errors of one source -> target pair."""

    name: str
    scope: str
    calibration: tuple[Observation, ...]  # the rule's cells
    judged: tuple[Judged, ...]  # under the rule
    per_method: dict[str, tuple[float, float, int]]  # over all choices: median, worst, count
    choices: int
    choices_meeting: int

    @property
    def median(self) -> float:
        return statistics.median(abs(j.error) for j in self.judged)

    @property
    def worst(self) -> Judged:
        return max(self.judged, key=lambda j: abs(j.error))


def rule_choice(cells: Sequence[Observation]) -> tuple[Observation, ...]:
    """Per method (and 2:4 backend): its cell with the largest N, then the smallest B."""
    labels = sorted({o.cell.label for o in cells})
    return tuple(
        max(
            (o for o in cells if o.cell.label == label),
            key=lambda o: (o.cell.n_in, -o.cell.batch, o.cell.mode),
        )
        for label in labels
    )


def judge(
    src: Fit, choice: Iterable[Observation], cells: Sequence[Observation], gpu: GpuSpec
) -> list[Judged]:
    """Errors on the cells not in `choice`, with the fit calibrated on `choice`."""
    chosen = list(choice)
    fit = with_fallbacks(calibrate(src, Measured(chosen), gpu))
    out = []
    for o in cells:
        if o in chosen:
            continue
        p = predict(o.cell, gpu, fit)
        if not p.l2_resident:
            ce = p.compute_s / o.compute_s - 1 if o.compute_s and o.cell.world_size > 1 else None
            le = p.collective_s / o.collective_s - 1 if o.collective_s else None
            out.append(Judged(o, p.total_s / o.median_s - 1, p.regime, ce, le))
    return out


def _choices(cells: Sequence[Observation], limit: int, seed: int) -> list[tuple[Observation, ...]]:
    labels = sorted({o.cell.label for o in cells})
    groups = [[o for o in cells if o.cell.label == label] for label in labels]
    total = 1
    for g in groups:
        total *= len(g)
    if total <= limit:
        return list(itertools.product(*groups))
    rng = random.Random(seed)
    return [tuple(rng.choice(g) for g in groups) for _ in range(limit)]


def out_of_sample(
    name: str,
    src: Fit,
    target: Sequence[Observation],
    gpu: GpuSpec,
    scope: str,
    limit: int = 256,
    seed: int = 0,
) -> PairResult:
    """Judge the model on `target` (already restricted to the scope) as the module doc says."""
    target = [o for o in target if not units(o.cell, gpu).l2_resident]
    rule = rule_choice(target)
    pooled: dict[str, list[float]] = {}
    meeting, choices = 0, _choices(target, limit, seed)
    for choice in choices:
        judged = judge(src, choice, target, gpu)
        errs = [abs(j.error) for j in judged]
        if errs and statistics.median(errs) <= TARGET_MEDIAN and max(errs) <= TARGET_WORST:
            meeting += 1
        for j in judged:
            pooled.setdefault(j.observation.cell.label, []).append(abs(j.error))
    per_method = {k: (statistics.median(v), max(v), len(v)) for k, v in sorted(pooled.items())}
    return PairResult(
        name, scope, rule, tuple(judge(src, rule, target, gpu)), per_method, len(choices), meeting
    )


def composed_check(
    halves: Measured, twos: Sequence[Observation], gpu: GpuSpec, fit: Fit
) -> list[tuple[Composed, Observation, float]]:
    """Each measured two-rank cell beside its composition from the machine's one-GPU half."""
    out = []
    for o in twos:
        if half_cell(o.cell) is None:
            continue
        c = compose(o.cell, halves.cells, gpu, fit)
        if c is not None:
            out.append((c, o, c.total_s / o.median_s - 1))
    return out


# The committed runs each machine's model is fitted or judged on (paths from the checkout root).
DATA = "reports/published/data"
H100_RUNS = (
    f"{DATA}/h100-2026-11-25b/backends.json",
    f"{DATA}/h100-2026-11-25b/training.json",
    f"{DATA}/h100-2026-11-25c/backends.json",
)
H100X2_RUNS = (f"{DATA}/h100x2-2026-11-25c/b2_a.json", f"{DATA}/h100x2-2026-11-25c/b2_b.json")
# the H200 pair's benchmark JSON predates the `backend` axis that reports/read/load.py requires;
# its run folders carry the same figures
H200X2_RUNS = (
    f"{DATA}/h200x2-2026-11-24/records-phase1-a",
    f"{DATA}/h200x2-2026-11-24/records-phase1-b",
)
ORIGINAL_SUBSET = "tests/data/original_study/results/official"
