"""The training figures: where a train step's time goes, the state a rank holds, and the drift
of each method's error over steps. Same looks as reports.render.plots (one colour per series,
legends beside the axes)."""

from __future__ import annotations

import pandas as pd

from common.phases import adding, with_primary
from reports.analysis.tables import with_state_mib
from reports.render.plots import _figure, _label, _legend, _log_y, _save, _styles

PARTS = {  # column: label; the step's remainder (forward, loss) is drawn after these
    "backward_median_s": "backward (grad_X)",
    "grad_weight_median_s": "grad_W",
    "optimizer_median_s": "optimizer",
    "compress_median_s": "compress (re-compress the halves)",
}


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
