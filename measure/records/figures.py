"""Per-cell figures derived from the ranks' typed results: what extra_info and the summary show.

Every clock and throttle figure here is read from the timed samples of the primary forward
measurement (the SM clock and clock-event reasons after each sample), not from snapshots taken
before or after the cell.
"""

from __future__ import annotations

import statistics

from common.cell import CellSpec
from common.dtypes import DTYPES
from measure.records.results import RankResult
from measure.timing import floors

THROTTLED_MEANS = (
    "throttled: NVML reported a clock-event reason that pulls the clock down (software power "
    "cap, hardware slowdown, thermal, power brake) after at least one timed sample of the "
    "primary forward measurement, on any rank; unknown (null) where NVML cannot be read"
)


def _median(r0: RankResult, key: str) -> float | None:
    t = r0.timing.get(key)
    return None if t is None else t.median


def throttled(results: list[RankResult]) -> bool | None:
    """True/False from the timed samples of every rank; None where any rank could not tell."""
    flags = [r.forward.throttled for r in results]
    if any(f is None for f in flags):
        return None
    return any(flags)


def _clock_figures(clocks: list) -> dict:
    """The SM clock over the samples (rank 0), so a run at sagging clocks can be told apart."""
    if not clocks:
        return {"sm_clock_mhz_median": None, "sm_clock_mhz_min": None, "sm_clock_mhz_max": None}
    return {
        "sm_clock_mhz_median": statistics.median(clocks),
        "sm_clock_mhz_min": min(clocks),
        "sm_clock_mhz_max": max(clocks),
    }


def _host_overhead(r0: RankResult) -> float | None:
    fwd = r0.forward
    if fwd.mode == "graph" and "forward_eager" in r0.timing:
        return _median(r0, "forward_eager") - fwd.median
    if fwd.mode == "eager" and "forward_graph" in r0.timing:
        return fwd.median - _median(r0, "forward_graph")
    return None


def _energy(results: list[RankResult]) -> dict:
    energies = [r.energy for r in results]
    if all(e.get("energy") == "measured" for e in energies):
        return {
            "energy": "measured",
            "energy_method": energies[0]["energy_method"],
            "j_per_forward": sum(e["j_per_forward"] for e in energies),
            "j_per_token": sum(e["j_per_token"] for e in energies),
            "j_per_forward_per_rank": [e["j_per_forward"] for e in energies],
            "avg_w_per_rank": [e["avg_w"] for e in energies],
            "peak_w_per_rank": [e.get("peak_w") for e in energies],
            "idle_w_per_rank": [e["idle_w"] for e in energies],
            "edp_j_s": sum(e["edp_j_s"] for e in energies),
            "counter_vs_integral": [e.get("counter_vs_integral") for e in energies],
        }
    other = next(e for e in energies if e.get("energy") != "measured")
    return {"energy": other.get("energy"), "energy_reason": other.get("reason")}


