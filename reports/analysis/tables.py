"""The per-phase tables: phase2 (backward wrt input), phase3 (train step) and each 2:4 backend's
forward beside the dense baselines. Rows of passed cells only (reports.read.outcomes)."""

from __future__ import annotations

import pandas as pd

from common.phases import with_primary
from kernels import registry
from reports.analysis.figures import KEY

MIB = 2**20
PHASE2_COLUMNS = [
    "method", "mask", "backend", "N", "N_out", "B", "dtype", "world_size", "median_s",
    "floor_s", "pct_of_floor", "forward_backward_median_s", "compute_median_s",
    "collective_median_s", "backward_backend", "stopped_by",
]  # fmt: skip
PHASE3_COLUMNS = [
    "method", "mask", "backend", "optimizer", "variant", "N", "N_out", "B", "dtype",
    "world_size", "median_s", "backward_median_s", "grad_weight_median_s", "optimizer_median_s",
    "compress_median_s", "weights_mib", "master_mib", "grad_mib", "optimizer_mib", "stopped_by",
]  # fmt: skip
STATE = {  # column: extra_info list per rank (the largest rank's figure is shown)
    "weights_mib": "weight_bytes_per_rank",
    "master_mib": "master_bytes_per_rank",
    "grad_mib": "grad_bytes_per_rank",
    "optimizer_mib": "optimizer_bytes_per_rank",
}


def _present(t: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return t[[c for c in columns if c in t]]


def _per_rank_max(values) -> float:
    if not isinstance(values, list) or any(v is None for v in values):
        return float("nan")
    return max(values)


def with_state_mib(t: pd.DataFrame) -> pd.DataFrame:
    """t with the training state per rank in MiB (the largest rank's), NaN where unreported."""
    t = t.copy()
    for col, key in STATE.items():
        t[col] = [_per_rank_max(v) / MIB for v in t[key]] if key in t else float("nan")
    return t


def phase2(t: pd.DataFrame) -> pd.DataFrame:
    t = t[t.phase.isin(with_primary("backward"))]
    if "backward_backend" in t:
        t = t.assign(backward_backend=[",".join(sorted(set(v))) for v in t.backward_backend])
    return _present(t, PHASE2_COLUMNS).sort_values(["N", "B", "method"])


def phase3(t: pd.DataFrame) -> pd.DataFrame:
    t = with_state_mib(t[t.phase.isin(with_primary("step"))])
    return _present(t, PHASE3_COLUMNS).sort_values(["N", "B", "method", "optimizer", "variant"])


def backends(t: pd.DataFrame) -> pd.DataFrame:
    """Each 2:4 backend's phase1 time and % of floor, and its ratio to each H1 baseline (dense
    TP, the dense half) on the same shape (medians; the intervals are in the H1 tables)."""
    t = t[t.phase.isin(with_primary("forward"))]
    semi = [m.name for m in registry.methods() if m.semi_structured]
    bases = sorted({p.denominator for p in registry.pairs("H1")})
    rows = []
    for key, g in t.groupby(KEY):
        for _, r in g[g.method.isin(semi)].iterrows():
            rows.append(
                {
                    **dict(zip(KEY, key, strict=True)),
                    "method": r.method,
                    "mask": r["mask"],
                    "backend": r.backend,
                    "median_s": r.median_s,
                    "pct_of_floor": r.get("pct_of_floor"),
                    **{f"vs_{m}": r.median_s / g.median_s[g.method == m].median() for m in bases},
                }
            )
    return pd.DataFrame(rows)
