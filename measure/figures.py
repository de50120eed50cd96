"""Per-cell figures derived from the ranks' raw results: what extra_info and the summary show."""

from __future__ import annotations

import statistics

from common.dtypes import DTYPES
from measure import floors
from measure.nvml import THROTTLE_MASK


def _median(results, key):
    t = results[0]["timing"].get(key)
    return None if t is None else t["median"]


def _throttled(results) -> bool:
    for r in results:
        for snap in (r.get("state_start", {}), r.get("state_end", {})):
            if int(snap.get("throttle_reasons", "0x0"), 16) & THROTTLE_MASK:
                return True
        if int(r.get("energy", {}).get("throttle_reasons_seen", "0x0"), 16):
            return True
    return False


def _clock_figures(clocks: list) -> dict:
    """The SM clock over the samples (rank 0), so a run at sagging clocks can be told apart."""
    if not clocks:
        return {"sm_clock_mhz_median": None, "sm_clock_mhz_min": None, "sm_clock_mhz_max": None}
    return {
        "sm_clock_mhz_median": statistics.median(clocks),
        "sm_clock_mhz_min": min(clocks),
        "sm_clock_mhz_max": max(clocks),
    }


def phase1_info(cell, results: list[dict], ceilings: dict, environment: dict) -> dict:
    """extra_info for pytest-benchmark: everything beside the median the stats already hold."""
    r0 = results[0]
    fwd = r0["timing"]["forward"]
    elem = DTYPES[cell.dtype].itemsize
    fl = floors.floor(cell.method, cell.N, cell.N_out, cell.B, elem, cell.world_size, ceilings)
    work = floors.work(cell.method, cell.N, cell.N_out, cell.B, elem, cell.world_size)
    median = fwd["median"]
    other = next((k for k in ("forward_eager", "forward_graph") if k in r0["timing"]), None)
    host_overhead = None
    if fwd["mode"] == "graph" and other == "forward_eager":
        host_overhead = _median(results, "forward_eager") - median
    elif fwd["mode"] == "eager" and other == "forward_graph":
        host_overhead = median - _median(results, "forward_graph")
    energies = [r["energy"] for r in results]
    measured = all(e.get("energy") == "measured" for e in energies)
    info = {
        "cell": cell.as_dict(),
        "emulated": r0["emulated"],
        "timer": "host clock (CPU, emulated)" if r0["emulated"] else "CUDA events",
        "mode": fwd["mode"],
        "cache": fwd["cache"],
        "inner_forwards_per_sample": fwd["inner"],
        "stopped_by": fwd["stopped_by"],
        "rel_std": fwd["rel_std"],
        "load": "sustained" if fwd["max_duty"] >= 1 else f"burst (duty <= {fwd['max_duty']:g})",
        "duty": fwd["duty"],
        "warmup_s": fwd["warmup_s"],
        **_clock_figures(fwd["sm_clock_mhz"]),
        "rank_medians_s": fwd["rank_medians"],
        "slowest_rank": max(range(len(fwd["rank_medians"])), key=lambda i: fwd["rank_medians"][i]),
        "rank_skew": (max(fwd["rank_medians"]) / min(fwd["rank_medians"]) - 1),
        "eager_median_s": _median(results, "forward_eager"),
        "graph_median_s": _median(results, "forward_graph") if fwd["mode"] != "graph" else median,
        "cold_median_s": _median(results, "forward_cold"),
        "compute_median_s": _median(results, "compute"),
        "collective_median_s": _median(results, "collective"),
        "host_overhead_s": host_overhead,
        "weight_bytes_per_rank": [r["weight_bytes"] for r in results],
        "peak_build_bytes_per_rank": [r["peak_build_bytes"] for r in results],
        "peak_forward_bytes_per_rank": [r["peak_forward_bytes"] for r in results],
        **fl,
        "pct_of_floor": 100 * fl["floor_s"] / median,
        "achieved_tb_per_s": work["bytes"] / median / 1e12,
        "achieved_tflop_per_s": work["flops"] / median / 1e12,
        "kernel_backend": r0["kernel_backend"],
        "alg_id": [r["alg_id"] for r in results],
        "alg_source": [r.get("alg_source") for r in results],
        "process_group_backend": r0["process_group_backend"],
        "shared_device": r0["shared_device"],
        "throttled": _throttled(results),
        "state_start": [r["state_start"] for r in results],
        "state_end": [r["state_end"] for r in results],
        "rel_fro_error": max(r["errors"]["rel_fro"] for r in results),
        "mean_abs_error": max(r["errors"]["mean_abs"] for r in results),
        "ceilings": ceilings,
        "gpu": environment.get("gpu"),
        "torch": environment.get("torch"),
        "cuda": environment.get("cuda"),
        "cusparselt": environment.get("cusparselt"),
        "driver": environment.get("driver"),
        "commit": environment.get("commit"),
        "energy": "measured"
        if measured
        else next(e.get("energy") for e in energies if e.get("energy") != "measured"),
    }
    if measured:
        info.update(
            {
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
        )
    else:
        info["energy_reason"] = next((e.get("reason") for e in energies if e.get("reason")), None)
    return info


def marks(info: dict) -> str:
    m = ""
    if info["throttled"]:
        m += "T"
    if info["stopped_by"].startswith("time cap"):
        m += "N"
    if info["shared_device"]:
        m += "S"
    return m
