"""The machine a record was measured on: its software and device (run.json's environment, per
world size and rank), a snapshot of its clocks and temperatures, and the ceilings every floor
is built from (measure/machine/ makes them, as plain dicts the writer checks against these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class DeviceState:
    """NVML's view of one GPU at one moment (a timed cell's start and end); every field None off
    CUDA, and `unavailable` says why where NVML could not be read."""

    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    temperature_c: int | None = None
    memory_temperature_c: int | None = None
    power_w: float | None = None
    throttle_reasons: str | None = None  # hex mask of clock-event reasons
    unavailable: str | None = None


@dataclass(kw_only=True)
class Environment:
    """One rank's software and device; the GPU and NVML fields are None off CUDA."""

    host: str
    python: str
    torch: str
    cuda: str | None  # torch's CUDA version
    cusparselt: int | None  # torch's compile-time cuSPARSELt version
    cusparselt_runtime: str | None = None  # what the loaded library reports (None: version 1)
    cpu: str
    device_type: str
    commit: str  # HEAD, "+dirty" when the tree differs, "unknown" outside git
    gpu: str | None = None
    gpu_memory_bytes: int | None = None
    sm_count: int | None = None
    l2_bytes: int | None = None
    compute_capability: str | None = None
    driver: str | None = None
    nvml_name: str | None = None
    power_limit_w: float | None = None
    max_sm_clock_mhz: int | None = None
    nvml: str | None = None  # "unavailable: <why>" where NVML could not be read


@dataclass(kw_only=True)
class Ceilings:
    """One rank's (or the slowest rank's) measured rates: copy bandwidth (bytes read plus
    written), square-GEMM rate and, on two or more ranks, collective bus bandwidth."""

    copy_bytes_per_s: float
    matmul_flop_per_s: float
    matmul_dtype: str
    copy_bytes: int
    gemm_n: int
    all_reduce_bus_bytes_per_s: float | None = None
    all_gather_bus_bytes_per_s: float | None = None
    collective_bytes: int | None = None
    collective_backend: str | None = None


@dataclass(kw_only=True)
class WorldCeilings:
    """The ceilings of one world size's pool: each rank's, and the slowest rank's per figure
    (what the floors use)."""

    min_over_ranks: Ceilings
    per_rank: list[Ceilings]
