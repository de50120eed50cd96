"""Energy: what one rank's meter found over its window (measure/machine/energy.py), and the
cell's totals over ranks that go into pytest-benchmark's extra_info (measure/records/figures.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# measured; below idle (the window did not rise above the idle baseline); unavailable (no
# meter reads this device); off (--bs-energy off)
EnergyStatus = Literal["measured", "below idle", "unavailable", "off"]
# (t_s, power_w, sm_clock_mhz, temperature_c, clock_event_reasons): one 20 ms power sample
PowerSample = tuple[float, float, int, int, int]


@dataclass(kw_only=True)
class EnergyFigures:
    """One rank's energy window, idle subtracted; only `energy` (and `reason` where it is not
    measured) is there in every record: a number is never made up."""

    energy: EnergyStatus
    reason: str | None = None  # why not measured
    energy_method: str | None = None  # nvml_energy_counter, nvml_power_integral, rapl_package
    window_s: float | None = None
    forwards: int | None = None  # calls of the timed task in the window
    joules_total: float | None = None
    idle_w: float | None = None
    idle_settle_s: float | None = None  # how long power took to settle before the idle window
    avg_w: float | None = None
    net_joules: float | None = None
    j_per_forward: float | None = None
    j_per_token: float | None = None
    edp_j_s: float | None = None  # energy-delay product per call
    peak_w: float | None = None
    throttle_reasons_seen: str | None = None  # hex mask of throttle reasons over the window
    joules_integral: float | None = None  # the power samples' integral beside the counter
    counter_vs_integral: float | None = None
    # the window's power samples, in memory only: the writer moves them to series/ as CSV
    # and keeps the file's path in series_csv
    series: list[PowerSample] | None = None
    series_csv: str | None = None


@dataclass(kw_only=True)
class EnergySummary:
    """The cell's energy over its ranks (extra_info keys): totals where every rank measured,
    else the first unmeasured rank's status and reason."""

    energy: str | None  # EnergyStatus; None: not recorded
    energy_method: str | None = None
    j_per_forward: float | None = None  # summed over ranks
    j_per_token: float | None = None  # summed over ranks
    j_per_forward_per_rank: list[float | None] | None = None
    avg_w_per_rank: list[float | None] | None = None
    peak_w_per_rank: list[float | None] | None = None
    idle_w_per_rank: list[float | None] | None = None
    edp_j_s: float | None = None
    counter_vs_integral: list[float | None] | None = None
    energy_reason: str | None = None
