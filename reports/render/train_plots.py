"""The training figures: where a train step's time goes, the state a rank holds, the drift of
each method's error over steps, and how much room each training check leaves. Same looks as
reports.render.plots (one colour per series, legends beside the axes)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from common.phases import adding, with_primary
from common.schema.phase_figures import TRAIN_CHECKS
from reports.analysis.tables import with_state_mib
from reports.render.plots import _figure, _label, _legend, _log_y, _save, _styles

PARTS = {  # column: label; the step's remainder (forward, loss) is drawn after these
    "backward_median_s": "backward (grad_X)",
    "grad_weight_median_s": "grad_W (a 2:4 half: the SDDMM on a GPU)",
    "optimizer_median_s": "optimizer",
    "compress_median_s": "compress (re-compress the halves)",
}
EXACT_FLOOR = 1e-6  # where a check's error was 0 (T2's frozen copies): drawn here, said so


def _train_label(r) -> str:
    return f"{_label(r)} {r.optimizer}" + (f" {r.variant}" if isinstance(r.variant, str) else "")


def _largest(t: pd.DataFrame) -> pd.DataFrame:
    big = t[t.N == t.N.max()]
    big = big.assign(series=[_train_label(r) for _, r in big.iterrows()])
    big = big.sort_values(["series", "B"])
    return big.set_index(big.series + " B=" + big.B.astype(str))  # bar labels, row by row


def _bars(df: pd.DataFrame, out, name: str, xlabel: str, title: str) -> str:
    fig, ax = _figure(height=1.8 + 0.25 * len(df))
    df.plot.barh(stacked=True, ax=ax, legend=False, width=0.7)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set(xlabel=xlabel, ylabel="", title=title)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return _save(fig, out, name)


def train_breakdown(t, out, prefix):
    """Each part of a train step, timed alone, stacked; the rest of the step (forward, loss,
    what the parts share) as its own bar so the total is the measured step."""
    t = t[t.phase.isin(with_primary("step"))]
    if t.empty or not set(PARTS) <= set(t):
        return None
    big = _largest(t)
    parts = pd.DataFrame({label: big[col] for col in PARTS for label in [PARTS[col]]})
    # T2 compresses once, before training: its compress time (a figure of its own) is no part
    # of its step, so it is not stacked into it.
    frozen = big.variant.eq("T2") if "variant" in big else False
    parts.loc[frozen, PARTS["compress_median_s"]] = 0.0
    parts["rest of the step (forward, loss)"] = (big.median_s - parts.sum(axis=1)).clip(lower=0)
    over = (parts.iloc[:, :4].sum(axis=1) > big.median_s).any()
    note = "\nparts timed alone sum above the step on some rows" if over else ""
    title = f"train step breakdown at N={big.N.max()}\n(median of each part timed alone){note}"
    return _bars(parts * 1e3, out, prefix + "train_breakdown.png", "ms per train step", title)


def grad_weight_paths(t, out, prefix):
    """grad_W of each 2:4 half as its step ran it (the SDDMM on a GPU) beside the dense GEMM
    and select it replaces, per shape: the bytes the SDDMM saves, in time."""
    t = t[t.phase.isin(with_primary("step"))]
    if t.empty or "grad_weight_dense_median_s" not in t:
        return None
    t = t[t.grad_weight_dense_median_s.notna()]
    if t.empty:
        return None
    t = t.assign(series=[_train_label(r) for _, r in t.iterrows()]).sort_values(["N", "B"])
    rows = t.set_index(t.series + " N=" + t.N.astype(str) + " B=" + t.B.astype(str))
    df = pd.DataFrame(
        {
            "grad_W as the step runs it": rows.grad_weight_median_s,
            "dense GEMM + select": rows.grad_weight_dense_median_s,
        }
    )
    fig, ax = _figure(height=1.8 + 0.3 * len(df))
    (df * 1e3).plot.barh(ax=ax, legend=False, width=0.7)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set(xlabel="ms per call", ylabel="", title="grad_W of a 2:4 half: kept values only vs dense")
    fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return _save(fig, out, prefix + "grad_weight.png")


def check_room(long: pd.DataFrame, out, prefix):
    """Every training check's measured error / bound (every step, rank and cell), one column
    of points per check, coloured by dtype / optimizer / variant; the bound is 1."""
    if long.empty:
        return None
    df = long.assign(
        group=long.dtype + " " + long.optimizer + " " + long.variant.fillna("-"),
        shown=long.over.clip(lower=EXACT_FLOOR),
    )
    groups = sorted(df.group.unique())
    fig, ax = _figure(height=4.0)
    checks = [c for c in TRAIN_CHECKS if c in set(df.check)]
    width = 0.8 / max(1, len(groups))
    for j, group in enumerate(groups):
        g = df[df.group == group]
        xs = [checks.index(c) - 0.4 + (j + 0.5) * width for c in g.check]
        ax.scatter(xs, g.shown, s=10, color=plt.get_cmap("tab20")(j % 20), label=group)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(checks)), checks, rotation=20, fontsize=8)
    _log_y(ax)
    ax.set(ylabel="measured error / bound (<= 1 passes)")
    ax.set_title(
        "training checks: room a fault has to hide in\n"
        f"(bound dashed; an exact 0 drawn at {EXACT_FLOOR:g})"
    )
    fig.legend(loc="outside right upper", fontsize=7, frameon=False, title="dtype opt variant")
    return _save(fig, out, prefix + "train_checks.png")


def train_memory(t, out, prefix):
    """What a rank holds to train: the kernel's weights, the master copy, gradients and the
    optimizer's state (AdamW: two moments), stacked."""
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
    df = big[list(labels)].rename(columns=labels)
    title = f"training memory per rank at N={big.N.max()} (largest rank)"
    return _bars(df, out, prefix + "train_memory.png", "MiB per rank", title)


def drift(records, out, prefix):
    """Relative error against the float64 dense trajectory after each block, one line per
    method, its bound dashed in the same colour (a point above its bound failed)."""
    if records.empty or "drift_errors" not in records:
        return None
    d = records[records.phase.isin(adding("drift")) & records.drift_errors.notna()]
    d = d[d.status == "passed"]
    if d.empty:
        return None
    d = d.assign(series=[_label(r) + f" N={r.N} B={r.B}" for _, r in d.iterrows()])
    styles = _styles(d)
    fig, ax = _figure()
    for _, r in d.sort_values("series").iterrows():
        steps = range(1, len(r.drift_errors) + 1)
        ax.plot(steps, r.drift_errors, ls="-", ms=4, **styles[r.series])
        ax.plot(steps, r.drift_bounds, ls="--", color=styles[r.series]["color"], alpha=0.6)
    _log_y(ax)
    ax.set(xlabel="step (blocks applied)", ylabel="relative error vs float64 dense")
    ax.set_title("drift: error after each step\nits bound dashed, same colour")
    _legend(fig, styles, [("bound (dashed, same colour)", {"color": "k", "ls": "--"})])
    return _save(fig, out, prefix + "drift.png")
