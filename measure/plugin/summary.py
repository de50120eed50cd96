"""The end-of-run table: per (N, B), each method's median and its ratios, with marks; and
every cell that failed its check or whose rank failed, with no figure (none was published)."""

from __future__ import annotations

import io
from collections import defaultdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.schema.phase_figures import TRAIN_CHECKS, TrainFigures, worst_checks
from kernels import registry
from measure.ranks.failures import cause_line
from measure.records.figures import marks
from measure.records.results import CellResult


class Summary:
    def __init__(self):
        self.timed: list[CellResult] = []
        self.failed: list[CellResult] = []
        self.trained: list[CellResult] = []  # cells whose ranks ran the training checks

    def add(self, result: CellResult) -> None:
        if not result.passed:
            self.failed.append(result)
        elif result.figures is not None:
            self.timed.append(result)
        if _train_figures(result):
            self.trained.append(result)

    def tables(self) -> list[Table]:
        groups = defaultdict(list)
        for r in self.timed:
            c = r.cell
            groups[(c.phase, c.N, c.N_out, c.B, c.dtype, c.workload, c.bias)].append(r)
        out = []
        for (phase, n, n_out, b, dt, wl, bias), rows in sorted(groups.items()):
            base = {r.cell.method: _median(r) for r in rows if r.cell.mask is None}
            shape = f"N={n}" + (f"x{n_out}" if n_out != n else "")
            emulated = any(r.emulated for r in rows)
            t = Table(
                title=f"{phase} ({rows[0].ranks[0].primary}) {shape} B={b} {dt} {wl}"
                + (" bias" if bias else "")
                + (" [EMULATED: host clock, CPU]" if emulated else "")
            )
            baselines = registry.baselines()
            cols = ["method", "mask", "ws", "median", *(f"/{m}" for m in baselines)]
            for col in (*cols, "% floor", "J/token", "marks"):
                t.add_column(col, justify="left" if col in ("method", "mask", "marks") else "right")
            for r in sorted(rows, key=lambda r: r.cell.id):
                info = r.figures
                assert info is not None  # only cells with figures are in self.timed (add)
                pct, j_per_token = info.floor.pct_of_floor, info.energy.j_per_token
                extra = [v for v in (r.cell.backend, r.cell.optimizer, r.cell.variant) if v]
                t.add_row(
                    " ".join([r.cell.method, *extra]),
                    r.cell.mask or "-",
                    str(r.cell.world_size),
                    _fmt_time(_median(r)),
                    *(_ratio(_median(r), base.get(m)) for m in baselines),
                    "-" if pct is None else f"{pct:.0f}%",
                    "-" if j_per_token is None else f"{j_per_token:.3g}",
                    marks(info),
                )
            out.append(t)
        if self.trained:
            out.append(self.training_checks())
        if self.failed:
            t = Table(title="FAILED cells (no figure published)")
            for col in ("cell", "status", "kind", "rank", "why"):
                t.add_column(col)
            for r in self.failed:
                t.add_row(
                    escape(r.cell.name),  # "phase1[...]" is not rich markup
                    r.status.upper(),
                    r.failure_kind or "-",
                    "-" if r.failed_rank is None else str(r.failed_rank),
                    escape(cause_line(r.failure or "")[:120]),
                )
            out.append(t)
        return out

    def training_checks(self) -> Table:
        """Each training check's measured error / bound, the largest over steps and ranks (a
        value <= 1 passed; how far below 1 is the room a fault has to hide in), and the exact
        training probe's mismatches."""
        t = Table(
            title="phase3 training checks: measured error / bound (largest over steps and "
            "ranks; <= 1 passes), exact training probe"
        )
        t.add_column("cell", overflow="fold")
        for col in TRAIN_CHECKS:
            t.add_column(col, justify="right")
        t.add_column("exact probe")
        for r in sorted(self.trained, key=lambda r: r.cell.id):
            figs = _train_figures(r)
            worst = worst_checks(figs)
            probes = [f.probe for f in figs if f.probe is not None]
            probe = "-"
            if probes:
                off = sum(p.mismatches for p in probes)
                probe = f"{off} of {sum(p.elements for p in probes)} off ({probes[0].rule})"
            t.add_row(
                escape(r.cell.id),
                *("-" if c not in worst else f"{worst[c]:.3g}" for c in TRAIN_CHECKS),
                probe,
            )
        return t

    def print(self, terminalreporter) -> None:
        if not self.timed and not self.failed:
            return
        buf = io.StringIO()
        console = Console(file=buf, width=160, force_terminal=False)
        for t in self.tables():
            console.print(t)
        if self.timed:
            console.print(
                "marks: T throttled while timed, N noisy (stopped at the time cap), n stopped at "
                "the time cap before min_samples, S ranks shared one GPU (not representative)"
            )
        if any(r.emulated for r in self.timed):
            console.print(EMULATED_NOTE)
        terminalreporter.write_sep("=", "Block-Shock bench summary")
        terminalreporter.write(buf.getvalue())


EMULATED_NOTE = (
    "EMULATED cells: host-clock times of masked dense math on this CPU. They show the harness "
    "works; they are not for gating (--benchmark-compare-fail) or comparison with GPU runs: "
    "microsecond cells move by large factors between runs on a shared CPU, and their % floor "
    "(against CPU ceilings measured on buffers larger than the caches) can exceed 100%."
)


def _train_figures(r: CellResult) -> list[TrainFigures]:
    """Every rank's training figures, where the cell's ranks ran the training checks."""
    pf = [rk.phase_figures for rk in r.ranks]
    return [p.train for p in pf if p is not None and p.train is not None and p.train.checks]


def _median(r: CellResult) -> float:
    published = r.ranks[0].forward
    assert published is not None  # a timed cell publishes its primary timing
    return published.median


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.4f} ms" if s < 1 else f"{s:.3f} s"


def _ratio(a, b) -> str:
    return "-" if not b else f"{a / b:.3f}"
