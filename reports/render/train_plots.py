"""The training figures: where a train step's time goes, the state a rank holds, the drift of
each method's error over steps, and how much room each training check leaves. Same looks as
reports.render.plots: a colour per method from the registry, at most about eight series a
panel, bounds named where they are drawn, each part of a breakdown on its own scale."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D

from common.phases import adding, with_primary
from common.schema.phase_figures import TRAIN_CHECKS
from reports.analysis.tables import with_state_mib
from reports.render import bars, facets, looks, references

PARTS = {  # column: label; the step's remainder (forward, loss) is drawn after these
    "backward_median_s": "backward (grad_X)",
    "grad_weight_median_s": "grad_W (a 2:4 half: the SDDMM on a GPU)",
    "optimizer_median_s": "optimizer",
    "compress_median_s": "compress (re-compress the halves)",
}
EXACT_FLOOR = 1e-6  # where a check's error was 0 (T2's frozen copies): drawn here, said so


def _train_label(r: pd.Series, mask: bool) -> str:
    variant = f" {r.variant}" if isinstance(r.variant, str) else ""
    return f"{looks.label(r, mask)} {r.optimizer}{variant}"


def _largest(t: pd.DataFrame) -> pd.DataFrame:
    big = looks.with_series(t[t.N == t.N.max()], name=_train_label)
    return big.sort_values(["series", "B"])


def train_breakdown(t, out, prefix):
    """The measured step, then each part of it timed alone, one panel each on its own scale;
    the rest of the step (forward, loss, what the parts share) as a part of its own."""
    t = t[t.phase.isin(with_primary("step"))]
    if t.empty or not set(PARTS) <= set(t):
        return None
    big = _largest(t)
    parts = pd.DataFrame({label: big[col] for col, label in PARTS.items()})
    # T2 compresses once, before training: its compress time (a figure of its own) is no part
    # of its step, so it is not counted in it.
    frozen = big.variant.eq("T2") if "variant" in big else False
    parts.loc[frozen, PARTS["compress_median_s"]] = 0.0
    rest = (big.median_s - parts.sum(axis=1)).clip(lower=0)
    over = (parts.sum(axis=1) > big.median_s).any()
    parts = pd.concat(
        [big.median_s.rename("train step (median)"), parts, rest.rename("rest (forward, loss)")],
        axis=1,
    )
    note = "; the parts timed alone sum above the step on some rows" if over else ""
    title = (
        f"train step breakdown at N={big.N.max()}: the step, then each part timed alone, each "
        f"on its own scale{note}"
    )
    return bars.panels(
        big, parts * 1e3, out, prefix + "train_breakdown.png", "ms per train step", title
    )


def grad_weight_paths(t, out, prefix):
    """grad_W of each 2:4 half as its step ran it (the SDDMM on a GPU) beside the dense GEMM
    and select it replaces, per shape, on one scale (the two are compared): the bytes the
    SDDMM saves, in time."""
    t = t[t.phase.isin(with_primary("step"))]
    if t.empty or "grad_weight_dense_median_s" not in t:
        return None
    t = t[t.grad_weight_dense_median_s.notna()]
    if t.empty:
        return None
    t = looks.with_series(t, name=_train_label).sort_values(["N", "B"])
    rows = t.set_index(t.series + " N=" + t.N.astype(str) + " B=" + t.B.astype(str))
    df = pd.DataFrame(
        {
            "grad_W as the step runs it": rows.grad_weight_median_s,
            "dense GEMM + select": rows.grad_weight_dense_median_s,
        }
    )
    fig, ax = plt.subplots(figsize=(8.0, 1.8 + 0.3 * len(df)), layout="constrained")
    (df * 1e3).plot.barh(ax=ax, legend=False, width=0.7)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set(xlabel="ms per call", ylabel="", title="grad_W of a 2:4 half: kept values only vs dense")
    fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return looks.save(fig, out, prefix + "grad_weight.png")


def check_room(long: pd.DataFrame, out, prefix):
    """Every training check's measured error / bound (every step, rank and cell), one column
    of points per check, one panel per dtype, coloured by optimizer / variant; the bound (1)
    drawn and named."""
    if long.empty:
        return None
    df = long.assign(
        group=long.optimizer + " " + long.variant.fillna("-"),
        shown=long.over.clip(lower=EXACT_FLOOR),
    )
    groups = sorted(df.group.unique())
    colour = {g: plt.get_cmap("tab10")(j % 10) for j, g in enumerate(groups)}
    dtypes = sorted(df.dtype.unique())
    fig, axes = facets.grid(len(dtypes), min(len(dtypes), facets.WRAP_COLUMNS))
    checks = [c for c in TRAIN_CHECKS if c in set(df.check)]
    width = 0.8 / max(1, len(groups))
    for ax, dtype in zip(axes, dtypes, strict=True):
        d = df[df.dtype == dtype]
        for j, group in enumerate(groups):
            g = d[d.group == group]
            xs = [checks.index(c) - 0.4 + (j + 0.5) * width for c in g.check]
            ax.scatter(xs, g.shown, s=10, color=colour[group], label=group)
        references.level(ax, [-0.5, len(checks) - 0.5], 1.0, "bound (error = bound)", "k")
        ax.set_xticks(range(len(checks)), checks, rotation=20, fontsize=8)
        looks.log_y(ax)
        looks.keep_room(ax, references.ROOM)
        ax.set(ylabel="measured error / bound (<= 1 passes)")
        ax.set_title(dtype, fontsize=9)
    references.label_ends(fig)
    title = f"training checks: room a fault has to hide in (an exact 0 drawn at {EXACT_FLOOR:g})"
    facets.suptitle(fig, title, [facets.Panel(ax, "", df) for ax in axes])
    handles = [Line2D([], [], ls="", marker="o", ms=4, color=c, label=g) for g, c in colour.items()]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False,
               title="optimizer variant")  # fmt: skip
    return looks.save(fig, out, prefix + "train_checks.png")


def train_memory(t, out, prefix):
    """What a rank holds to train: the kernel's weights, the master copy, gradients and the
    optimizer's state (AdamW: two moments), one panel each."""
    t = t[t.phase.isin(with_primary("step"))]
    if t.empty or "optimizer_bytes_per_rank" not in t:
        return None
    big = with_state_mib(_largest(t))
    labels = {
        "weights_mib": "weights (kernel copy)",
        "master_mib": "master weights",
        "grad_mib": "gradients",
        "optimizer_mib": "optimizer state",
    }
    parts = big[list(labels)].rename(columns=labels)
    title = (
        f"training memory per rank at N={big.N.max()} (largest rank), each part on its own scale"
    )
    return bars.panels(big, parts, out, prefix + "train_memory.png", "MiB per rank", title)


