"""How much room each training check leaves a fault: its measured error over its derived bound.

phase3 records every check of every step on every rank (measure/checks/train_steps.py): grad_X
against its own operands and against the float64 trajectory, the loss, the forward and backward
copies, the master. A value near 1 is a tight bound (a fault of about its own size shows); a
value of 1e-3 means a fault a thousand times the measured error still passes that check. The
report shows the distribution per check, dtype, optimizer and variant, beside the exact training
probe (no room at all: equality), so a reader sees which checks carry the weight.
"""

from __future__ import annotations

import pandas as pd

from common.schema.phase_figures import TRAIN_CHECKS

AXES = ["dtype", "optimizer", "variant"]
COLUMNS = ["name", "method", "mask", "backend", "N", "B", "world_size", "status", *AXES]


def long_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per check, step and rank of every phase3 record that holds its checks."""
    if records.empty or "train_checks" not in records:
        return pd.DataFrame()
    rows = []
    for _, r in records[records.train_checks.notna()].iterrows():
        cell = {c: r.get(c) for c in COLUMNS}
        for check, step, rank, over in r.train_checks:
            rows.append({**cell, "check": check, "step": step, "rank": rank, "over": over})
    return pd.DataFrame(rows)


def table(long: pd.DataFrame) -> pd.DataFrame:
    """Per check, dtype, optimizer and variant: how many cells and values, and the median and
    largest measured error / bound (T2's frozen copies: 0, held to equality)."""
    if long.empty:
        return pd.DataFrame()
    df = long.assign(variant=long.variant.fillna("-"))
    out = (
        df.groupby(["check", *AXES])
        .agg(
            cells=("name", "nunique"),
            values=("over", "size"),
            median_over=("over", "median"),
            max_over=("over", "max"),
        )
        .reset_index()
    )
    rank = out.check.map({c: i for i, c in enumerate(TRAIN_CHECKS)})
    return out.assign(_order=rank).sort_values(["_order", *AXES]).drop(columns="_order")


def probes(records: pd.DataFrame) -> pd.DataFrame:
    """The exact training probe per dtype, optimizer and variant: cells, elements compared and
    elements off (0 in every passed cell), and the rule it was held to."""
    if records.empty or "probe_elements" not in records:
        return pd.DataFrame()
    p = records[records.probe_elements.notna()]
    if p.empty:
        return pd.DataFrame()
    p = p.assign(variant=p.variant.fillna("-"))
    return (
        p.groupby([*AXES, "probe_rule"])
        .agg(
            cells=("name", "size"),
            elements=("probe_elements", "sum"),
            off=("probe_mismatches", "sum"),
        )
        .reset_index()
    )
