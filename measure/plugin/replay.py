"""A clock for pytest-benchmark that advances by measured device seconds.

pytest-benchmark times target() as timer() after minus timer() before. Our sampler has already
measured each sample on the device (CUDA events; host clock on CPU), so the target advances this
clock by the next sample: pytest-benchmark's rounds, statistics, storage and comparisons then hold
device seconds per forward, with none of its machinery forked (docs/DESIGN.md, principle 6).
"""

from __future__ import annotations


class DeviceClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def __repr__(self) -> str:
        return "measure.plugin.replay.DEVICE_CLOCK"

    def replay(self, benchmark, samples: list[float]) -> None:
        """Feed `samples` (seconds) to `benchmark` as one round each."""
        it = iter(samples)

        def one_sample():
            self.now += next(it)

        benchmark.pedantic(one_sample, rounds=len(samples), iterations=1, warmup_rounds=0)


DEVICE_CLOCK = DeviceClock()
