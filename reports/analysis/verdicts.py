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
from kernels import registry
from kernels.registry import Pair
from reports.analysis import h2
from reports.analysis.figures import _verdict, ratios

H1 = "H1 kernel ceiling: forward-only Block-Shock beats 2-GPU dense TP"
H2 = "H2 training reality: re-compression shrinks the advantage (r_train / r_fwd > 1)"
H3 = "H3 ablation: masked-split dense is slower than Block-Shock"


@dataclass(frozen=True)
class Verdict:
    hypothesis: str
    verdict: str
    basis: str
    table: pd.DataFrame  # one row per cell: label, ratio, lo, hi (and the cell's axes)
    slug: str  # file name stem of its table


def basis(p: Pair) -> str:
    """What a verdict rests on, as the report states it."""
    if p.proxy:
        return f"one-GPU proxy: {p.numerator} vs {p.denominator} (one rank's kernel, no collective)"
    ranks = registry.spec(p.numerator).world_size
    return f"{p.numerator} vs {p.denominator}" + (f" ({ranks} ranks)" if ranks else "")


def _h1(t1: pd.DataFrame) -> list[Verdict]:
    """On the two-rank pair where its cells were measured, else on the one-GPU proxy."""
    candidates = registry.pairs("H1")
    present = [p for p in candidates if not t1.empty and (t1.method == p.numerator).any()]
    pair = present[0] if present else candidates[-1]
    rows = t1[t1.method == pair.numerator] if not t1.empty else t1
    backends = sorted(rows.backend.dropna().unique()) if not rows.empty else []
    if not backends:
        return [Verdict(H1, "not yet measured", basis(pair), pd.DataFrame(), "h1")]
    out = []
    for b in backends:
        r = ratios(t1, pair.numerator, pair.denominator, num_backend=b)
        out.append(Verdict(f"{H1} [backend {b}]", _verdict(r, True), basis(pair), r, f"h1_{b}"))
    return out


def _h2(t: pd.DataFrame) -> list[Verdict]:
    table = h2.table(t)
    if table.empty:
        none_here = "phase1 and phase3 of Block-Shock and its baseline on one shape (none here)"
        return [Verdict(H2, "not yet measured", none_here, table, "h2")]
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
    return [*_h1(t1), *_h2(gpu), *_h3(t1)]


def _h3(t1: pd.DataFrame) -> list[Verdict]:
    """One verdict over every H3 pair's cells (the registry names one)."""
    pairs = registry.pairs("H3")
    tables = [ratios(t1, p.numerator, p.denominator) for p in pairs if not t1.empty]
    h3 = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return [Verdict(H3, _verdict(h3, False), "; ".join(map(basis, pairs)), h3, "h3")]
