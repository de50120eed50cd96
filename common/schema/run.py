"""The run document (results/<run_id>/run.json): what every cell of one run shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.schema.attempt import Attempt
from common.schema.machine import Environment, WorldCeilings

# beside run.json: pytest-benchmark's JSON of the run's timed cells (measure/plugin/hooks.py
# points --benchmark-json there unless given), so a run folder alone has its timings
BENCHMARK_JSON = "benchmarks.json"


@dataclass(kw_only=True)
class TimingPolicyRecord:
    """The timing policy the run measured under (measure/timing/policy.py's TimingPolicy, as
    data; a test holds the two to the same fields). None: not in an early version-1 policy."""

    min_samples: int
    min_time_s: float
    max_time_s: float
    max_noise: float
    sample_s: float | None = None
    warmup_s: float | None = None
    max_duty: float | None = None
    energy_window_s: float
    idle_s: float


@dataclass(kw_only=True)
class RunOptions:
    """The run's choices that are not the timing policy."""

    backend: str  # --bs-backend: the 2:4 kernel path of cells that name none
    mode: str  # --bs-mode: the primary timing mode asked for
    energy: bool  # --bs-energy


@dataclass(kw_only=True)
class RunDocument:
    """run.json. `status` is "running" until the run ends "completed" or "interrupted" (a run
    that still says "running" afterwards crashed, or was killed with SIGKILL); None in version 1,
    which did not record it. `stopped_by` names the signal that interrupted the run (SIGINT,
    SIGTERM, SIGHUP), None where none did; `attempt` is who wrote it. Both are None (not
    recorded) before version 4."""

    record_version: int
    measurement_version: int | None = None
    run_id: str
    started: float
    status: str | None = None
    ended: float | None = None
    exitstatus: int | None = None
    stopped_by: str | None = None
    attempt: Attempt | None = None
    suite: str | None = None
    seed: int | None = None
    device_type: str | None = None
    timing: TimingPolicyRecord | None = None
    options: RunOptions | None = None
    # per world size ("ws2"): every rank's environment, and the ceilings measured once per pool
    environment: dict[str, list[Environment]] = field(default_factory=dict)
    ceilings: dict[str, WorldCeilings] = field(default_factory=dict)
