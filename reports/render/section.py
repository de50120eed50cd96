"""One section of the report: the plots and tables of one kind of result (GPU or emulated)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kernels import registry
from reports.render import plots
from reports.render.html import md_table

PHASE1_COLUMNS = [
    "method",
    "mask",
    "backend",
    "N",
    "N_out",
    "B",
    "dtype",
    "world_size",
    "median_s",
    "floor_s",
    "pct_of_floor",
    "compute_median_s",
    "collective_median_s",
    "host_overhead_s",
    "j_per_token",
    "rel_fro_error",
    "load",
    "duty",
    "sm_clock_mhz_median",
    "sm_clock_mhz_min",
    "throttled",
    "stopped_by",
    "capped_before_min_samples",
]


def _capped(t: pd.DataFrame) -> list[str]:
    """Lines naming cells stopped by the time cap before their minimum sample count."""
    if "capped_before_min_samples" not in t:
        return []
    names = t["name"][t.capped_before_min_samples.eq(True)]
    if names.empty:
        return []
    return [
        f"Stopped by the time cap before min_samples (capped_before_min_samples): "
        f"{', '.join(sorted(names))}. Their medians rest on fewer samples than asked.",
        "",
    ]


def section(
    t: pd.DataFrame, checked: pd.DataFrame, out: Path, prefix: str, title: str, clock: str
) -> tuple[list[str], list[str]]:
    """Markdown lines and PNG names for one kind of result; `clock` names the timer
    ("device" for CUDA events, "host" for the emulated CPU path) in the table's heading."""
    md = [f"## {title}", ""]
    drawn: dict[str, str | None] = {}
    if not t.empty:
        drawn = {
            "forward time vs N": plots.time_vs_n(t, out, prefix, title),
            **{f"speedup vs {b}": plots.speedup(t, out, prefix, b) for b in registry.baselines()},
            "breakdown": plots.breakdown(t, out, prefix),
            "% of floor": plots.pct_floor(t, out, prefix),
            "memory": plots.memory(t, out, prefix),
            "J per token": plots.energy(t, out, prefix),
            "quality-adjusted speed": plots.quality_speed(t, out, prefix),
        }
        table = t[[c for c in PHASE1_COLUMNS if c in t]].sort_values(["N", "B", "method"])
        table.to_csv(out / "tables" / f"{prefix}phase1.csv", index=False)
        md += [f"### phase1 forward (median {clock} time, passed cells only)", ""]
        md += [md_table(table), "", *_capped(t)]
    drawn["phase0 error vs N"] = plots.errors(checked if not checked.empty else t, out, prefix)
    if not checked.empty:
        checked.drop(columns=["source"]).to_csv(out / "tables" / f"{prefix}phase0.csv", index=False)
    figs = [f for f in drawn.values() if f]
    missing = [k for k, f in drawn.items() if not f]
    md += [f"![{f}]({f})" for f in figs]
    if missing:
        md += ["", "Not drawn (these inputs lack the cells or figures): " + ", ".join(missing)]
    return md + [""], figs
