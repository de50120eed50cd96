"""The timing policy, one object with one set of defaults.

benchmarks.json's suite `timing` blocks, the `--bs-*` options and the sampler all read this
class: a default written here is the default everywhere, and one check validates a value from
any of them. The stopping rule is nvbench's (at least `min_samples` and `min_time_s` of device
time, then relative spread under `max_noise`, or the `max_time_s` wall-time cap); the load is
`max_duty` (1: back to back, sustained; below 1: idle gaps keep the device under its power cap)
after `warmup_s` of forwards, each warm sample lasting about `sample_s`; energy windows last
`energy_window_s` after `idle_s` of idle baseline.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# Bump when a change to the sampler, the checks or the floors changes what a figure means:
# asv keys its history on it (track_*.version), and every record carries it.
MEASUREMENT_VERSION = 2

ZERO_OK = {"warmup_s"}  # no warm-up beyond one call is a valid (if unwise) policy


@dataclass(frozen=True)
class TimingPolicy:
    min_samples: int = 10
    min_time_s: float = 0.5
    max_time_s: float = 15.0
    max_noise: float = 0.005
    sample_s: float = 0.01
    warmup_s: float = 1.0
    max_duty: float = 1.0
    energy_window_s: float = 1.0
    idle_s: float = 0.5

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def problem(cls, key: str, value) -> str | None:
        """What is wrong with one value (from benchmarks.json or an option), or None."""
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            return f"must be a finite positive number, got {value!r}"
        if value == 0 and key not in ZERO_OK:
            return f"must be a finite positive number, got {value!r}"
        if key == "min_samples" and value != int(value):
            return f"must be a whole number of samples, got {value!r}"
        if key == "max_duty" and value > 1:
            return f"is a fraction of the time, at most 1; got {value!r}"
        return None

    def updated(self, **values) -> TimingPolicy:
        """A copy with `values` set; raises ValueError('key: problem') on a bad one."""
        kinds = {f.name: f.type for f in fields(self)}
        clean: dict[str, Any] = {}
        for k, v in values.items():
            problem = self.problem(k, v)
            if problem:
                raise ValueError(f"{k} {problem}")
            clean[k] = int(v) if kinds[k] in ("int", int) else float(v)
        return replace(self, **clean)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_POLICY = TimingPolicy()

# Each command-line option (pytest's `--bs-*`) and the policy field it sets.
OPTIONS = {
    "--bs-min-samples": "min_samples",
    "--bs-min-time": "min_time_s",
    "--bs-max-time": "max_time_s",
    "--bs-max-noise": "max_noise",
    "--bs-sample-time": "sample_s",
    "--bs-warmup": "warmup_s",
    "--bs-max-duty": "max_duty",
    "--energy-window": "energy_window_s",
    "--bs-idle-seconds": "idle_s",
}


def options_in(args: list[str]) -> dict[str, float]:
    """The policy fields an argument list for pytest sets (`--bs-min-time=2` or `--bs-min-time
    2`; the last one given wins, as in pytest), so a study that passes arguments through to its
    pytest runs estimates and hashes the policy those runs will use."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for opt, key in OPTIONS.items():
        parser.add_argument(opt, dest=key, type=float)
    known, _ = parser.parse_known_args(args)
    return {k: v for k, v in vars(known).items() if v is not None}
