"""Breakdown bars: one panel per part, each on its own scale, one bar per series.

Stacked on one axis, a collective of 0.02 ms or a backward of 1 ms beside a 140 ms step is a
sliver no one can read. One panel per part gives each part the full width: the small parts show
as well as the large, and the series still line up across panels (one shared row per series).
Each bar has its method's colour (kernels/registry.py), as its lines have in every other plot.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from kernels import registry
from reports.render import looks

PART_IN = 2.5  # inches of one part's panel
LABEL_IN = 3.4  # inches the bar labels take left of the first column
BAR_IN = 0.2  # inches a bar's row takes
MAX_COLUMNS = 4


def panels(
    rows: pd.DataFrame, parts: pd.DataFrame, out: Path, name: str, xlabel: str, title: str
) -> str | None:
    """One panel per column of `parts` (a row per row of `rows`, which holds each bar's
    `series`, `method` and `B`); parts with nothing measured are left out and named."""
    present = [c for c in parts if parts[c].fillna(0).abs().sum() > 0]
    if rows.empty or not present:
        return None
    absent = [c for c in parts if c not in present]
    labels = [f"{s} B={b}" for s, b in zip(rows.series, rows.B, strict=True)]
    colors = [registry.style(m).color for m in rows.method]
    ncols = min(MAX_COLUMNS, len(present))
    nrows = math.ceil(len(present) / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(LABEL_IN + PART_IN * ncols, nrows * (0.9 + BAR_IN * len(rows)) + 0.6),
        layout="constrained",
        squeeze=False,
    )
    flat = list(axes.flat)
    y = range(len(rows))
    for i, (ax, part) in enumerate(zip(flat, present, strict=False)):
        values = parts[part].to_numpy(dtype=float)
        ax.barh(y, values, color=colors, height=0.7)
        for j, v in enumerate(values):
            if math.isnan(v):  # not timed for this series (one rank has no collective)
                ax.text(0, j, " n/a", va="center", fontsize=6, color="0.45")
        ax.set_yticks(list(y), labels if i % ncols == 0 else [""] * len(labels))
        ax.tick_params(axis="y", labelsize=7, length=0 if i % ncols else 3.5)
        ax.set_ylim(len(rows) - 0.5, -0.5)  # the first series on top
        ax.set_title(part, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", lw=0.4, alpha=0.5)
    for ax in flat[len(present) :]:
        ax.set_visible(False)
    note = f" (not measured here: {', '.join(absent)})" if absent else ""
    width = int(8 * fig.get_figwidth())  # characters of the title's font an inch, about
    fig.suptitle("\n".join(textwrap.wrap(title + note, width)), x=0.01, ha="left", fontsize=10)
    return looks.save(fig, out, name)
