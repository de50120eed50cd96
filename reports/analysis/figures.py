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


def _column(method: str) -> str:
    """The original study's table column for one of our methods (its own name where none)."""
    peer = registry.spec(method).original_study
    return peer.column if peer is not None else method


ORIGINAL = "original study (imported)"
STUDY_HEAD = ["source", "gpu", "timing", "N", "B", "2:4 backend"]
HARNESS = "this harness"


def study_table(t: pd.DataFrame, imported: pd.DataFrame) -> pd.DataFrame:
    """The original study's ratios beside ours, one row per source, GPU, shape and 2:4 backend,
    each naming its timing. The original's come from its records given as input (imported:
    one eager p50 per cell, the median over its repeated runs), computed exactly as ours are;
    without them the table holds ours alone."""
    gpu = t[~t.emulated.astype(bool)] if not t.empty else t
    rows = []
    for source, frame in ((ORIGINAL, imported), (HARNESS, gpu)):
        if frame.empty:
            continue
        frame = frame.assign(kernel=kernel_label(frame))
        sparse = frame.kernel != frame.method
        backends = sorted(frame.backend[sparse].dropna().unique()) or [None]
        for (n, b), g in frame.groupby(["N", "B"]):
            for backend in backends:
                row = _study_row(g, n, b, backend, source)
                if row is not None:
                    rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=STUDY_HEAD)


def _timing(g: pd.DataFrame, source: str) -> str:
    """How a row's times were taken, as the table states it."""
    if source == ORIGINAL:
        return "eager p50 of one call (the original's timer)"
    modes = sorted(g["mode"].dropna().unique()) if "mode" in g else []
    return f"{'/'.join(modes) or 'graph'} median (this harness's timer)"


def _study_row(g: pd.DataFrame, n: int, b: int, backend: str | None, source: str) -> dict | None:
    """The ratios on one shape, the 2:4 methods' rows on `backend` only; None where none of the
    table's ratios can be taken."""
    sparse = g.kernel != g.method
    g = g[~sparse | (g.backend == backend)]
    med = g.groupby("method").median_s.median()
    ratios = {
        _study_column(p): med[p.numerator] / med[p.denominator]
        for p in registry.pairs("study")
        if {p.numerator, p.denominator} <= set(med.index)
    }
    if not ratios:
        return None
    named = "gpu" in g and g.gpu.notna().any()
    label = g.gpu.dropna().iloc[0] if named else "GPU (not named in the input)"
    head = (source, label, _timing(g, source), n, b, backend)
    return {**dict(zip(STUDY_HEAD, head, strict=True)), **ratios}