def _drift_label(r: pd.Series, mask: bool) -> str:
    return looks.label(r, mask) + f" N={r.N} B={r.B}"


def drift(records, out, prefix):
    """Relative error against the float64 dense trajectory after each block, one line per
    series, each method's bound dashed and named (a point above its bound failed)."""
    if records.empty or "drift_errors" not in records:
        return None
    d = records[records.phase.isin(adding("drift")) & records.drift_errors.notna()]
    d = d[d.status == "passed"]
    if d.empty:
        return None
    steps = [
        {**r, "step": i + 1, "error": e, "bound": b}
        for r in d.to_dict("records")
        for i, (e, b) in enumerate(zip(r["drift_errors"], r["drift_bounds"], strict=True))
    ]
    fig, panels, look = facets.panels(pd.DataFrame(steps), by=(), label=_drift_label)
    for p in panels:
        for s, g in p.rows.groupby("series"):
            g = g.sort_values("step")
            p.ax.plot(g.step, g.error, ls="-", ms=4, label=s, gid="series", **look[s])
        references.draw(p.ax, references.curves(p.rows, "step", "bound"), "bound", marker="")
        looks.log_y(p.ax)
        looks.keep_room(p.ax, references.ROOM)
        p.ax.set(xlabel="step (blocks applied)", ylabel="relative error vs float64 dense")
        p.ax.set_title(p.title or "every series", fontsize=9)
    references.label_ends(fig)
    title = "drift: error after each step; each method's bound dashed and named"
    facets.suptitle(fig, title, panels)
    looks.legend(fig, look)
    return looks.save(fig, out, prefix + "drift.png")
