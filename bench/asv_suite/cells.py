"""asv's view of the `asv` suite of benchmarks.json: no second list of cells.

`setup_cache` runs every cell of the suite once through the harness (the same rank pools,
sampler, checks and floors as `pytest bench`), so the device time asv tracks is the harness's
device time, not asv's host-side wall clock. Each `track_` reads one figure of one cell; a
parameter combination the suite does not hold is skipped (NotImplementedError), as is a figure
the machine cannot measure (peak memory and energy on a CPU).
"""

from __future__ import annotations

from pathlib import Path

from common.phases import with_primary
from measure.cells.matrix import load_matrix
from measure.phases.pipeline import TaskOptions
from measure.plugin.session import BenchSession
from measure.ranks.pool import PoolRegistry
from measure.records.writer import RunRecords
from measure.timing.policy import MEASUREMENT_VERSION

# asv imports this file from the checkout it runs in, but `measure` from the environment it
# built for the commit under test (a wheel, without benchmarks.json), so the matrix is read from
# the checkout, as asv does with benchmarks. The harness's own records of the cells asv times
# (alg ids, clocks, errors: what asv's results cannot hold) go beside the project's results.
CHECKOUT = Path(__file__).resolve().parents[2]
MATRIX = CHECKOUT / "benchmarks.json"
RECORDS = CHECKOUT / "results" / "asv-records"

SUITE = load_matrix(MATRIX).suite("asv")
CELLS = [c for c in SUITE.cells if c.phase in with_primary("forward")]
# asv runs every parameter combination in its own process, so the params are the fewest cell
# axes (method first, then the others in matrix order) that tell the suite's cells apart:
# the pages read like the pytest ids, without a cross product of combinations that do not exist.
PARAM_NAMES = ["method"]
for _axis in ("N", "N_out", "B", "dtype", "mask", "workload", "world_size", "bias"):
    if len({tuple(getattr(c, a) for a in PARAM_NAMES) for c in CELLS}) == len(CELLS):
        break
    if len({getattr(c, _axis) for c in CELLS}) > 1:
        PARAM_NAMES.append(_axis)
PARAMS = [sorted({str(getattr(c, a)) for c in CELLS}) for a in PARAM_NAMES]


def _key(*values) -> str:
    return "-".join(str(v) for v in values)


_KEYS = {_key(*(getattr(c, a) for a in PARAM_NAMES)): c for c in CELLS}
if len(_KEYS) != len(CELLS):
    raise ValueError(f"asv suite: cells are not told apart by the axes {PARAM_NAMES}")


def run_suite():
    """Every asv cell through the harness; returns {key: figures} of the cells that passed
    their check (a failed cell is recorded under results/asv-records/<run_id>/ and left out, so
    asv never tracks a number from a failed check)."""
    import torch

    from common.errors import BenchError

    device = "cuda" if torch.cuda.is_available() else "cpu"
    bench = BenchSession(
        matrix=load_matrix(MATRIX),
        suite=SUITE,
        seed=1,
        device_type=device,
        options=TaskOptions(policy=SUITE.timing),
        records=RunRecords(RECORDS),
        registry_factory=lambda: PoolRegistry(device),
    )
    out = {}
    try:
        for cell in CELLS:
            try:
                result = bench.run(cell)
            except BenchError:
                continue
            info = result.figures
            out[_key(*(getattr(cell, a) for a in PARAM_NAMES))] = {
                "median_s": result.ranks[0].forward.median,
                "pct_of_floor": info.floor.pct_of_floor,
                "peak_bytes": max(info.memory.peak_forward_bytes_per_rank, key=lambda v: v or 0),
                "j_per_forward": info.energy.j_per_forward,
            }
    finally:
        bench.close()
    return out


class _Cell:
    param_names = PARAM_NAMES
    params = PARAMS
    timeout = 900
    figure = ""

    def setup_cache(self):
        return run_suite()

    def setup(self, cache, *params):
        key = _key(*params)
        if key not in _KEYS:
            raise NotImplementedError("not a cell of the asv suite")
        fig = cache.get(key)
        if fig is None:
            raise NotImplementedError("this cell failed its check: no figure is tracked")
        if fig[self.figure] is None:
            raise NotImplementedError(f"{self.figure} is not measured on this machine")


def _track(unit: str):
    """A track_ method returning the class's figure of the cell (the cache holds every cell's)."""

    def track(self, cache, *params):
        return cache[_key(*params)][self.figure]

    # asv reads both off the function; history restarts when a figure's meaning does
    track.__dict__.update(unit=unit, version=str(MEASUREMENT_VERSION))
    return track


class DeviceTime(_Cell):
    figure = "median_s"
    track_forward = _track("seconds")


class PercentOfFloor(_Cell):
    figure = "pct_of_floor"
    track_pct_of_floor = _track("%")


class PeakMemory(_Cell):
    figure = "peak_bytes"
    track_peak_forward_memory = _track("bytes")


class Energy(_Cell):
    figure = "j_per_forward"
    track_joules_per_forward = _track("J")
