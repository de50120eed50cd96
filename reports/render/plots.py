"""The forward's figures: one function per plot, each returning the PNG file name it wrote (or
None where the rows lack what it draws).

Drawn to be read at a glance by someone who has not seen the data: at most about eight series a
panel (reports.render.facets: split by mask, then drawn once per B), one colour per method in
every plot and one marker per 2:4 backend (reports.render.looks), the floors and bounds labelled
where they are drawn (reports.render.references), the breakdowns one panel per part, each on its
own scale (reports.render.bars), so a part a hundred times smaller than another still shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kernels import registry
from reports.render import bars, facets, looks, references


def _over_n(
    t: pd.DataFrame,
    y: Callable[[pd.DataFrame], pd.Series],
    name: str,
    out: Path,
    ylabel: str,
    title: str,
    log: bool = True,
    reference: Callable | None = None,
    by: tuple[str, ...] = ("B", "dtype"),
) -> str:
    """One line per series of y(rows) against N, in facet panels (one per facet and value of
    `by`); `reference(ax, rows)` draws the panel's reference lines before its scales are set."""
    fig, panels, look = facets.panels(t, by)
    for p in panels:
        for s, g in p.rows.groupby("series"):
            p.ax.plot(g.N, y(g), ls="-", label=s, gid="series", **look[s])
        if reference is not None:
            reference(p.ax, p.rows)
        if log:
            looks.log_y(p.ax)
        looks.n_axis(p.ax, p.rows.N, references.ROOM if reference is not None else 0.0)
        p.ax.set(title=p.title, ylabel=ylabel)
        p.ax.title.set_fontsize(9)
    references.label_ends(fig)
    facets.suptitle(fig, title, panels)
    looks.legend(fig, look)
    return looks.save(fig, out, name)


def time_vs_n(t, out, prefix, title):
    """Forward time against N; each method's floor dashed and named, where the rows hold one."""

    def floors(ax, rows):
        references.draw(ax, references.curves(rows, "N", "floor_s"), "floor", scale=1e3)

    floored = "floor_s" in t and t.floor_s.notna().any()
    note = " (dashed: each method's floor, named at its end)" if floored else ""
    return _over_n(
        t,
        lambda g: g.median_s * 1e3,
        prefix + "time_vs_n.png",
        out,
        "forward ms",
        f"forward time vs N: {title}{note}",
        reference=floors if floored else None,
    )


def speedup(t, out, prefix, baseline):
    """Each series' forward against the baseline's on the same shape (several runs of the
    baseline: their median)."""
    if baseline not in set(t.method):
        return None
    base = t[t.method == baseline].groupby(["N", "B"]).median_s.median()
    others = t[(t.method != baseline) & t.set_index(["N", "B"]).index.isin(base.index)]
    if others.empty:
        return None

    def ratio(g):
        return base.loc[list(zip(g.N, g.B, strict=True))].values / g.median_s.values

    def one(ax, rows):
        references.level(ax, rows.N, 1.0, f"= {baseline}", registry.style(baseline).color)

    return _over_n(
        others,
        ratio,
        prefix + f"speedup_vs_{baseline}.png",
        out,
        f"speedup vs {baseline}",
        f"speedup vs {baseline} (> 1: faster than {baseline})",
        reference=one,
    )


def breakdown(t, out, prefix):
    """Where a forward's time goes at the largest N: the whole, compute alone, the collective
    alone and the host's share (eager - graph), one panel each on its own scale."""
    big = looks.with_series(t[t.N == t.N.max()]).sort_values(["series", "B"])
    if big.empty:
        return None
    parts = {
        "forward (median)": big.median_s,
        "compute alone": big.compute_median_s.fillna(big.median_s),
        "collective alone": big.collective_median_s,
        "host (eager - graph)": big.host_overhead_s.clip(lower=0),
    }
    return bars.panels(
        big,
        pd.DataFrame(parts) * 1e3,
        out,
        prefix + "breakdown.png",
        "ms per forward",
        f"forward breakdown at N={big.N.max()}, each part on its own scale "
        "(train-step parts: the train breakdown)",
    )


def pct_floor(t, out, prefix):
    def hundred(ax, rows):
        references.level(ax, rows.N, 100.0, "floor (100%)")

    return _over_n(
        t,
        lambda g: 100 * g.floor_s / g.median_s,
        prefix + "pct_of_floor.png",
        out,
        "% of floor",
        "measured against the machine's floor",
        log=False,
        reference=hundred,
    )


def memory(t, out, prefix):
    """Bytes a rank holds: its weights and the peak of one forward, per method and backend
    (the largest over masks and B: a mask does not change a rank's bytes)."""
    t = t.assign(
        weight=[max(w) / 2**20 for w in t.weight_bytes_per_rank],
        peak=[
            max(p) / 2**20 if all(v is not None for v in p) else float("nan")
            for p in t.peak_forward_bytes_per_rank
        ],
    )
    keep = ["method", "backend", "N"]
    rows = t.groupby(keep, dropna=False, as_index=False)[["weight", "peak"]].max()
    long = pd.concat(
        [
            rows.assign(what="weights per rank", mib=rows.weight),
            rows.assign(what="peak of one forward per rank", mib=rows.peak),
        ]
    )
    unmeasured = " (peak of one forward: not measured here)" if rows.peak.isna().all() else ""
    return _over_n(
        long[long.mib.notna()].assign(mask=None),
        lambda g: g.mib,
        prefix + "memory.png",
        out,
        "MiB per rank",
        f"memory per rank (the largest over masks and B){unmeasured}",
        by=("what",),
    )


def energy(t, out, prefix):
    if "j_per_token" not in t or t.j_per_token.isna().all():
        return None
    return _over_n(
        t[t.j_per_token.notna()],
        lambda g: g.j_per_token,
        prefix + "j_per_token.png",
        out,
        "J per token (idle subtracted)",
        "energy per token",
    )


def errors(t, out, prefix):
    """Worst relative error per series, dtype and N, each panel's bounds drawn and named (a
    point above the bound of its method failed)."""
    if t.empty or "rel_fro_error" not in t:
        return None
    t = t[t.rel_fro_error.notna()]
    if t.empty:
        return None
    bounded = "rel_fro_bound" in t and t.rel_fro_bound.notna().any()
    keys = [c for c in ("method", "mask", "backend", "dtype", "N") if c in t]
    worst = t.groupby(keys, dropna=False).agg(
        {"rel_fro_error": "max", **({"rel_fro_bound": "max"} if bounded else {})}
    )

    def bounds(ax, rows):
        references.draw(ax, references.curves(rows, "N", "rel_fro_bound"), "bound")

    return _over_n(
        worst.reset_index(),
        lambda g: g.rel_fro_error,
        prefix + "errors.png",
        out,
        "relative Frobenius error vs float64",
        "phase0 error (worst over workloads and shapes), each method's bound dashed and named "
        "(a point above its method's bound failed)",
        reference=bounds if bounded else None,
        by=("dtype",),
    )


def quality_speed(t, out, prefix):
    if "mean_abs_error" not in t or t.mean_abs_error.isna().all():
        return None
    return _over_n(
        t[t.mean_abs_error.notna()],
        lambda g: (1 / g.median_s) / (1 + g.mean_abs_error),
        prefix + "quality_speed.png",
        out,
        "forwards/s / (1 + mean abs error)",
        "quality-adjusted speed",
    )
