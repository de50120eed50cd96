"""The end-of-run table: per (N, B), each method's median and its ratios, with marks."""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass
class Row:
    cell: object
    median_s: float
    pct_of_floor: float | None
    j_per_token: float | None
    marks: str
    emulated: bool


class Summary:
    def __init__(self):
        self.rows: list[Row] = []

    def add(self, cell, median_s, pct_of_floor, j_per_token, marks, emulated):
        self.rows.append(Row(cell, median_s, pct_of_floor, j_per_token, marks, emulated))

    def tables(self) -> list[Table]:
        groups = defaultdict(list)
        for r in self.rows:
            c = r.cell
            groups[(c.N, c.N_out, c.B, c.dtype, c.workload, c.bias)].append(r)
        out = []
        for (n, n_out, b, dt, wl, bias), rows in sorted(groups.items()):
            base = {r.cell.method: r.median_s for r in rows if r.cell.mask is None}
            shape = f"N={n}" + (f"x{n_out}" if n_out != n else "")
            emulated = any(r.emulated for r in rows)
            t = Table(
                title=f"phase1 {shape} B={b} {dt} {wl}{' bias' if bias else ''}"
                + (" [EMULATED: host clock, CPU]" if emulated else "")
            )
            for col in (
                "method",
                "mask",
                "ws",
                "median",
                "/dense_single",
                "/dense_tp_row",
                "% floor",
                "J/token",
                "marks",
            ):
                t.add_column(col, justify="left" if col in ("method", "mask", "marks") else "right")
            for r in sorted(rows, key=lambda r: (r.cell.method, r.cell.mask or "")):
                t.add_row(
                    r.cell.method,
                    r.cell.mask or "-",
                    str(r.cell.world_size),
                    _fmt_time(r.median_s),
                    _ratio(r.median_s, base.get("dense_single")),
                    _ratio(r.median_s, base.get("dense_tp_row")),
                    "-" if r.pct_of_floor is None else f"{r.pct_of_floor:.0f}%",
                    "-" if r.j_per_token is None else f"{r.j_per_token:.3g}",
                    r.marks,
                )
            out.append(t)
        return out

    def print(self, terminalreporter) -> None:
        if not self.rows:
            return
        buf = io.StringIO()
        console = Console(file=buf, width=140, force_terminal=False)
        for t in self.tables():
            console.print(t)
        console.print(
            "marks: T throttled during the cell, N noisy (stopped at the time cap), "
            "S ranks shared one GPU (timings not representative)"
        )
        terminalreporter.write_sep("=", "Block-Shock bench summary")
        terminalreporter.write(buf.getvalue())


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.4f} ms" if s < 1 else f"{s:.3f} s"


def _ratio(a, b) -> str:
    return "-" if not b else f"{a / b:.3f}"
