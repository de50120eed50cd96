"""Per-cell figures derived from the ranks' typed results: what extra_info and the summary show
(common/schema/figures.py's CellFigures, block by block).

Every clock and throttle figure here is read from the timed samples of the primary measurement
(the SM clock and clock-event reasons after each sample), not from snapshots taken before or
after the cell; `throttled` is True when any rank saw a throttle reason after a timed sample,
None (unknown) where any rank could not read NVML.
"""

from __future__ import annotations

import statistics
from typing import Any

from common.cell import CellSpec
from common.dtypes import DTYPES
from common.phases import CATALOG
from common.schema.codec import from_json
from common.schema.energy import EnergySummary
from common.schema.figures import (
    CellFigures,
    FloorFigures,
    KernelFigures,
    MachineFigures,
    MemoryPerRank,
    PartFigures,
    PrimaryFigures,
    TrainingPerRank,
)
from common.schema.machine import Ceilings
from common.schema.rank import RankResult
from common.schema.timing import Stats
from common.schema.versions import RECORD_VERSION
from measure.timing import floors


def _primary(r: RankResult) -> Stats:
    fwd = r.forward
    if fwd is None:  # a timed phase's task always stores its primary: a bug if not
        raise ValueError(f"rank {r.rank} has no {r.primary!r} timing to publish")
    return fwd


def _median(r0: RankResult, key: str) -> float | None:
    t = r0.timing.get(key)
    return None if t is None else t.median


def throttled(results: list[RankResult]) -> bool | None:
    """True/False from the timed samples of every rank; None where any rank could not tell."""
    flags = [_primary(r).throttled for r in results]
    if any(f is None for f in flags):
        return None
    return any(flags)


def _floor(cell: CellSpec, median: float, ceilings: dict[str, Any]) -> FloorFigures:
    """The floor of what the phase publishes (PhaseInfo.floor): a forward, or grad_X = grad_Y W,
    which moves the same bytes and FLOPs, so the one work model serves both; none for a phase
    without a floor model (a train step)."""
    if CATALOG[cell.phase].floor == "none":
        return FloorFigures.none()
    elem = DTYPES[cell.dtype].itemsize
    fl = floors.floor(cell.method, cell.N, cell.N_out, cell.B, elem, cell.world_size, ceilings)
    work = floors.work(cell.method, cell.N, cell.N_out, cell.B, elem, cell.world_size)
    return FloorFigures(
        floor_s=fl["floor_s"],
        floor_compute_s=fl["floor_compute_s"],
        floor_collective_s=fl["floor_collective_s"],
        bound=fl["bound"],
        bytes_per_rank=fl["bytes_per_rank"],
        flops_per_rank=fl["flops_per_rank"],
        pct_of_floor=100 * fl["floor_s"] / median,
        achieved_tb_per_s=work["bytes"] / median / 1e12,
        achieved_tflop_per_s=work["flops"] / median / 1e12,
    )


def _primary_figures(results: list[RankResult]) -> PrimaryFigures:
    fwd = _primary(results[0])
    clocks = fwd.sm_clock_mhz or []
    medians = fwd.rank_medians
    load = None
    if fwd.max_duty is not None:
        load = "sustained" if fwd.max_duty >= 1 else f"burst (duty <= {fwd.max_duty:g})"
    return PrimaryFigures(
        mode=fwd.mode,
        cache=fwd.cache,
        inner_forwards_per_sample=fwd.inner,
        stopped_by=fwd.stopped_by,
        capped_before_min_samples=fwd.capped_before_min_samples,
        samples=len(fwd.samples),
        rel_std=fwd.rel_std,
        load=load,
        duty=fwd.duty,
        warmup_s=fwd.warmup_s,
        # the SM clock over the samples (rank 0), so a run at sagging clocks can be told apart
        sm_clock_mhz_median=statistics.median(clocks) if clocks else None,
        sm_clock_mhz_min=min(clocks) if clocks else None,
        sm_clock_mhz_max=max(clocks) if clocks else None,
        clock_event_reasons_per_rank=[_primary(r).clock_event_reasons for r in results],
        throttled=throttled(results),
        rank_medians_s=medians,
        slowest_rank=max(range(len(medians)), key=lambda i: medians[i]),
        rank_skew=max(medians) / min(medians) - 1,
    )


def _host_overhead(r0: RankResult) -> float | None:
    fwd, eager, graph = _primary(r0), _median(r0, "forward_eager"), _median(r0, "forward_graph")
    if fwd.mode == "graph" and eager is not None:
        return eager - fwd.median
    if fwd.mode == "eager" and graph is not None:
        return fwd.median - graph
    return None


def _parts(r0: RankResult) -> PartFigures:
    """Every timing but the primary as `<name>_median_s` (the names common/phases.py lists),
    and the forward's modes by name."""
    fwd = _primary(r0)
    named = {f"{k}_median_s": v.median for k, v in r0.timing.items() if k != r0.primary}
    return PartFigures(
        **named,
        eager_median_s=_median(r0, "forward_eager"),
        graph_median_s=_median(r0, "forward_graph") if fwd.mode != "graph" else fwd.median,
        cold_median_s=_median(r0, "forward_cold"),
        host_overhead_s=_host_overhead(r0),
    )


