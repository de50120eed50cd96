"""Device-true timing: a stopping rule, a sampler per clock, and the statistics of the samples.

On CUDA each sample is bracketed by CUDA events (device time), optionally over a CUDA-graph
replay so host launch cost drops out; on CPU the same loop reads the host clock and the record
says `emulated`. Before each sample the ranks are aligned (barrier + synchronize), outside the
events; each sample's slowest-rank value and the slowest wall clock are all-reduced (MAX), so
every rank applies the stopping rule to the same numbers and stops on the same sample.

The load the device is under while it is timed is part of the policy, because on a power-capped
GPU it moves the result: a compute-bound forward timed back to back runs at the cap's clocks,
and the same forward with idle gaps between samples runs at full clocks and reads faster (an
H100 at N=16384 B=1024: 0.81 ms back to back at ~1400 MHz, 0.73 ms with gaps at 1980 MHz).
- `max_duty` 1 (the default), sustained: as a layer runs inside a model. A time-based warm-up
  brings clocks and power to their loaded state, each warm sample holds enough forwards to last
  about `sample_s` (in graph mode they are captured unrolled in one graph), and the host work
  between samples is O(1), so the device is busy for nearly all of the measurement.
- `max_duty` < 1, burst: after each sample the sampler idles long enough that the device is busy
  at most that fraction of the time, which keeps a GPU under its power cap (the peak rate).
The record keeps the duty reached and the SM clock after each sample.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from common.schema.timing import Stats
from measure.machine import nvml
from measure.timing.policy import TimingPolicy

CPU_FLUSH_BYTES = 64 << 20
MAX_INNER = 1000  # forwards per warm sample, at most (also the unrolled graph's length)


class Spread:
    """Running mean and variance (Welford): the stopping rule's test costs O(1) per sample, so
    the host gap between samples does not grow with their number."""

    def __init__(self, values=()):
        self.n, self.mean, self._m2 = 0, 0.0, 0.0
        for v in values:
            self.add(v)

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self._m2 += d * (x - self.mean)

    @property
    def rel_std(self) -> float:
        if self.n < 2 or self.mean <= 0:
            return math.inf
        return math.sqrt(self._m2 / (self.n - 1)) / self.mean


@dataclass(frozen=True)
class StoppingRule:
    """nvbench's rule: >= min_samples and >= min_time_s of measured time, then stop once the
    relative standard deviation is under max_noise, or at max_time_s of wall time regardless."""

    min_samples: int
    min_time_s: float
    max_time_s: float
    max_noise: float

    @classmethod
    def of(cls, policy: TimingPolicy) -> StoppingRule:
        return cls(policy.min_samples, policy.min_time_s, policy.max_time_s, policy.max_noise)

    def done(self, spread: Spread, measured_s: float, wall_s: float) -> bool:
        return self.stop_reason(spread, measured_s, wall_s) is not None

    def stop_reason(self, spread: Spread, measured_s: float, wall_s: float) -> str | None:
        """ "time_cap", "noise", or None to go on: decided once, on the numbers of the sample
        that ended the measurement, and kept as data."""
        if wall_s >= self.max_time_s:
            return "time_cap"
        if spread.n < self.min_samples or measured_s < self.min_time_s:
            return None
        return "noise" if spread.rel_std <= self.max_noise else None

    def short(self, n: int, measured_s: float) -> bool:
        """True when the samples fall short of the rule's minimum (a cap stopped them first)."""
        return n < self.min_samples or measured_s < self.min_time_s


def relative_std(samples) -> float:
    if len(samples) < 2:
        return math.inf
    mean = statistics.fmean(samples)
    return statistics.stdev(samples) / mean if mean > 0 else math.inf


def summarize(samples: list, measured_s: float, wall_s: float, **fields) -> Stats:
    """Stats of one measurement: quartiles, spread and the device's duty."""
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return Stats(
        samples=samples,
        median=statistics.median(samples),
        q1=q[0],
        q3=q[2],
        min=min(samples),
        max=max(samples),
        rel_std=relative_std(samples),
        measured_s=measured_s,
        duty=min(1.0, measured_s / wall_s) if wall_s > 0 else 1.0,
        **fields,
    )


