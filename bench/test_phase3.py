"""phase3: one train step (forward, backward, grad_W, optimizer, re-compression), stored by
pytest-benchmark as device seconds.

`bench.run_timed` checks the cell first and raises (after writing its record) if the check
failed, so only a passed cell's samples reach pytest-benchmark (through DEVICE_CLOCK); the
derived figures go into extra_info.
"""

import pytest

from measure.plugin.replay import DEVICE_CLOCK


@pytest.mark.benchmark(timer=DEVICE_CLOCK)
def phase3(cell, bench, benchmark):
    bench.run_timed(cell, benchmark)
