"""Cross-check the harness's timer against triton.testing on the same callables, on one GPU.

For dense_single and one Block-Shock half at N in {8192, 16384}, B in {64, 1024}: the harness's
graph-mode median (twice, for repeatability) beside triton.testing.do_bench and
do_bench_cudagraph medians of the same forward, in the same process. Writes JSON to argv[1].
"""

from __future__ import annotations

import json
import sys

import torch
import triton.testing

from measure.matrix import CellSpec
from measure.ranks import RankContext
from measure.runner import build
from measure.timing import Sampler, StoppingRule

RULE = StoppingRule(min_samples=10, min_time_s=0.5, max_time_s=3, max_noise=0.005)


def time_cell(ctx, cell: CellSpec) -> dict:
    """Harness graph median twice, eager once, and triton's two medians of one forward."""
    layer, x, _, _ = build(ctx, cell, 1, "auto")
    xl = layer.local_input(x)

    def fwd():
        return layer.forward(xl)

    s = Sampler(ctx, RULE)
    first, second = s.measure(fwd, "graph"), s.measure(fwd, "graph")
    eager = s.measure(fwd, "eager")
    tb = triton.testing.do_bench(fwd, warmup=100, rep=500, return_mode="median")
    tg = triton.testing.do_bench_cudagraph(fwd, rep=500, return_mode="median")
    return {
        "method": cell.method,
        "N": cell.N,
        "B": cell.B,
        "alg_id": layer.alg_id,
        "graph_median_ms": first.median * 1e3,
        "graph_again_ms": second.median * 1e3,
        "graph_rel_std": first.rel_std,
        "graph_again_rel_std": second.rel_std,
        "eager_median_ms": eager.median * 1e3,
        "do_bench_ms": tb,
        "do_bench_cudagraph_ms": tg,
        "vs_do_bench": first.median * 1e3 / tb - 1,
        "vs_do_bench_cudagraph": first.median * 1e3 / tg - 1,
        "repeat_diff": second.median / first.median - 1,
    }


def main(out_path: str) -> None:
    torch.cuda.set_device(0)
    ctx = RankContext(0, 1, torch.device("cuda", 0), "none", None, False)
    rows = []
    for n in (8192, 16384):
        for b in (64, 1024):
            for method, mask in (
                ("dense_single", None),
                ("block_shock_half", "random_2of4"),
                ("dense_half", None),
            ):
                cell = CellSpec("phase1", method, n, n, b, "bf16", mask, "gaussian", 1, False)
                r = time_cell(ctx, cell)
                rows.append(r)
                print(
                    f"{method:17s} N={n:6d} B={b:5d} graph {r['graph_median_ms']:.4f} "
                    f"again {r['graph_again_ms']:.4f} eager {r['eager_median_ms']:.4f} "
                    f"do_bench {r['do_bench_ms']:.4f} cudagraph {r['do_bench_cudagraph_ms']:.4f} "
                    f"d={r['vs_do_bench']:+.2%}/{r['vs_do_bench_cudagraph']:+.2%} "
                    f"rep={r['repeat_diff']:+.2%} noise={r['graph_rel_std']:.2%}",
                    flush=True,
                )
                torch.cuda.empty_cache()
    with open(out_path, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
