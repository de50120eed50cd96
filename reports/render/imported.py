"""The report's sections of imported records: the original Block-Shock study's phase-1 cells, one
section per GPU they ran on, labelled as imported and with their timing method stated (it is not
this harness's: reports/imports/original_study.py), never merged into the harness's tables,
verdicts or model.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from kernels import registry
from reports.read.load import Imported
from reports.render import plots
from reports.render.html import md_table

COLUMNS = {  # the imported cell's field: the column's name (the original's own figures)
    "method": "method",
    "backend": "backend",
    "mask": "mask",
    "N": "N",
    "B": "B",
    "dtype": "dtype",
    "world_size": "world_size",
    "median_s": "p50_s",
    "p95_s": "p95_s",
    "collective_median_s": "allreduce_p50_s",
    "runs": "runs",
    "spread_pct": "spread (%)",
}
HOW_TO_ADD = (
    "No original-study records among the inputs, so the table holds this harness's rows only. "
    "To put the original's beside them, give its results as an input: the committed slice "
    "(`tar xzf reports/published/data/original-study/results.tgz -C "
    "reports/published/data/original-study`, then "
    "`reports/published/data/original-study/results/official`), or `results/official` (or any "
    "of its sweep or run folders) of a checkout of github.com/MathewYoussef/Block-Shock."
)


def _slug(gpu: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", gpu.lower()).strip("_")


def section(imported: Imported, out: Path) -> tuple[list[str], list[str]]:
    """Markdown lines and PNG names: per GPU, where the records come from and how they were
    timed, their cells (the median over repeated runs, with the runs' spread) and plots."""
    cells = imported.cells
    if cells.empty:
        return [], []
    md, figs = [], []
    for gpu, g in cells.groupby("gpu", sort=True):
        ranks = " and ".join(map(str, sorted(g.world_size.unique())))
        prefix = f"imported_{_slug(str(gpu))}_"
        title = f"Imported: the original study on {gpu} (cells on {ranks} GPUs)"
        md += [f"## {title}", ""]
        md += [
            f"Records of {g.imported_from.iloc[0]}, read by reports/imports/original_study.py and "
            "shown as they are, not re-timed: "
            f"{g.timing.iloc[0].removeprefix('original study: ')}. "
            f"{int(g.runs.sum())} runs pooled into {len(g)} cells (each the median of its "
            "runs' p50s; `spread` is (max - min) / median over the runs, in %). Not part of the "
            "verdicts or the model above.",
            "",
        ]
        g = g.assign(spread_pct=100 * g.spread)
        table = g.sort_values(["N", "method"])[[c for c in COLUMNS if c in g]]
        table = table.rename(columns=COLUMNS)
        table.to_csv(out / "tables" / f"{prefix}cells.csv", index=False)
        md += [md_table(table), ""]
        what = f"the original study on {gpu}, imported: eager p50, its own timer"
        drawn = {"forward time vs N": plots.time_vs_n(g, out, prefix, what)}
        for b in registry.baselines():
            drawn[f"speedup vs {b}"] = plots.speedup(g, out, prefix, b)
        figs += [f for f in drawn.values() if f]
        md += [f"![{f}]({f})" for f in drawn.values() if f] + [""]
    if imported.skipped:
        md += [f"Original-study runs skipped ({len(imported.skipped)}):", ""]
        md += [md_table(pd.DataFrame(imported.skipped, columns=["run", "why"])), ""]
    return md, figs
