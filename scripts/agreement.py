"""Cross-check the harness's timer against triton.testing on the same callables, on one GPU.

For the first summary baseline (dense_single) and the one-GPU Block-Shock half (the H1 proxy's
numerator), both named by kernels/registry.py, at N in {8192, 16384}, B in {64, 1024}: the harness's
graph-mode median under the sustained policy (twice, for repeatability) beside, in the same
process,
- triton.testing.do_bench on the callable the harness replays (one forward captured in a graph),
- triton.testing.do_bench_cudagraph on the forward itself,
and then the harness's burst policy (max_duty 0.4) twice, with the spread of each, and its cold
mode (L2 flushed before each single-forward sample), which is what do_bench times (it clears a
256 MB buffer before each rep and brackets each launch with its own events).
With `--trace`, first a trace from an idle card: per-sample time, SM clock and power over 4 s
of back-to-back 10 ms samples of the dense baseline at N=16384 B=1024 (how the clock settles
and swings under the power cap). Writes JSON to argv[1]. Run from the repo root with PYTHONPATH=.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch
import triton.testing

from common.cell import CellSpec
from kernels import registry
from measure.cells.build import build
from measure.machine import nvml
from measure.ranks.context import RankContext
from measure.timing.policy import TimingPolicy
from measure.timing.sampler import Sampler, capture_graph

POLICY = TimingPolicy(min_samples=10, min_time_s=0.5, max_time_s=3, max_noise=0.005)
DENSE = registry.baselines()[0]
HALF = next(p.numerator for p in registry.pairs("H1") if p.proxy)
BURST_DUTY = 0.4
DEVICE = torch.device("cuda", 0)


def cell(method: str, n: int, b: int) -> CellSpec:
    mask = None if registry.spec(method).mask == "none" else "random_2of4"
    return CellSpec("phase1", method, n, n, b, "bf16", mask, "gaussian", 1, False)


def clock_and_power():
    h = nvml.handle(DEVICE)
    return nvml.sm_clock_reader(DEVICE)(), nvml.power_w(h)


def event_ms(run, count: int = 1) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(count):
        run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def trace(ctx, seconds: float = 4.0) -> list[dict]:
    """From idle: back-to-back ~10 ms samples, each with the clock and power after it."""
    built = build(ctx, cell(DENSE, 16384, 1024), 1, registry.AUTO)
    layer, x = built.layer, built.x
    xl = layer.local_input(x)
    one = capture_graph(lambda: layer.forward(xl), DEVICE)
    per = event_ms(one.replay, 3) / 3
    inner = max(1, round(10 / per))
    graph = capture_graph(lambda: layer.forward(xl), DEVICE, inner)
    torch.cuda.synchronize()
    time.sleep(3)  # let the card cool to idle
    rows, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ms = event_ms(graph.replay) / inner
        clock, power = clock_and_power()
        rows.append({"t_s": time.perf_counter() - t0, "ms": ms, "sm_mhz": clock, "w": power})
    return rows


def time_cell(ctx, spec: CellSpec) -> dict:
    built = build(ctx, spec, 1, registry.AUTO)
    layer, x = built.layer, built.x
    xl = layer.local_input(x)

    def fwd():
        return layer.forward(xl)

    sustained = Sampler(ctx, POLICY)
    first = sustained.measure(fwd, "graph")
    one = capture_graph(fwd, DEVICE)
    tb = triton.testing.do_bench(one.replay, warmup=100, rep=500, return_mode="median")
    clock_tb = clock_and_power()[0]
    tg = triton.testing.do_bench_cudagraph(fwd, rep=500, return_mode="median")
    clock_tg = clock_and_power()[0]
    second = sustained.measure(fwd, "graph")
    burst = Sampler(ctx, POLICY.updated(sample_s=0.002, warmup_s=0.2, max_duty=BURST_DUTY))
    b1, b2 = burst.measure(fwd, "graph"), burst.measure(fwd, "graph")
    cold = sustained.measure(fwd, "graph", "cold")
    h1, h2 = first.median * 1e3, second.median * 1e3
    row = {"method": spec.method, "N": spec.N, "B": spec.B, "alg_id": layer.kernel_record().alg_id}
    for name, st in (
        ("sustained", first),
        ("sustained_again", second),
        ("burst", b1),
        ("burst_again", b2),
    ):
        row.update(
            {
                f"{name}_ms": st.median * 1e3,
                f"{name}_rel_std": st.rel_std,
                f"{name}_duty": st.duty,
                f"{name}_inner": st.inner,
                f"{name}_samples": len(st.samples),
                f"{name}_stopped_by": st.stopped_by,
                f"{name}_sm_mhz": statistics.median(st.sm_clock_mhz),
                f"{name}_sm_mhz_min": min(st.sm_clock_mhz),
            }
        )
    row.update(
        {
            "do_bench_graph_ms": tb,
            "do_bench_sm_mhz": clock_tb,
            "do_bench_cudagraph_ms": tg,
            "do_bench_cudagraph_sm_mhz": clock_tg,
            "vs_do_bench": h1 / tb - 1,
            "vs_do_bench_cudagraph": h1 / tg - 1,
            "repeat_diff": h2 / h1 - 1,
            "burst_repeat_diff": b2.median / b1.median - 1,
            "burst_vs_sustained": b1.median * 1e3 / h1 - 1,
            "cold_ms": cold.median * 1e3,
            "cold_vs_do_bench": cold.median * 1e3 / tb - 1,
        }
    )
    return row


def main(out_path: str, with_trace: bool) -> None:
    torch.cuda.set_device(DEVICE)
    ctx = RankContext(0, 1, DEVICE, "none", None, False)
    doc = {"trace": trace(ctx) if with_trace else [], "cells": []}
    torch.cuda.empty_cache()
    tr = doc["trace"]
    for lo, hi in ((0, 0.1), (0.1, 0.5), (0.5, 1), (1, 2), (2, 4)):
        part = [r for r in tr if lo <= r["t_s"] < hi]
        if part:
            print(
                f"trace {lo:3.1f}-{hi:3.1f} s: {statistics.median(r['ms'] for r in part):.4f} ms "
                f"{statistics.median(r['sm_mhz'] for r in part):.0f} MHz "
                f"{statistics.median(r['w'] for r in part):.0f} W",
                flush=True,
            )
    for n in (8192, 16384):
        for b in (64, 1024):
            for method in (DENSE, HALF):
                r = time_cell(ctx, cell(method, n, b))
                doc["cells"].append(r)
                with open(out_path, "w") as f:  # kept after every cell: a timeout loses nothing
                    json.dump(doc, f, indent=1)
                print(
                    f"{method:17s} N={n:6d} B={b:5d} sustained {r['sustained_ms']:.4f} "
                    f"again {r['sustained_again_ms']:.4f} ({r['sustained_sm_mhz']:.0f} MHz "
                    f"min {r['sustained_sm_mhz_min']:.0f}, duty {r['sustained_duty']:.3f}, "
                    f"noise {r['sustained_rel_std']:.2%}/{r['sustained_again_rel_std']:.2%}) "
                    f"do_bench {r['do_bench_graph_ms']:.4f} cudagraph "
                    f"{r['do_bench_cudagraph_ms']:.4f} d={r['vs_do_bench']:+.2%}/"
                    f"{r['vs_do_bench_cudagraph']:+.2%} rep={r['repeat_diff']:+.2%} | burst "
                    f"{r['burst_ms']:.4f} again {r['burst_again_ms']:.4f} "
                    f"({r['burst_sm_mhz']:.0f} MHz min {r['burst_sm_mhz_min']:.0f}, duty "
                    f"{r['burst_duty']:.3f}, noise {r['burst_rel_std']:.2%}/"
                    f"{r['burst_again_rel_std']:.2%}) rep={r['burst_repeat_diff']:+.2%} | cold "
                    f"{r['cold_ms']:.4f} vs do_bench {r['cold_vs_do_bench']:+.2%}",
                    flush=True,
                )
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1], "--trace" in sys.argv[2:])
