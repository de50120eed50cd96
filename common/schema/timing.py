"""A measurement's statistics: what the sampler returns, each rank records and pytest-benchmark's
samples come from (measure/timing/sampler.py makes them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class Stats:
    """Per-forward seconds of one measurement (per call of the timed task: a forward, a backward,
    a train step, ...).

    Fields with a None default were not recorded by every earlier record version: None there
    means "not recorded", never a measured value.
    """

    mode: str  # "graph", "eager" or "host"
    cache: str  # "warm" or "cold"
    inner: int  # calls per sample
    samples: list[float]  # slowest-rank seconds per call, one per sample
    rank_medians: list[float]  # each rank's own median
    median: float
    q1: float
    q3: float
    min: float
    max: float
    rel_std: float
    measured_s: float
    stopped_by: str  # "noise" (the rule was met) or "time_cap" (max_time_s ran out first)
    # the cap came before min_samples / min_time_s were reached (None: version 1)
    capped_before_min_samples: bool | None = None
    # measured device time over the sampling loop's wall time, slowest rank (None: early v1)
    duty: float | None = None
    warmup_s: float | None = None  # wall time of back-to-back calls before the first sample
    max_duty: float | None = None  # the policy: 1 = sustained, below 1 = idle gaps
    sm_clock_mhz: list[int] | None = None  # this rank's SM clock after each sample ([]: no NVML)
    clock_event_reasons: int | None = None  # NVML clock-event reasons seen, OR-ed (None: unknown)
    throttled: bool | None = None  # a throttle reason was seen after a sample; None: unknown
