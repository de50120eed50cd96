"""H2, training reality: does re-compression every step shrink Block-Shock's advantage?

Per shape (N, N_out, B, dtype, workload, bias) and per Block-Shock cell (mask, backend,
optimizer, variant): r_train = step(Block-Shock) / step(baseline) from phase3, r_fwd = the same
ratio of forwards from phase1, and H2 = r_train / r_fwd (> 1: the advantage shrinks in training).
The interval resamples all four cells' samples (analysis.bootstrap). The baseline is dense TP for
the two-rank method and the dense half for the one-GPU proxy, as in H1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.phases import with_primary
from kernels import registry
from reports.analysis.figures import KEY, bootstrap, cell_label

GROUP = ["pair", "variant", "optimizer"]


def _shrinkage(a3, b3, a1, b1):
    return np.divide(np.divide(a3, b3), np.divide(a1, b1))


def _same(rows: pd.DataFrame, column: str, value) -> pd.DataFrame:
    """Rows whose `column` equals `value`, None matching None (a cell without that axis)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return rows[rows[column].isna()]
    return rows[rows[column] == value]


def table(t: pd.DataFrame) -> pd.DataFrame:
    """One row per phase3 Block-Shock cell that has its three partners (baseline step, both
    forwards) on the same shape."""
    if t.empty:
        return pd.DataFrame()
    rows = []
    fwd = t[t.phase.isin(with_primary("forward"))]
    step = t[t.phase.isin(with_primary("step"))]
    for key, g3 in step.groupby(KEY):
        key = dict(zip(KEY, key, strict=True))
        g1 = fwd
        for k, v in key.items():
            g1 = g1[g1[k] == v]
        for num, den in ((p.numerator, p.denominator) for p in registry.pairs("H2")):
            for _, a3 in g3[g3.method == num].iterrows():
                a1s = _same(_same(g1[g1.method == num], "mask", a3["mask"]), "backend", a3.backend)
                b3s = _same(g3[g3.method == den], "optimizer", a3.optimizer)
                for (_, a1), (_, b3), (_, b1) in (
                    (x, y, z)
                    for x in a1s.iterrows()
                    for y in b3s.iterrows()
                    for z in g1[g1.method == den].iterrows()
                ):
                    samples = (a3.samples, b3.samples, a1.samples, b1.samples)
                    ratio, lo, hi = bootstrap(_shrinkage, *samples)
                    what = f"{num}({a3['mask']}, {a3.backend}) {a3.optimizer} {a3.variant}"
                    rows.append(
                        {
                            **key,
                            "pair": f"{num}/{den}",
                            "mask": a3["mask"],
                            "backend": a3.backend,
                            "optimizer": a3.optimizer,
                            "variant": a3.variant,
                            "r_train": a3.median_s / b3.median_s,
                            "r_fwd": a1.median_s / b1.median_s,
                            "ratio": ratio,
                            "lo": lo,
                            "hi": hi,
                            "label": f"{cell_label(key)} {what}: r_train/r_fwd",
                        }
                    )
    return pd.DataFrame(rows)
