"""phase1: forward time on the device, stored by pytest-benchmark as device seconds.

The sampler measures on the ranks (CUDA events, or the host clock on CPU); the samples are
replayed into pytest-benchmark through DEVICE_CLOCK, and the rest goes into extra_info.
"""

import pytest

from measure import figures
from measure.replay import DEVICE_CLOCK
from measure.runner import run_phase1


@pytest.mark.benchmark(timer=DEVICE_CLOCK)
def phase1(cell, ranks, bench, cell_seed, benchmark):
    ceilings = bench.ceilings(ranks)
    results = ranks.run(run_phase1, cell.as_dict(), cell_seed, bench.task_options())
    info = figures.phase1_info(cell, results, ceilings, bench.environment(ranks))
    benchmark.group = f"N{cell.N}x{cell.N_out}-B{cell.B}-{cell.dtype}"
    benchmark.extra_info.update(info)
    DEVICE_CLOCK.replay(benchmark, results[0]["timing"]["forward"]["samples"])
    bench.finish(cell, results, info)
