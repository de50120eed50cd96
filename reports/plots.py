"""The figures: one function per plot, each returning the PNG file name it wrote (or None)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _label(r) -> str:
    return r.method + (f" ({r['mask']})" if isinstance(r["mask"], str) else "")


def _series(t: pd.DataFrame):
    t = t.assign(series=[_label(r) for _, r in t.iterrows()])
    return t.sort_values("N")


def time_vs_n(t, out, prefix, title):
    t = _series(t)
    bs = sorted(t.B.unique())
    fig, axes = plt.subplots(1, len(bs), figsize=(5 * len(bs), 4), squeeze=False)
    for ax, b in zip(axes[0], bs, strict=True):
        for i, (s, g) in enumerate(t[t.B == b].groupby("series")):
            line = ax.loglog(g.N, g.median_s * 1e3, "o-", label=s)[0]
            ax.loglog(
                g.N,
                g.floor_s * 1e3,
                "--",
                color=line.get_color(),
                alpha=0.6,
                label="floor" if i == 0 else None,
            )
        ax.set(title=f"{title} B={b}", xlabel="N", ylabel="forward ms (dashed: floor)")
        ax.legend(fontsize=7)
    return _save(fig, out, prefix + "time_vs_n.png")


def speedup(t, out, prefix, baseline):
    t = _series(t)
    if baseline not in set(t.method):
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for b, gb in t.groupby("B"):
        base = gb[gb.method == baseline].groupby("N").median_s.median()  # several runs: median
        for s, g in gb[gb.method != baseline].groupby("series"):
            g = g[g.N.isin(base.index)]
            ax.semilogx(g.N, base.loc[g.N].values / g.median_s.values, "o-", label=f"{s} B={b}")
    ax.axhline(1, color="k", lw=0.8)
    ax.set(xlabel="N", ylabel=f"speedup vs {baseline}", title=f"speedup vs {baseline}")
    ax.legend(fontsize=6)
    return _save(fig, out, prefix + f"speedup_vs_{baseline}.png")


def breakdown(t, out, prefix):
    t = _series(t)
    big = t[t.N == t.N.max()]
    if big.empty:
        return None
    cols = {
        "compute": big.compute_median_s.fillna(big.median_s),
        "collective": big.collective_median_s.fillna(0),
        "host (eager - graph)": big.host_overhead_s.fillna(0).clip(lower=0),
    }
    df = pd.DataFrame(cols).set_index(big.series + " B=" + big.B.astype(str)) * 1e3
    fig, ax = plt.subplots(figsize=(8, 4))
    df.plot.barh(stacked=True, ax=ax)
    ax.set(
        xlabel="ms per forward",
        title=f"breakdown at N={big.N.max()}\n(compress: not measured, phase3 not built)",
    )
    return _save(fig, out, prefix + "breakdown.png")


def _lines(t, y, name, out, ylabel, title, loglog=False, ref=None, needs=None):
    """One line per (series, B) of y(group) against N: the shape of the per-cell plots. With
    `needs`, only rows where that column is measured, and no plot (None) where none is."""
    if needs is not None:
        if needs not in t or t[needs].isna().all():
            return None
        t = t[t[needs].notna()]
    t = _series(t)
    fig, ax = plt.subplots(figsize=(7, 4))
    plot = ax.loglog if loglog else ax.semilogx
    for (s, b), g in t.groupby(["series", "B"]):
        plot(g.N, y(g), "o-", label=f"{s} B={b}")
    if ref is not None:
        ax.axhline(ref, color="k", lw=0.8)
    ax.set(xlabel="N", ylabel=ylabel, title=title)
    ax.legend(fontsize=6)
    return _save(fig, out, name)


def pct_floor(t, out, prefix):
    return _lines(
        t,
        lambda g: 100 * g.floor_s / g.median_s,
        prefix + "pct_of_floor.png",
        out,
        "% of floor",
        "measured against the machine's floor",
        ref=100,
    )


def memory(t, out, prefix):
    t = _series(t)
    t = t.assign(
        weight=[max(w) for w in t.weight_bytes_per_rank],
        peak=[
            max(p) if all(v is not None for v in p) else float("nan")
            for p in t.peak_forward_bytes_per_rank
        ],
    )
    fig, ax = plt.subplots(figsize=(7, 4))
    for s, g in t.groupby("series"):
        g = g.groupby("N")[["weight", "peak"]].max()
        line = ax.loglog(g.index, g.weight / 2**20, "o-", label=f"{s} weights")[0]
        if g.peak.notna().any():
            ax.loglog(g.index, g.peak / 2**20, "x--", color=line.get_color(), label=f"{s} peak")
    ax.set(xlabel="N", ylabel="MiB per rank", title="weight bytes and peak memory per rank")
    ax.legend(fontsize=6)
    return _save(fig, out, prefix + "memory.png")


def energy(t, out, prefix):
    return _lines(
        t,
        lambda g: g.j_per_token,
        prefix + "j_per_token.png",
        out,
        "J per token (idle subtracted)",
        "energy per token",
        loglog=True,
        needs="j_per_token",
    )


def errors(t, out, prefix):
    if t.empty or "rel_fro_error" not in t:
        return None
    t = _series(t)
    fig, ax = plt.subplots(figsize=(7, 4))
    for s, g in t.groupby("series"):
        g = g.groupby("N").rel_fro_error.max()
        ax.loglog(g.index, g.values, "o-", label=s)
    ax.set(xlabel="N", ylabel="relative Frobenius error vs float64", title="phase0 error")
    ax.legend(fontsize=6)
    return _save(fig, out, prefix + "errors.png")


def quality_speed(t, out, prefix):
    return _lines(
        t,
        lambda g: (1 / g.median_s) / (1 + g.mean_abs_error),
        prefix + "quality_speed.png",
        out,
        "forwards/s / (1 + mean abs error)",
        "quality-adjusted speed",
        needs="mean_abs_error",
    )
