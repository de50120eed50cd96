"""Do two run folders agree cell for cell? The same cells, the same statuses and the same check
figures within a relative tolerance: what a change that should not alter behaviour (a refactor,
a new record version) must leave as it was.

Both folders are read through the record schema, so runs of different record versions compare.
The check figures are drawn from the cell's seed, which comes from the run's seed (run.json):
rerun with `--bs-seed <the other run's seed>` and they repeat to rounding; with another seed they
differ by the inputs' noise, so a tolerance near 1 is all that can be asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from common.schema.record import CellRecord
from reports.read.records import read_record, read_run


@dataclass
class Comparison:
    """What differs between a base run and a new one (empty lists: they agree)."""

    base_seed: int | None
    new_seed: int | None
    cells: int  # cells in both runs
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)  # "name: base -> new"
    figures: list[str] = field(default_factory=list)  # "name rank r figure: base vs new"
    worst_relative: float = 0.0  # largest relative difference of any compared figure

    @property
    def agree(self) -> bool:
        return not (self.only_base or self.only_new or self.status or self.figures)

    def lines(self) -> list[str]:
        seeds = f"seeds {self.base_seed} and {self.new_seed}"
        head = [
            f"{self.cells} cells in both runs ({seeds}); "
            f"largest relative difference of a check figure {self.worst_relative:.3g}"
        ]
        body = [f"only in the base run: {n}" for n in self.only_base]
        body += [f"only in the new run: {n}" for n in self.only_new]
        body += [f"status differs: {s}" for s in self.status]
        body += [f"figure differs: {f}" for f in self.figures]
        return head + body + ["the runs agree cell for cell" if self.agree else "the runs differ"]


def _records(folder: Path) -> dict[str, CellRecord]:
    records = [read_record(p) for p in sorted(folder.glob("cells/*/*.json"))]
    return {r.name: r for r in records}


def check_figures(record: CellRecord) -> Iterator[tuple[str, float]]:
    """(name, value) of every figure a rank's checks produced: the forward's error, the exact
    probe's mismatches, the backward's error, the trained weights and losses, the drift."""
    for r in record.ranks:
        at = f"rank {r.rank} "
        if r.errors is not None:
            yield at + "rel_fro", r.errors.rel_fro
            yield at + "max_abs", r.errors.max_abs
            yield at + "rel_fro_bound", r.errors.rel_fro_bound
            yield at + "nonfinite", float(r.errors.nonfinite)
        if r.exact is not None:
            yield at + "exact mismatches", float(r.exact.mismatches)
            yield at + "exact covered_groups", float(r.exact.covered_groups)
        pf = r.phase_figures
        if pf is not None and pf.backward_errors is not None:
            yield at + "backward rel_fro", pf.backward_errors.rel_fro
        if pf is not None and pf.train is not None:
            yield at + "train weight_rel_fro", pf.train.weight_rel_fro
            yield at + "train loss_error_over_bound", pf.train.loss_error_over_bound
            yield from ((at + f"train loss {i}", v) for i, v in enumerate(pf.train.losses))
        if pf is not None and pf.drift is not None:
            yield from ((at + f"drift error {i}", v) for i, v in enumerate(pf.drift.errors))


def _relative(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    scale = max(abs(a), abs(b))
    return math.inf if not math.isfinite(scale) or scale == 0 else abs(a - b) / scale


def compare_runs(base: Path, new: Path, rtol: float = 1e-6) -> Comparison:
    """Cell for cell: which cells only one run has, whose status differs, and which check
    figures differ by more than `rtol` relative to the larger of the two."""
    a, b = _records(Path(base)), _records(Path(new))
    out = Comparison(
        read_run(Path(base) / "run.json").seed,
        read_run(Path(new) / "run.json").seed,
        len(a.keys() & b.keys()),
        only_base=sorted(a.keys() - b.keys()),
        only_new=sorted(b.keys() - a.keys()),
    )
    for name in sorted(a.keys() & b.keys()):
        ra, rb = a[name], b[name]
        if (ra.status, ra.failure_kind) != (rb.status, rb.failure_kind):
            out.status.append(f"{name}: {ra.status} -> {rb.status}")
        fa, fb = dict(check_figures(ra)), dict(check_figures(rb))
        for key in sorted(fa.keys() | fb.keys()):
            if key not in fa or key not in fb:
                out.figures.append(f"{name} {key}: present in one run only")
                continue
            rel = _relative(fa[key], fb[key])
            out.worst_relative = max(out.worst_relative, rel)
            if rel > rtol:
                out.figures.append(f"{name} {key}: {fa[key]:.6g} vs {fb[key]:.6g}")
    return out
