"""phase1: forward time on the device, stored by pytest-benchmark as device seconds.

`bench.run` checks the cell first and raises (after writing its record) if the check failed,
so only a passed cell's samples are replayed into pytest-benchmark, through DEVICE_CLOCK; the
derived figures go into extra_info.
"""

import pytest

from measure.replay import DEVICE_CLOCK


@pytest.mark.benchmark(timer=DEVICE_CLOCK)
def phase1(cell, bench, benchmark):
    result = bench.run(cell)
    benchmark.group = f"N{cell.N}x{cell.N_out}-B{cell.B}-{cell.dtype}"
    benchmark.extra_info.update(result.figures)
    DEVICE_CLOCK.replay(benchmark, result.ranks[0].forward.samples)
