"""The figures a timed cell publishes: pytest-benchmark's extra_info and a passed record's
`figures`, one flat JSON object whose keys are grouped here by concern (each block is written
into the one object, so readers of earlier files find every key where it was).

measure/records/figures.py derives them from the ranks' results; the reports read them back
through CellFigures; asv and the end-of-run summary read the objects. A block's None fields
are figures the cell's phase does not have, or that an earlier record version did not write.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.cell import CellSpec
from common.schema.codec import flat
from common.schema.energy import EnergySummary
from common.schema.machine import Ceilings, DeviceState


@dataclass(kw_only=True)
class FloorFigures:
    """The floor of the published timing on this machine (PhaseInfo.floor) and how close the
    median came: all None for a phase without a floor model (a train step)."""

    floor_s: float | None
    floor_compute_s: float | None = None
    floor_collective_s: float | None = None
    bound: str | None  # "memory" or "math": which term sets the compute floor
    bytes_per_rank: float | None = None
    flops_per_rank: float | None = None
    pct_of_floor: float | None
    achieved_tb_per_s: float | None = None
    achieved_tflop_per_s: float | None = None

    @classmethod
    def none(cls) -> FloorFigures:
        return cls(floor_s=None, bound=None, pct_of_floor=None)


@dataclass(kw_only=True)
class PrimaryFigures:
    """How the published timing was measured (rank 0's statistics, every rank's clocks)."""

    mode: str  # graph, eager or host
    cache: str  # warm or cold
    inner_forwards_per_sample: int
    stopped_by: str  # noise or time_cap
    capped_before_min_samples: bool | None = None
    samples: int | None = None  # how many (the samples themselves are pytest-benchmark's)
    rel_std: float
    load: str | None = None  # "sustained" or "burst (duty <= d)"
    duty: float | None = None
    warmup_s: float | None = None
    sm_clock_mhz_median: float | None = None
    sm_clock_mhz_min: int | None = None
    sm_clock_mhz_max: int | None = None
    clock_event_reasons_per_rank: list[int | None] | None = None
    throttled: bool | None = None  # on any rank after a timed sample; None: unknown
    rank_medians_s: list[float]
    slowest_rank: int
    rank_skew: float  # slowest rank's median over the fastest's, minus 1


@dataclass(kw_only=True)
class PartFigures:
    """Medians (seconds per call) of the other timings the phase made, rank 0's samples: the
    `<name>_median_s` of every Measurement name but the primary's (common/phases.py), and the
    forward's modes by name (`eager_median_s` is None where eager is the primary mode)."""

    eager_median_s: float | None = None
    graph_median_s: float | None = None  # the primary's median where graph replay is primary
    cold_median_s: float | None = None
    compute_median_s: float | None = None
    collective_median_s: float | None = None
    host_overhead_s: float | None = None  # eager minus graph: the host's cost per call
    forward_eager_median_s: float | None = None
    forward_graph_median_s: float | None = None
    forward_cold_median_s: float | None = None
    forward_backward_median_s: float | None = None
    backward_median_s: float | None = None
    grad_weight_median_s: float | None = None
    optimizer_median_s: float | None = None
    compress_median_s: float | None = None


@dataclass(kw_only=True)
class KernelFigures:
    """What ran on each rank, and the device's state around the measurement."""

    kernel_backend: str
    alg_id: list[int | str | None]
    alg_source: list[str | None] | None = None
    process_group_backend: str | None
    shared_device: bool  # ranks shared one GPU: timings not representative
    state_start: list[DeviceState]
    state_end: list[DeviceState]


@dataclass(kw_only=True)
class MemoryPerRank:
    """Device bytes per rank (None off CUDA)."""

    weight_bytes_per_rank: list[int]
    peak_build_bytes_per_rank: list[int | None]
    peak_forward_bytes_per_rank: list[int | None]


@dataclass(kw_only=True)
class TrainingPerRank:
    """What a phase's figures add, per rank: the backward's path (phase2), the training state
    (phase3)."""

    backward_backend: list[str] | None = None
    master_bytes_per_rank: list[int] | None = None
    optimizer_bytes_per_rank: list[int] | None = None
    grad_bytes_per_rank: list[int] | None = None


@dataclass(kw_only=True)
class MachineFigures:
    """The machine the figures were measured on: its ceilings and rank 0's software."""

    ceilings: Ceilings | None = None
    gpu: str | None = None
    torch: str | None = None
    cuda: str | None = None
    cusparselt: int | None = None
    cusparselt_runtime: str | None = None
    driver: str | None = None
    commit: str | None = None


@dataclass(kw_only=True)
class CellFigures:
    """Everything a timed cell publishes beside its samples."""

    record_version: int  # of the schema that wrote these figures
    cell: CellSpec
    timed: str | None = None  # the published timing's name (None: not recorded before v2)
    correct: bool | None = None  # the check passed (None: not recorded, version 1)
    emulated: bool
    timer: str  # "CUDA events" or "host clock (CPU, emulated)"
    rel_fro_error: float  # the forward check's worst relative error over ranks
    mean_abs_error: float | None = None
    floor: FloorFigures = flat()
    primary: PrimaryFigures = flat()
    parts: PartFigures = flat()
    kernel: KernelFigures = flat()
    memory: MemoryPerRank = flat()
    training: TrainingPerRank = flat()
    machine: MachineFigures = flat()
    energy: EnergySummary = flat()