def _energy(results: list[RankResult]) -> EnergySummary:
    """Totals over ranks where every rank measured; else the first other rank's status."""
    energies = [r.energy for r in results]
    measured = [e for e in energies if e is not None and e.energy == "measured"]
    if len(measured) == len(energies):

        def total(values: list[float | None]) -> float:
            return sum(v for v in values if v is not None)

        return EnergySummary(
            energy="measured",
            energy_method=measured[0].energy_method,
            j_per_forward=total([e.j_per_forward for e in measured]),
            j_per_token=total([e.j_per_token for e in measured]),
            j_per_forward_per_rank=[e.j_per_forward for e in measured],
            avg_w_per_rank=[e.avg_w for e in measured],
            peak_w_per_rank=[e.peak_w for e in measured],
            idle_w_per_rank=[e.idle_w for e in measured],
            edp_j_s=total([e.edp_j_s for e in measured]),
            counter_vs_integral=[e.counter_vs_integral for e in measured],
        )
    other = next(e for e in energies if e is None or e.energy != "measured")
    if other is None:
        return EnergySummary(energy=None)
    return EnergySummary(energy=other.energy, energy_reason=other.reason)


def _training(results: list[RankResult]) -> TrainingPerRank:
    """The phase figures' per-rank lists, where the phase fills them (PhaseInfo.figures)."""
    pf = [r.phase_figures for r in results]
    if any(p is None for p in pf):
        return TrainingPerRank()
    filled = [p for p in pf if p is not None]

    def per_rank(values: list[Any]) -> list[Any] | None:
        return None if any(v is None for v in values) else values

    return TrainingPerRank(
        backward_backend=per_rank([p.backward_backend for p in filled]),
        master_bytes_per_rank=per_rank([p.master_bytes for p in filled]),
        optimizer_bytes_per_rank=per_rank([p.optimizer_bytes for p in filled]),
        grad_bytes_per_rank=per_rank([p.grad_bytes for p in filled]),
    )


def _machine(ceilings: dict[str, Any], environment: dict[str, Any]) -> MachineFigures:
    return MachineFigures(
        ceilings=from_json(Ceilings, dict(ceilings), "ceilings", lenient=True),
        gpu=environment.get("gpu"),
        torch=environment.get("torch"),
        cuda=environment.get("cuda"),
        cusparselt=environment.get("cusparselt"),
        cusparselt_runtime=environment.get("cusparselt_runtime"),
        driver=environment.get("driver"),
        commit=environment.get("commit"),
    )


def cell_figures(
    cell: CellSpec,
    results: list[RankResult],
    ceilings: dict[str, Any],
    environment: dict[str, Any],
) -> CellFigures:
    """What a passed timed cell publishes beside its samples (pytest-benchmark's extra_info):
    the floor, how the primary timing was measured, the other timings, memory, what ran,
    energy, and the machine (`ceilings` and rank 0's `environment`, as the session has them)."""
    r0 = results[0]
    errors = [r.errors for r in results if r.errors is not None]
    mean_abs = [e.mean_abs for e in errors if e.mean_abs is not None]
    return CellFigures(
        record_version=RECORD_VERSION,
        cell=cell,
        timed=r0.primary,
        correct=True,
        emulated=r0.emulated,
        timer="host clock (CPU, emulated)" if r0.emulated else "CUDA events",
        rel_fro_error=max(e.rel_fro for e in errors),
        mean_abs_error=max(mean_abs) if mean_abs else None,
        floor=_floor(cell, _primary(r0).median, ceilings),
        primary=_primary_figures(results),
        parts=_parts(r0),
        kernel=KernelFigures(
            kernel_backend=r0.kernel_backend,
            alg_id=[r.alg_id for r in results],
            alg_source=[r.alg_source for r in results],
            process_group_backend=r0.process_group_backend,
            shared_device=r0.shared_device,
            state_start=[r.state_start for r in results],
            state_end=[r.state_end for r in results],
        ),
        memory=MemoryPerRank(
            weight_bytes_per_rank=[r.memory.weight_bytes for r in results],
            peak_build_bytes_per_rank=[r.memory.build_peak_bytes for r in results],
            peak_forward_bytes_per_rank=[r.memory.forward_peak_bytes for r in results],
        ),
        training=_training(results),
        machine=_machine(ceilings, environment),
        energy=_energy(results),
    )


def marks(info: CellFigures) -> str:
    """T throttled while timed, N stopped by the time cap, n the cap came before min_samples,
    S ranks shared one GPU."""
    m = ""
    if info.primary.throttled:
        m += "T"
    if info.primary.stopped_by == "time_cap":
        m += "n" if info.primary.capped_before_min_samples else "N"
    if info.kernel.shared_device:
        m += "S"
    return m
