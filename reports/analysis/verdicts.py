"""H1, H2 and H3 stated on the GPU rows, each with the cells it rests on.

H1 is stated once per kernel backend of the Block-Shock method (cuSPARSELt, padded, Triton...),
H2 once per (pair, variant, optimizer): a backend or a variant that wins never speaks for one
that loses. Every verdict follows one rule (analysis._verdict): supported or refuted only when
every cell's 95% interval agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from common.phases import with_primary
from reports.analysis import h2
from reports.analysis.figures import _verdict, ratios

H1 = "H1 kernel ceiling: forward-only Block-Shock beats 2-GPU dense TP"
H2 = "H2 training reality: re-compression shrinks the advantage (r_train / r_fwd > 1)"
H3 = "H3 ablation: masked-split dense is slower than Block-Shock"
PROXY = "one-GPU proxy: block_shock_half vs dense_half (one rank's kernel, no collective)"


@dataclass(frozen=True)
class Verdict:
    hypothesis: str
    verdict: str
    basis: str
    table: pd.DataFrame  # one row per cell: label, ratio, lo, hi (and the cell's axes)
    slug: str  # file name stem of its table


def _h1(t1: pd.DataFrame) -> list[Verdict]:
    pair, basis = ("block_shock", "dense_tp_row"), "block_shock vs dense_tp_row (two ranks)"
    if t1.empty or not (t1.method == pair[0]).any():
        pair, basis = ("block_shock_half", "dense_half"), PROXY
    backends = sorted(t1.backend[t1.method == pair[0]].dropna().unique()) if not t1.empty else []
    if not backends:
        return [Verdict(H1, "not yet measured", basis, pd.DataFrame(), "h1")]
    out = []
    for b in backends:
        r = ratios(t1, *pair, num_backend=b)
        out.append(Verdict(f"{H1} [backend {b}]", _verdict(r, True), basis, r, f"h1_{b}"))
    return out


def _h2(t: pd.DataFrame) -> list[Verdict]:
    table = h2.table(t)
    if table.empty:
        basis = "phase1 and phase3 of Block-Shock and its baseline on one shape (none here)"
        return [Verdict(H2, "not yet measured", basis, table, "h2")]
    out = []
    for (pair, variant, opt), g in table.groupby(h2.GROUP):
        what = f"{pair}, variant {variant}, {opt}"
        slug = f"h2_{pair.replace('/', '_vs_')}_{variant}_{opt}"
        out.append(Verdict(f"{H2} [{what}]", _verdict(g, False), what, g, slug))
    return out


def verdicts(t: pd.DataFrame) -> list[Verdict]:
    """The verdicts on the non-emulated rows of every phase."""
    gpu = t[~t.emulated.astype(bool)] if not t.empty else t
    t1 = gpu[gpu.phase.isin(with_primary("forward"))] if not gpu.empty else gpu
    h3 = ratios(t1, "masked_split_dense", "block_shock") if not t1.empty else pd.DataFrame()
    h3v = Verdict(H3, _verdict(h3, False), "masked_split_dense vs block_shock", h3, "h3")
    return [*_h1(t1), *_h2(gpu), h3v]
