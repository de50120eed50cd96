"""The report's sections beyond the forward: each 2:4 backend beside the dense baselines,
phase2 and phase3 tables, and the training figures (one kind of result: GPU or emulated)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports.analysis import tables, tightness
from reports.render import train_plots
from reports.render.html import md_table


def _table(df: pd.DataFrame, out: Path, name: str, heading: str) -> list[str]:
    if df.empty:
        return []
    df.to_csv(out / "tables" / f"{name}.csv", index=False)
    return [f"### {heading}", "", md_table(df), ""]


def section(
    t: pd.DataFrame, records: pd.DataFrame, out: Path, prefix: str, clock: str
) -> tuple[list[str], list[str]]:
    """Markdown lines and PNG names; `t` holds every phase's passed timings, `records` every
    cell record of this kind (the drift curves come from them). The training heading comes
    only with training content under it (a phase2 or phase3 table, or a training figure)."""
    backends, train = [], []
    if not t.empty:
        backends = _table(
            tables.backends(t),
            out,
            f"{prefix}backends",
            "phase1 by 2:4 backend: time, % of floor, ratio to the dense half and to dense TP "
            "(same shape; < 1: faster)",
        )
        train += _table(
            tables.phase2(t),
            out,
            f"{prefix}phase2",
            f"phase2 backward wrt input (median {clock} time of grad_X; passed cells only)",
        )
        train += _table(
            tables.phase3(t),
            out,
            f"{prefix}phase3",
            f"phase3 train step (median {clock} time of a step in its timing mode, `mode`: graph "
            "replay where the step captured; the step in the other mode beside it; each part "
            "timed alone in the step's mode, grad_W of a 2:4 half beside its dense GEMM and "
            "select; state per rank in MiB; no floor model yet)",
        )
    checks = tightness.long_table(records)
    train += _table(
        tightness.table(checks),
        out,
        f"{prefix}train_checks",
        "phase3 training checks: measured error / bound per check, dtype, optimizer and variant "
        "(every step and rank; <= 1 passes; the smaller, the more room a fault has to hide in)",
    )
    train += _table(
        tightness.probes(records),
        out,
        f"{prefix}train_probe",
        "phase3 exact training probe: copy elements compared after one step, and how many "
        "differed from float64 (the rule is equality)",
    )
    drawn = {
        "train breakdown": train_plots.train_breakdown(t, out, prefix) if not t.empty else None,
        "grad_W paths": train_plots.grad_weight_paths(t, out, prefix) if not t.empty else None,
        "training memory": train_plots.train_memory(t, out, prefix) if not t.empty else None,
        "training checks": train_plots.check_room(checks, out, prefix),
        "drift": train_plots.drift(records, out, prefix),
    }
    figs = [f for f in drawn.values() if f]
    if not train and not figs:
        return backends, []
    md = [*backends, "### Training: backward, train step and drift", "", *train]
    md += [f"![{f}]({f})" for f in figs]
    missing = [k for k, f in drawn.items() if not f]
    if missing:
        md += ["", "Not drawn (these inputs lack the cells): " + ", ".join(missing)]
    return md + [""], figs
