"""phase1: forward time on the device, stored by pytest-benchmark as device seconds.

The sampler measures on the ranks (CUDA events, or the host clock on CPU); the samples are
replayed into pytest-benchmark through DEVICE_CLOCK, and the rest goes into extra_info.
"""

import pytest

from measure.replay import DEVICE_CLOCK


@pytest.mark.benchmark(timer=DEVICE_CLOCK)
def phase1(cell, ranks, bench, cell_seed, benchmark):
    results, info = bench.phase1(cell, cell_seed)
    benchmark.group = f"N{cell.N}x{cell.N_out}-B{cell.B}-{cell.dtype}"
    benchmark.extra_info.update(info)
    DEVICE_CLOCK.replay(benchmark, results[0]["timing"]["forward"]["samples"])
    bench.finish(cell, results, info)
