"""The training figures: where a train step's time goes, the state a rank holds, and the drift
of each method's error over steps. Same looks as reports.render.plots: a colour per method from
the registry, at most about eight series a panel, bounds named where they are drawn, each part
of a breakdown on its own scale."""

from __future__ import annotations

import pandas as pd

from common.phases import adding, with_primary
from reports.analysis.tables import with_state_mib
from reports.render import bars, facets, looks, references

PARTS = {  # column: label; the step's remainder (forward, loss) is drawn after these
    "backward_median_s": "backward (grad_X)",
    "grad_weight_median_s": "grad_W",
    "optimizer_median_s": "optimizer",
    "compress_median_s": "compress (re-compress the halves)",
}


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
