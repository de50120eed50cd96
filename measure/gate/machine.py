"""Were two runs measured on machines whose timings may be compared? The facts that decide it.

The harness adds one block, `machine_info["block_shock_bench"]`, to every pytest-benchmark run it
saves (measure/plugin/machine.py; the facts come from measure/machine/environment.py). Only the
fields below are compared, each for the reason given: they change what a cell's time is. The
rest of pytest-benchmark's machine_info (host name, Python build, kernel release) is not: the
same GPU model in another node of a cluster is a fair comparison, and a second host name is
not a reason to refuse one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KEY = "block_shock_bench"

# Each compared field and why a difference in it invalidates a comparison of times.
COMPARED: dict[str, str] = {
    "device_type": "emulated host-clock times are never compared with device times",
    "gpu_count": "with fewer GPUs than ranks, two-rank cells share one GPU (not representative)",
    "gpu_models": "another GPU model is another experiment",
    "driver": "the driver manages clocks and power and JIT-compiles PTX",
    "cuda": "torch's CUDA build picks the cuBLAS and cuSPARSELt kernels",
    "torch": "dispatch costs and the kernels torch calls change between versions",
    "cusparselt_runtime": "the loaded cuSPARSELt runs the 2:4 halves (0.8.1 fixed a Hopper "
    "regression of 0.8.0)",
    "triton": "Triton compiles the triton backend's 2:4 kernel",
    "power_limits_w": "a lower power cap slows compute-bound cells under sustained load",
    "max_sm_clocks_mhz": "a lowered or locked SM clock moves every compute-bound time",
    "max_mem_clocks_mhz": "a lowered memory clock moves every memory-bound time",
    "cpu_model": "the host's speed is part of eager-mode times and all of an emulated run's",
    "cpu_count": "the cores the ranks and the host loop share",
}


@dataclass(frozen=True)
class Difference:
    """One compared field whose value differs between the compared run and this one."""

    field: str
    compared: Any
    current: Any

    @property
    def why(self) -> str:
        return COMPARED.get(self.field, "the compared run has no Block-Shock machine facts")

    def line(self) -> str:
        return f"{self.field}: {self.compared!r} (compared run) vs {self.current!r} (this run)"


def differences(compared: dict[str, Any], current: dict[str, Any]) -> list[Difference]:
    """The compared fields whose values differ between two pytest-benchmark `machine_info`
    dicts; a run saved without the harness's block differs in that block as a whole."""
    old, new = compared.get(KEY), current.get(KEY)
    if old is None or new is None:
        return [
            Difference(
                KEY,
                "not recorded" if old is None else "recorded",
                "not recorded" if new is None else "recorded",
            )
        ]
    return [Difference(f, old.get(f), new.get(f)) for f in COMPARED if old.get(f) != new.get(f)]


def summary(diffs: list[Difference]) -> str:
    """One line naming every differing field with both values."""
    return "; ".join(d.line() for d in diffs)
