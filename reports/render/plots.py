"""The figures: one function per plot, each returning the PNG file name it wrote (or None).

Drawn for a reader who has not seen the data: a method has one colour in every plot (its
registered style, kernels/registry.py), each series of it a marker of its own (its 2:4
backend's where it shows one, else its method's, else the next free one: seven series of one
method per figure look apart), B is told by line style, legends sit outside the axes so they
hide no point, N is ticked at the measured sizes, and bounds (floors, the error bound) are drawn
where they apply.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402

from kernels import registry  # noqa: E402

LINESTYLES = ("-", "--", ":", "-.")
FILLS = ("full", "none", "left", "bottom")  # B by fill too: a single-N point has no line


def _save(fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _backend_part(backend: object) -> str | None:
    """A series label's backend: its label, or None where the label leaves it out (no backend,
    a dense kernel, a backend its report section already names)."""
    spec = registry.find_backend(backend)
    if spec is not None:
        return spec.shown_as if spec.shown else None
    if isinstance(backend, str) and backend != registry.DENSE_KERNEL:
        return backend  # one not registered here (an extension not loaded): its name
    return None


def _label(r) -> str:
    """method (mask) [backend]: the backend is part of a series' identity."""
    label = registry.label(r.method) + (f" ({r['mask']})" if isinstance(r["mask"], str) else "")
    backend = _backend_part(r.get("backend"))
    return label + (f" [{backend}]" if backend is not None else "")


def _series(t: pd.DataFrame):
    t = t.assign(series=[_label(r) for _, r in t.iterrows()])
    return t.sort_values("N")


def _styles(t: pd.DataFrame) -> dict[str, dict]:
    """One look per series (`t.series`), the same in every panel of a figure: its method's
    colour, and its backend's marker (its method's where none shows), moved on to the next
    marker that no other series of that method in the figure has taken."""
    markers = registry.MARKERS
    backend = t.backend if "backend" in t else pd.Series(None, index=t.index)
    rows = t.assign(backend=backend).drop_duplicates("series").sort_values("series")
    looks: dict[str, dict] = {}
    taken: dict[str, set[str]] = {}
    for _, r in rows.iterrows():
        style, spec = registry.style(r.method), registry.find_backend(r.backend)
        first = spec.marker if spec is not None and spec.shown else style.marker
        used = taken.setdefault(r.method, set())
        turn = [markers[(markers.index(first) + i) % len(markers)] for i in range(len(markers))]
        marker = next((m for m in turn if m not in used), first)
        used.add(marker)
        looks[r.series] = {"color": style.color, "marker": marker}
    return looks


def _b_styles(bs) -> dict[int, dict]:
    """Line style and marker fill per B (or per dtype): the second look of a series."""
    return {
        b: {"ls": LINESTYLES[i % len(LINESTYLES)], "fillstyle": FILLS[i % len(FILLS)]}
        for i, b in enumerate(sorted(set(bs)))
    }


PANEL_IN = 5  # inches of one panel's width; a figure adds 3 for its legend


def _figure(ncols: int = 1, height: float = 4.0):
    size = (PANEL_IN * ncols + 3, height)
    fig, axes = plt.subplots(1, ncols, figsize=size, layout="constrained")
    return fig, axes


LEGEND_WIDTH = 44  # characters a legend line may take: a registered label can be long
LEGEND_LINE_IN = 0.16  # inches a legend line takes at its font size


def _legend(fig, styles: dict, extra: Sequence[tuple[str, dict]] = ()) -> None:
    """A legend beside the axes (never over them): one entry per series, then `extra` entries
    (line styles of B, the floor, a bound) as (label, Line2D keywords); long labels wrap, so
    the legend stays narrow beside one panel too, and the figure grows to the legend's height."""
    wrap = textwrap.TextWrapper(LEGEND_WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    handles = [Line2D([], [], ls="-", label=wrap.fill(n), **s) for n, s in styles.items()]
    handles += [Line2D([], [], label=lab, **kw) for lab, kw in extra]
    lines = sum(str(h.get_label()).count("\n") + 1 for h in handles)
    fig.set_figheight(max(fig.get_figheight(), 0.6 + LEGEND_LINE_IN * lines))
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)


def _n_axis(ax, ns) -> None:
    """Log N axis ticked at the measured sizes only (log minor labels overlap)."""
    ns = sorted(set(int(n) for n in ns))
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("N")


def _b_legend(bstyles: dict, name: str = "B=") -> list[tuple[str, dict]]:
    return [(f"{name}{b}", {"color": "k", "marker": "o", **st}) for b, st in bstyles.items()]