class Flusher:
    """Evicts the last-level cache between cold samples by writing a buffer twice its size."""

    def __init__(self, device: torch.device):
        if device.type == "cuda":
            l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 << 20)
            nbytes = 2 * l2
        else:
            nbytes = CPU_FLUSH_BYTES
        self.buf = torch.empty(nbytes // 4, dtype=torch.int32, device=device)

    def __call__(self):
        self.buf.fill_(1)


class Sampler:
    """Times `fn` (one forward) on this rank; all ranks of ctx call it together."""

    def __init__(self, ctx, policy: TimingPolicy):
        self.ctx = ctx
        self.rule = StoppingRule.of(policy)
        self.sample_s = policy.sample_s
        self.warmup_s = policy.warmup_s
        self.max_duty = policy.max_duty
        self.cuda = ctx.device.type == "cuda"
        self.flush = Flusher(ctx.device)
        self.clock = nvml.clock_reader(ctx.device) if self.cuda else None

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.ctx.device)

    def _align(self):
        self.ctx.barrier()
        self._sync()

    def _once(self, run) -> float:
        """Seconds for one call of run(): device time on CUDA, host time on CPU."""
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        run()
        return time.perf_counter() - t0

    def _forwards(self, fn, mode: str, count: int):
        """One callable that runs `count` forwards: a graph with them captured back to back, or
        a plain loop (eager and host modes, where the host cost is part of what is measured)."""
        if mode == "graph":
            return capture_graph(fn, self.ctx.device, count).replay
        if count == 1:
            return fn

        def loop():
            for _ in range(count):
                fn()

        return loop

    def _per_forward(self, fn, mode: str) -> float:
        """A first estimate of one forward's time (slowest rank), to size the samples."""
        one = self._forwards(fn, mode, 1)
        one()
        self._align()
        (t,) = self.ctx.agree_max(min(self._once(one) for _ in range(3)))
        return max(t, 1e-9)

    def _warm_up(self, run) -> float:
        """Calls until warmup_s of wall time has passed on every rank (at least one), back to
        back or, under a burst policy, with its gaps; returns the wall time spent. Ranks agree
        after each chunk, so all stop together."""
        t0 = time.perf_counter()
        chunk = 1
        while True:
            t_chunk = time.perf_counter()
            for _ in range(chunk):
                run()
            self._sync()
            self._rest(time.perf_counter() - t_chunk)
            (wall,) = self.ctx.agree_max(time.perf_counter() - t0)
            if wall >= self.warmup_s:
                return wall
            chunk = min(2 * chunk, 64)

    def _rest(self, busy_s: float) -> None:
        """Under a burst policy, idle long enough that busy_s is at most max_duty of the time."""
        if self.max_duty < 1:
            time.sleep(busy_s * (1 / self.max_duty - 1))

    def measure(self, fn, mode: str, cache: str = "warm") -> Stats:
        """mode: "graph" (replay captured forwards), "eager" (CUDA events) or "host" (CPU)."""
        inner = 1
        if cache == "warm":
            inner = max(1, min(MAX_INNER, round(self.sample_s / self._per_forward(fn, mode))))
        run = self._forwards(fn, mode, inner)
        warmup = self._warm_up(run)
        slowest, own, clocks = [], [], []
        reasons = 0
        spread = Spread()
        measured = 0.0
        t_start = time.perf_counter()
        while True:
            if cache == "cold":
                self.flush()
            self._align()
            t = self._once(run) / inner
            if self.clock is not None:
                mhz, why = self.clock()
                clocks.append(mhz)
                reasons |= why
            own.append(t)
            t_max, wall = self.ctx.agree_max(t, time.perf_counter() - t_start)
            slowest.append(t_max)
            spread.add(t_max)
            measured += t_max * inner
            stopped = self.rule.stop_reason(spread, measured, wall)
            if stopped:
                break
            self._rest(t_max * inner)
        wall = time.perf_counter() - t_start
        own_median = statistics.median(own)
        if self.ctx.world_size > 1:
            medians: list[Any] = [None] * self.ctx.world_size
            dist.all_gather_object(medians, own_median, group=self.ctx.group)
        else:
            medians = [own_median]
        capped_short = stopped == "time_cap" and self.rule.short(len(slowest), measured)
        return summarize(
            slowest,
            measured,
            wall,
            mode=mode,
            cache=cache,
            inner=inner,
            rank_medians=medians,
            stopped_by=stopped,
            capped_before_min_samples=capped_short,
            warmup_s=warmup,
            max_duty=self.max_duty,
            sm_clock_mhz=clocks,
            clock_event_reasons=reasons if self.clock is not None else None,
            throttled=bool(reasons & nvml.THROTTLE_MASK) if self.clock is not None else None,
        )


def capture_graph(fn, device, count: int = 1) -> torch.cuda.CUDAGraph:
    """Capture `count` back-to-back calls of fn in one CUDA graph, after warming fn on a side
    stream (as torch.cuda.graphs asks)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(count):
            fn()
    torch.cuda.synchronize(device)
    return graph