def phase1_info(
    cell: CellSpec, results: list[RankResult], ceilings: dict, environment: dict
) -> dict:
    """extra_info for pytest-benchmark: everything beside the median the stats already hold."""
    r0 = results[0]
    fwd = r0.forward
    median = fwd.median
    return {
        **_floor_figures(cell, median, ceilings),
        "timed": r0.primary,
        **_phase_figures(results),
        "cell": cell.as_dict(),
        "correct": True,
        "emulated": r0.emulated,
        "timer": "host clock (CPU, emulated)" if r0.emulated else "CUDA events",
        "mode": fwd.mode,
        "cache": fwd.cache,
        "inner_forwards_per_sample": fwd.inner,
        "stopped_by": fwd.stopped_by,
        "capped_before_min_samples": fwd.capped_before_min_samples,
        "samples": len(fwd.samples),
        "rel_std": fwd.rel_std,
        "load": "sustained" if fwd.max_duty >= 1 else f"burst (duty <= {fwd.max_duty:g})",
        "duty": fwd.duty,
        "warmup_s": fwd.warmup_s,
        **_clock_figures(fwd.sm_clock_mhz),
        "clock_event_reasons_per_rank": [r.forward.clock_event_reasons for r in results],
        "throttled": throttled(results),
        "rank_medians_s": fwd.rank_medians,
        "slowest_rank": max(range(len(fwd.rank_medians)), key=lambda i: fwd.rank_medians[i]),
        "rank_skew": (max(fwd.rank_medians) / min(fwd.rank_medians) - 1),
        "eager_median_s": _median(r0, "forward_eager"),
        "graph_median_s": _median(r0, "forward_graph") if fwd.mode != "graph" else median,
        "cold_median_s": _median(r0, "forward_cold"),
        "compute_median_s": _median(r0, "compute"),
        "collective_median_s": _median(r0, "collective"),
        "host_overhead_s": _host_overhead(r0),
        "weight_bytes_per_rank": [r.memory.weight_bytes for r in results],
        "peak_build_bytes_per_rank": [r.memory.build_peak_bytes for r in results],
        "peak_forward_bytes_per_rank": [r.memory.forward_peak_bytes for r in results],
        "kernel_backend": r0.kernel_backend,
        "alg_id": [r.alg_id for r in results],
        "alg_source": [r.alg_source for r in results],
        "process_group_backend": r0.process_group_backend,
        "shared_device": r0.shared_device,
        "state_start": [r.state_start for r in results],
        "state_end": [r.state_end for r in results],
        "rel_fro_error": max(r.errors.rel_fro for r in results),
        "mean_abs_error": max(r.errors.mean_abs for r in results),
        "ceilings": ceilings,
        "gpu": environment.get("gpu"),
        "torch": environment.get("torch"),
        "cuda": environment.get("cuda"),
        "cusparselt": environment.get("cusparselt"),
        "cusparselt_runtime": environment.get("cusparselt_runtime"),
        "driver": environment.get("driver"),
        "commit": environment.get("commit"),
        **_energy(results),
    }


def _floor_figures(cell: CellSpec, median: float, ceilings: dict) -> dict:
    """The floor of what the phase times: a forward (phase1), or grad_X = grad_Y W, which
    moves the same bytes and FLOPs (phase2). A train step has no floor model yet (None)."""
    if cell.phase not in ("phase1", "phase2"):
        return {"floor_s": None, "pct_of_floor": None, "bound": None}
    elem = DTYPES[cell.dtype].itemsize
    fl = floors.floor(cell.method, cell.N, cell.N_out, cell.B, elem, cell.world_size, ceilings)
    work = floors.work(cell.method, cell.N, cell.N_out, cell.B, elem, cell.world_size)
    return {
        **fl,
        "pct_of_floor": 100 * fl["floor_s"] / median,
        "achieved_tb_per_s": work["bytes"] / median / 1e12,
        "achieved_tflop_per_s": work["flops"] / median / 1e12,
    }


def _phase_figures(results: list[RankResult]) -> dict:
    """phase2/phase3 figures beside the time: the backward's path, each timed part's median
    (slowest rank's samples), training state bytes per rank."""
    r0 = results[0]
    info = {f"{k}_median_s": v.median for k, v in r0.timing.items() if k != r0.primary}
    pf = [r.phase_figures or {} for r in results]
    if "backward_backend" in pf[0]:
        info["backward_backend"] = [p["backward_backend"] for p in pf]
    for key in ("master_bytes", "optimizer_bytes", "grad_bytes"):
        if key in pf[0]:
            info[f"{key}_per_rank"] = [p[key] for p in pf]
    return info


def marks(info: dict) -> str:
    """T throttled while timed, N stopped by the time cap, n the cap came before min_samples,
    S ranks shared one GPU."""
    m = ""
    if info["throttled"]:
        m += "T"
    if info["stopped_by"] == "time_cap":
        m += "n" if info["capped_before_min_samples"] else "N"
    if info["shared_device"]:
        m += "S"
    return m