def _log_y(ax) -> None:
    """Log y with plain numbers (0.6, not 6x10^-1); between decades, every tick is labelled
    over less than one decade, only 2 and 5 up to three, none beyond (labels would collide)."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    decades = math.log10(hi / lo)
    keep = range(1, 10) if decades < 1 else (2, 5) if decades < 3 else ()

    def minor(v, _):
        return f"{v:g}" if round(v / 10 ** math.floor(math.log10(v))) in keep else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def time_vs_n(t, out, prefix, title):
    t = _series(t)
    bs = sorted(t.B.unique())
    styles = _styles(t)
    fig, axes = _figure(len(bs))
    axes = axes if len(bs) > 1 else [axes]
    for ax, b in zip(axes, bs, strict=True):
        tb = t[t.B == b]
        for s, g in tb.groupby("series"):
            ax.plot(g.N, g.median_s * 1e3, ls="-", **styles[s])
            # a floor is drawn with a flat tick too, so a single-N series still shows it
            ax.plot(
                g.N,
                g.floor_s * 1e3,
                ls="--",
                marker="_",
                ms=12,
                alpha=0.6,
                color=styles[s]["color"],
            )
        _log_y(ax)
        _n_axis(ax, tb.N)
        ax.set(title=f"B={b}", ylabel="forward ms")
    # over the panels, from the left edge, wrapped to their width (9 characters an inch), so it
    # never reaches the legend beside them
    width = 9 * PANEL_IN * len(bs)
    lines = textwrap.wrap(f"forward time vs N: {title}", width)
    fig.suptitle("\n".join(lines), x=0.01, ha="left")
    _legend(fig, styles, [("floor (dashed, same colour)", {"color": "k", "ls": "--"})])
    return _save(fig, out, prefix + "time_vs_n.png")


def speedup(t, out, prefix, baseline):
    t = _series(t)
    if baseline not in set(t.method):
        return None
    others = t[t.method != baseline]
    styles, bstyles = _styles(others), _b_styles(t.B)
    fig, ax = _figure()
    for b, gb in t.groupby("B"):
        base = gb[gb.method == baseline].groupby("N").median_s.median()  # several runs: median
        for s, g in gb[gb.method != baseline].groupby("series"):
            g = g[g.N.isin(base.index)]
            ax.plot(g.N, base.loc[g.N].values / g.median_s.values, **bstyles[b], **styles[s])
    ax.axhline(1, color="k", lw=0.8)
    _log_y(ax)
    _n_axis(ax, t.N)
    ax.set(ylabel=f"speedup vs {baseline} (>1: faster)", title=f"speedup vs {baseline}")
    _legend(fig, styles, _b_legend(bstyles))
    return _save(fig, out, prefix + f"speedup_vs_{baseline}.png")


def breakdown(t, out, prefix):
    t = _series(t)
    big = t[t.N == t.N.max()].sort_values(["series", "B"])
    if big.empty:
        return None
    cols = {
        "compute": big.compute_median_s.fillna(big.median_s),
        "collective": big.collective_median_s.fillna(0),
        "host (eager - graph)": big.host_overhead_s.fillna(0).clip(lower=0),
    }
    df = pd.DataFrame(cols).set_index(big.series + " B=" + big.B.astype(str)) * 1e3
    fig, ax = _figure(height=1.5 + 0.22 * len(df))  # one readable row per bar
    df.plot.barh(stacked=True, ax=ax, legend=False)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set(
        xlabel="ms per forward",
        ylabel="",
        title=f"forward breakdown at N={big.N.max()}\n(train-step parts: the train breakdown)",
    )
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return _save(fig, out, prefix + "breakdown.png")


def _lines(t, y, name, out, ylabel, title, loglog=False, ref=None, needs=None):
    """One line per (series, B) of y(group) against N: the shape of the per-cell plots. With
    `needs`, only rows where that column is measured, and no plot (None) where none is."""
    if needs is not None:
        if needs not in t or t[needs].isna().all():
            return None
        t = t[t[needs].notna()]
    t = _series(t)
    styles, bstyles = _styles(t), _b_styles(t.B)
    fig, ax = _figure()
    for (s, b), g in t.groupby(["series", "B"]):
        ax.plot(g.N, y(g), **bstyles[b], **styles[s])
    if ref is not None:
        ax.axhline(ref, color="k", lw=0.8)
    if loglog:
        _log_y(ax)
    _n_axis(ax, t.N)
    ax.set(ylabel=ylabel, title=title)
    _legend(fig, styles, _b_legend(bstyles))
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
    styles = _styles(t)
    fig, ax = _figure()
    for s, g in t.groupby("series"):
        g = g.groupby("N")[["weight", "peak"]].max()
        ax.plot(g.index, g.weight / 2**20, ls="-", **styles[s])
        if g.peak.notna().any():
            ax.plot(g.index, g.peak / 2**20, ls="--", **styles[s])
    _log_y(ax)
    _n_axis(ax, t.N)
    ax.set(
        ylabel="MiB per rank",
        title="memory per rank\nweights (solid), peak of one forward (dashed)",
    )
    _legend(fig, styles)
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
    """Worst relative error per series, dtype and N, beside the bound each dtype's cells were
    held to (a point above its dtype's black line failed)."""
    if t.empty or "rel_fro_error" not in t:
        return None
    t = _series(t[t.rel_fro_error.notna()])
    if t.empty:
        return None
    styles, dstyles = _styles(t), _b_styles(t.dtype)
    bounded = "rel_fro_bound" in t and t.rel_fro_bound.notna().any()
    fig, ax = _figure()
    for (s, d), g in t.groupby(["series", "dtype"]):
        g = g.groupby("N").rel_fro_error.max()
        ax.plot(g.index, g.values, **dstyles[d], **styles[s])
    for d, g in t[t.rel_fro_bound.notna()].groupby("dtype") if bounded else []:
        bound = g.groupby("N").rel_fro_bound.max()
        ax.plot(bound.index, bound.values, color="k", lw=2, ls=dstyles[d]["ls"], marker="_", ms=16)
    _log_y(ax)
    _n_axis(ax, t.N)
    title = "phase0 error" + (" and its bound (black, per dtype)" if bounded else "")
    ax.set(ylabel="relative Frobenius error vs float64", title=title)
    _legend(fig, styles, _b_legend(dstyles, ""))
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
