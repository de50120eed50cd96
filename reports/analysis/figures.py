"""Verdicts with bootstrap intervals, and a ceiling model of each method's time.

Ratios compare medians of per-sample device times of two cells measured in the same run; the
95% interval comes from resampling each cell's samples (percentile bootstrap, 2000 draws).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kernels import registry
from kernels.registry import Pair
from measure.timing import floors

# docs/DESIGN.md: 2x RTX PRO 4000 Blackwell, B=64, forward p50 ms, under the original study's own
# column names (a method's spec names its column: `original_study`).
ORIGINAL_STUDY_COLUMNS = ("dense_single", "dense_tp", "masked_split", "block_shock")
ORIGINAL_STUDY = {
    4096: (0.027, 0.127, 0.133, 1.06),
    16384: (0.91, 0.88, 1.32, 1.53),
    40960: (5.62, 3.84, 6.61, 4.40),
    81920: (22.85, 13.32, 24.79, 15.63),
}
KEY = ["N", "N_out", "B", "dtype", "workload", "bias", "emulated"]


def bootstrap(stat, *samples, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """stat(median of each sample set) and its 95% percentile-bootstrap interval: every set is
    resampled on its own (its cell's samples), the statistic taken over the resampled medians."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(s, float) for s in samples]
    resampled = [np.median(rng.choice(a, (draws, a.size)), axis=1) for a in arrays]
    lo, hi = np.percentile(stat(*resampled), [2.5, 97.5])
    return float(stat(*(np.median(a) for a in arrays))), float(lo), float(hi)


def bootstrap_ratio(a, b, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """median(a)/median(b) and its 95% percentile-bootstrap interval."""
    return bootstrap(np.divide, a, b, draws=draws, seed=seed)


def cell_label(key: dict) -> str:
    """The shape a ratio was taken on, as the report prints it."""
    return f"N={key['N']} B={key['B']} {key['dtype']}" + (
        f" N_out={key['N_out']}" if key["N_out"] != key["N"] else ""
    )


def ratios(t: pd.DataFrame, num: str, den: str, num_mask=None, num_backend=None) -> pd.DataFrame:
    """Per shape: num/den with its interval (num optionally restricted to one mask, or to one
    kernel backend)."""
    rows = []
    for key, g in t.groupby(KEY):
        n = g[g.method == num]
        if num_mask is not None:
            n = n[n["mask"] == num_mask]
        if num_backend is not None:
            n = n[n.backend == num_backend]
        d = g[g.method == den]
        key = dict(zip(KEY, key, strict=True))
        for _, nr in n.iterrows():
            for _, dr in d.iterrows():
                r, lo, hi = bootstrap_ratio(nr.samples, dr.samples)
                mask = f"({nr['mask']})" if isinstance(nr["mask"], str) else ""
                rows.append(
                    {
                        **key,
                        "numerator": num,
                        "mask": nr["mask"],
                        "backend": nr.get("backend"),
                        "denominator": den,
                        "ratio": r,
                        "lo": lo,
                        "hi": hi,
                        "shared_device": bool(nr.shared_device or dr.shared_device),
                        "label": f"{cell_label(key)} {num}{mask}/{den}",
                    }
                )
    return pd.DataFrame(rows)


def _verdict(r: pd.DataFrame, claim_below_one: bool) -> str:
    """supported or refuted only when every cell's 95% interval says so; cells that disagree
    make it mixed, with the count, so one favourable cell never speaks for the grid."""
    if r.empty:
        return "not yet measured"
    wins = (r.hi < 1) if claim_below_one else (r.lo > 1)
    losses = (r.lo > 1) if claim_below_one else (r.hi < 1)
    if wins.all():
        return "supported"
    if losses.all():
        return "refuted"
    if wins.any():
        won, lost = int(wins.sum()), int(losses.sum())
        return f"mixed: supported in {won} of {len(r)} cells, refuted in {lost}"
    return "inconclusive"


def machine_ceilings(t: pd.DataFrame) -> dict:
    """The ceilings the floors were built from: stored in newer rows, else derived exactly from
    the floor terms (bytes over floor time on memory-bound rows, FLOPs on math-bound ones)."""
    if "ceilings" in t:
        stored = [c for c in t.ceilings if isinstance(c, dict) and c]
        if stored:
            return stored[0]
    mem, math = t[t.bound == "memory"], t[t.bound == "math"]
    if mem.empty or math.empty:
        return {}
    return {
        "copy_bytes_per_s": float((mem.bytes_per_rank / mem.floor_compute_s).median()),
        "matmul_flop_per_s": float((math.flops_per_rank / math.floor_compute_s).median()),
    }


def kernel_label(t: pd.DataFrame) -> pd.Series:
    """What runs a cell's GEMM: the method, and for a 2:4 method its backend too ("<method>
    [<backend>]"), so one backend's efficiency never speaks for another's."""
    sparse = t.method.isin([m.name for m in registry.methods() if m.semi_structured])
    backend = t.backend if "backend" in t else pd.Series(None, index=t.index)
    tagged = sparse & backend.notna()
    return t.method.where(~tagged, t.method + " [" + backend.astype(str) + "]")


def model(t: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Predicted time = floor / (the kernel's median fraction of floor): error per cell. The
    efficiency is fitted per method and, for a 2:4 method, per backend (`kernel_label`)."""
    if t.empty:
        return pd.DataFrame(), {}
    label = kernel_label(t)
    eff = (t.floor_s / t.median_s).groupby(label).median().to_dict()
    pred = t.floor_s / label.map(eff)
    m = t[["method", "mask", "N", "B", "dtype", "median_s", "floor_s"]].copy()
    m["kernel"] = label
    m["efficiency"] = label.map(eff)
    m["predicted_s"] = pred
    m["error"] = t.median_s / pred - 1
    return m, eff


def _kernels_of(method: str, eff: dict) -> list[str]:
    return sorted(k for k in eff if k.split(" [")[0] == method)


def region(t: pd.DataFrame, eff: dict) -> pd.DataFrame:
    """Where the model predicts Block-Shock beats its H1 baseline on this machine, once per 2:4
    backend measured: the two-rank pair, else the one-GPU proxy (needs both kernels'
    efficiencies and the machine's ceilings, with collective bandwidth for two ranks)."""
    measured = [
        p for p in registry.pairs("H1") if p.denominator in eff and _kernels_of(p.numerator, eff)
    ]
    if not measured:
        return pd.DataFrame()
    method, base = measured[0].numerator, measured[0].denominator
    ws = registry.spec(method).world_size or int(t.world_size[t.method == method].max())
    c = machine_ceilings(t)
    if not c or (ws > 1 and c.get("all_reduce_bus_bytes_per_s") is None):
        return pd.DataFrame()
    rows = []
    for kernel in _kernels_of(method, eff):
        for n in (4096, 8192, 16384, 32768, 65536, 131072):
            for b in (16, 64, 256, 1024, 4096):
                tb = floors.floor(method, n, n, b, 2, ws, c)["floor_s"] / eff[kernel]
                tt = floors.floor(base, n, n, b, 2, ws, c)["floor_s"] / eff[base]
                rows.append(
                    {
                        "N": n,
                        "B": b,
                        "pair": f"{kernel}/{base}",
                        "predicted_ratio": tb / tt,
                        "block_shock_wins": tb < tt,
                    }
                )
    return pd.DataFrame(rows)


def _study_column(p: Pair) -> str:
    """A ratio's column: its label, else the original study's names of both methods."""
    if p.label is not None:
        return p.label
    num, den = (_column(m) for m in (p.numerator, p.denominator))
    return f"{num}/{den}"


def _original(p: Pair) -> tuple[int, int] | None:
    """Where both methods of a ratio sit in the original study's table, if they do."""
    names = [registry.spec(m).original_study for m in (p.numerator, p.denominator)]
    if p.proxy or not all(n in ORIGINAL_STUDY_COLUMNS for n in names):
        return None
    num, den = (ORIGINAL_STUDY_COLUMNS.index(str(n)) for n in names)
    return num, den


def _column(method: str) -> str:
    """The original study's table column for one of our methods (its own name where none)."""
    peer = registry.spec(method).original_study
    return peer.column if peer is not None else method


def study_table(t: pd.DataFrame) -> pd.DataFrame:
    """The original study's ratios beside ours, each labelled with its GPU."""
    rows = []
    compared = registry.pairs("study")
    for n, times in ORIGINAL_STUDY.items():
        row: dict = {
            "source": "original study",
            "gpu": "2x RTX PRO 4000 Blackwell",
            "N": n,
            "B": 64,
        }
        for p in compared:
            at = _original(p)
            if at is not None:
                row[_study_column(p)] = times[at[0]] / times[at[1]]
        rows.append(row)
    gpu = t[~t.emulated.astype(bool)] if not t.empty else t
    if not gpu.empty:  # one row per 2:4 backend: medians are never pooled across backends
        gpu = gpu.assign(kernel=kernel_label(gpu))
        sparse = gpu.kernel != gpu.method
        backends = sorted(gpu.backend[sparse].dropna().unique()) or [None]
    for (n, b), g in gpu.groupby(["N", "B"]) if not gpu.empty else []:
        for backend in backends:
            row = _study_row(g, n, b, backend, compared)
            if len(row) > 5:  # a shape with at least one ratio
                rows.append(row)
    return pd.DataFrame(rows)


def _study_row(
    g: pd.DataFrame, n: int, b: int, backend: str | None, compared: tuple[Pair, ...]
) -> dict:
    """Our ratios on one shape, the 2:4 methods' rows on `backend` only."""
    sparse = g.kernel != g.method
    g = g[~sparse | (g.backend == backend)]
    med = g.groupby("method").median_s.median()
    named = "gpu" in g and g.gpu.notna().any()
    label = g.gpu.dropna().iloc[0] if named else "GPU (not named in the input)"
    row = {"source": "this harness", "gpu": label, "N": n, "B": b, "2:4 backend": backend}
    for p in compared:
        if {p.numerator, p.denominator} <= set(med.index):
            row[_study_column(p)] = med[p.numerator] / med[p.denominator]
    return row
