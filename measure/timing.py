"""Device-true timing: a stopping rule, a sampler per clock, and the statistics of the samples.

On CUDA each sample is bracketed by CUDA events (device time), optionally over a CUDA-graph
replay so host launch cost drops out; on CPU the same loop reads the host clock and the record
says `emulated`. Before each sample the ranks are aligned (barrier + synchronize), outside the
events; each sample's slowest-rank value and the slowest wall clock are all-reduced (MAX), so
every rank applies the stopping rule to the same numbers and stops on the same sample.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist

CPU_FLUSH_BYTES = 64 << 20
TARGET_SAMPLE_S = 1e-3  # each warm sample holds enough forwards to last about this long
MAX_INNER = 100


@dataclass(frozen=True)
class StoppingRule:
    """nvbench's rule: >= min_samples and >= min_time_s of measured time, then stop once the
    relative standard deviation is under max_noise, or at max_time_s of wall time regardless."""

    min_samples: int = 10
    min_time_s: float = 0.5
    max_time_s: float = 15.0
    max_noise: float = 0.005

    def done(self, samples: list[float], measured_s: float, wall_s: float) -> bool:
        if wall_s >= self.max_time_s:
            return True
        if len(samples) < self.min_samples or measured_s < self.min_time_s:
            return False
        return relative_std(samples) <= self.max_noise


def relative_std(samples) -> float:
    if len(samples) < 2:
        return math.inf
    mean = statistics.fmean(samples)
    return statistics.stdev(samples) / mean if mean > 0 else math.inf


@dataclass
class Stats:
    """Per-forward seconds of one measurement: what pytest-benchmark and the records carry."""

    mode: str  # "graph", "eager" or "host"
    cache: str  # "warm" or "cold"
    inner: int  # forwards per sample
    samples: list  # slowest-rank seconds per forward, one per sample
    rank_medians: list  # each rank's own median
    median: float
    q1: float
    q3: float
    min: float
    max: float
    rel_std: float
    measured_s: float
    stopped_by: str

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(mode, cache, inner, slowest, own, measured_s, rule: StoppingRule, wall_s) -> Stats:
    q = statistics.quantiles(slowest, n=4) if len(slowest) > 1 else [slowest[0]] * 3
    rel = relative_std(slowest)
    if wall_s >= rule.max_time_s:
        stopped = f"time cap {rule.max_time_s:g} s (noise {rel:.2%})"
    else:
        stopped = f"noise {rel:.2%} <= {rule.max_noise:.2%}"
    return Stats(
        mode,
        cache,
        inner,
        slowest,
        own,
        statistics.median(slowest),
        q[0],
        q[2],
        min(slowest),
        max(slowest),
        rel,
        measured_s,
        stopped,
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

    def __init__(self, ctx, rule: StoppingRule):
        self.ctx = ctx
        self.rule = rule
        self.cuda = ctx.device.type == "cuda"
        self.flush = Flusher(ctx.device)
        self._max = torch.zeros(2, dtype=torch.float64, device=ctx.device)

    def _agree(self, *values: float) -> list[float]:
        """Each value's maximum over ranks, so every rank takes the same decisions."""
        if self.ctx.world_size == 1:
            return list(values)
        self._max[: len(values)] = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(self._max, op=dist.ReduceOp.MAX, group=self.ctx.group)
        return self._max[: len(values)].tolist()

    def _align(self):
        self.ctx.barrier()
        if self.cuda:
            torch.cuda.synchronize(self.ctx.device)

    def _once(self, run, inner: int) -> float:
        """Seconds for `inner` calls of run(), device time on CUDA, host time on CPU."""
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                run()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        for _ in range(inner):
            run()
        return time.perf_counter() - t0

    def _inner_count(self, run) -> int:
        self._align()
        (est,) = self._agree(self._once(run, 1))
        return max(1, min(MAX_INNER, int(TARGET_SAMPLE_S / max(est, 1e-9))))

    def measure(self, fn, mode: str, cache: str = "warm", warmup: int = 3) -> Stats:
        """mode: "graph" (replay a captured forward), "eager" (CUDA events) or "host" (CPU)."""
        run = fn
        if mode == "graph":
            graph = capture_graph(fn, self.ctx.device)
            run = graph.replay
        for _ in range(warmup):
            run()
        inner = 1 if cache == "cold" else self._inner_count(run)
        slowest, own = [], []
        measured = 0.0
        t_start = time.perf_counter()
        while True:
            if cache == "cold":
                self.flush()
            self._align()
            t = self._once(run, inner) / inner
            own.append(t)
            t_max, wall = self._agree(t, time.perf_counter() - t_start)
            slowest.append(t_max)
            measured += t_max * inner
            if self.rule.done(slowest, measured, wall):
                break
        own_median = statistics.median(own)
        if self.ctx.world_size > 1:
            medians = [None] * self.ctx.world_size
            dist.all_gather_object(medians, own_median, group=self.ctx.group)
        else:
            medians = [own_median]
        return summarize(
            mode, cache, inner, slowest, medians, measured, self.rule, time.perf_counter() - t_start
        )


def capture_graph(fn, device) -> torch.cuda.CUDAGraph:
    """Capture one call of fn in a CUDA graph after warming it on a side stream."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    torch.cuda.synchronize(device)
    return graph
