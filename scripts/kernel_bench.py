"""One GPU, every 2:4 backend side by side (each registered backend that can run here and shows
in reports, kernels/registry.py: cuSPARSELt with its searched alg, the same with B padded to its
fastest batch, F.linear, the Triton half; `--backends` narrows), and the dense N_out x N_in/2
half (what TP runs per rank, the one-GPU proxy's baseline).

For each shape it (a) checks the 2:4 halves against float64 (bound from dtype and K, the
harness's own rule), (b) times each backend in CUDA graphs of back-to-back forwards, median of
samples, warm (one weight, L2-resident where it fits) and cold (forwards rotate over copies of
the weight and X totalling > 3 x L2), in ROUNDS fresh graphs with the backends interleaved
(the median round is the figure, the rounds' spread is printed), (c) prints a table with ms,
% of the byte floor (bytes over the device-copy ceiling measured here) and ratios, and writes
everything to JSON.

Tuning (Triton configs, cuSPARSELt alg search, the padded batch) happens when a half is built,
before any timed region, into caches in a fresh temporary folder so this run tunes on its own.

    python scripts/kernel_bench.py OUT.json            # full: ~5 min on an H100 (three backends)
    python scripts/kernel_bench.py OUT.json --quick    # N 16384 and 32768, B 16 and 64
    python scripts/kernel_bench.py OUT.json --backends triton cslt cslt_padded   # the 2026-11 set
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.errors import CellSpecError  # noqa: E402
from kernels import registry, triton24, tune24  # noqa: E402
from kernels.backends.triton_half import Triton  # noqa: E402
from kernels.masks import make_mask_pair  # noqa: E402
from measure.checks import bounds as checks  # noqa: E402
from measure.machine.environment import cusparselt_runtime_version  # noqa: E402

FULL = [(n, b) for n in (4096, 8192, 16384, 32768) for b in (16, 32, 64, 128, 256, 1024)]
QUICK = [(n, b) for n in (16384, 32768) for b in (16, 64)]
# The auto backend against cuSPARSELt at every batch a layer sees, 1 to 4096 (--sweep-b).
SWEEP_B = [
    (n, b) for n in (8192, 16384) for b in (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
]
# The dense reference: the one-GPU proxy's baseline (the dense half), named as registered.
DENSE = next(p.denominator for p in registry.pairs("H1") if p.proxy)
# The tuner's default search is every candidate; here a core subset keeps the run short (each
# config compiles once per B bucket; N does not recompile): the pointer kernel's two best of the
# first H100 run and its split-K one, and the copy-engine (tma_) variant's winning tiles. The time
# of every config tried is in the JSON and printed after the table. --all-configs searches all.
CORE_CONFIGS = (
    "n64_k128_s1_w4_p4",
    "n64_k128_s2_w4_p4",
    "n128_k256_s1_w8_p3",
    "tma_n128_k128_s1_w4_p4",
    "tma_n128_k128_s2_w4_p4",
    "tma_n128_k256_s1_w8_p3",
    "tma_n128_k256_s1_w8_p2",
    "tma_n128_k128_s1_w4_p3",
    "tma_n128_k128_s2_w4_p3",
    "tma_n256_k128_s1_w8_p3",
    "tma_n256_k128_s2_w8_p3",
    "tma_n256_k128_s1_w8_p2",
    "tma_n256_k128_s2_w8_p2",
    "tma_n64_k256_s1_w4_p4",
    "tma_n64_k256_s2_w4_p4",
    "n64_k128_s1_w4_p2",
    "n128_k128_s1_w8_p2",
    "tma_n128_k128_s1_w8_p2",
)
SAMPLES = 15
# Each backend is timed in ROUNDS fresh graphs, the backends of a shape interleaved round by
# round; the figure is the median round. Why: on an H100 one graph of the same Triton kernel
# timed 0.50 ms and the next three 0.43 ms (N=32768 B=16, same buffers, same process), so one
# graph per backend can publish a slow mode; the rounds' spread is kept in the JSON.
ROUNDS = 3
GRAPH_MS = 2.0  # forwards per graph: enough to fill about this long


@dataclass
class BackendResult:
    backend: str
    backend_ran: str | None = None  # the kernel that ran (the auto backend names its pick)
    warm_ms: float | None = None
    cold_ms: float | None = None
    cold_copies: int = 1
    floor_ms: float | None = None
    pct_floor_warm: float | None = None
    pct_floor_cold: float | None = None
    alg_id: int | str | None = None
    alg_source: str | None = None
    padded_batch: int | None = None
    errors: dict | None = None
    tuning_ms: dict = field(default_factory=dict)
    not_run: str | None = None
    warm_rounds_ms: list = field(default_factory=list)  # one graph median a round, see ROUNDS
    cold_rounds_ms: list = field(default_factory=list)


def copy_ceiling_tb_s() -> float:
    """Device-to-device copy of 1 GiB, bytes read + written over the median time."""
    src = torch.empty(1 << 29, dtype=torch.float16, device="cuda").normal_()
    dst = torch.empty_like(src)
    ms = tune24.median_ms(lambda: dst.copy_(src), rep_ms=200)
    return 2 * src.numel() * 2 / (ms * 1e-3) / 1e12


def graph_ms(forwards: list, samples: int = SAMPLES) -> float:
    """Median device ms of one forward: CUDA graphs of back-to-back forwards (cycling through
    `forwards`, one per weight copy), each replay timed with events."""
    for f in forwards:
        f()  # compile / first-call costs stay out of the graph
    torch.cuda.synchronize()
    t0 = torch.cuda.Event(enable_timing=True)
    t1 = torch.cuda.Event(enable_timing=True)
    t0.record()
    for f in forwards:
        f()
    t1.record()
    torch.cuda.synchronize()
    per = max(t0.elapsed_time(t1) / len(forwards), 1e-3)
    reps = max(len(forwards), int(GRAPH_MS / per) // len(forwards) * len(forwards))
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for f in forwards:
            f()
        stream.synchronize()
        with torch.cuda.graph(graph, stream=stream):
            for i in range(reps):
                forwards[i % len(forwards)]()
    torch.cuda.current_stream().wait_stream(stream)
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(samples):
        t0.record()
        graph.replay()
        t1.record()
        t1.synchronize()
        times.append(t0.elapsed_time(t1) / reps)
    times.sort()
    return times[len(times) // 2]


def floor_ms(nbytes: int, ceiling: float) -> float:
    return nbytes / (ceiling * 1e12) * 1e3


def run_shape(n: int, batch: int, args, ceiling: float, l2: int) -> dict:
    dt = torch.bfloat16
    g = torch.Generator(device="cuda").manual_seed(n * 7 + batch)
    w = torch.randn(n, n, device="cuda", generator=g, dtype=dt)
    wm = w * make_mask_pair("random_2of4", w, g)[0]
    w_half = w[:, : n // 2].contiguous()
    del w
    x = torch.randn(batch, n, device="cuda", generator=g, dtype=dt)
    io_bytes = 2 * batch * n * 2  # X read, Y written
    sparse_bytes = n * n * 2 * 9 // 16 + io_bytes
    dense_bytes = n * (n // 2) * 2 + batch * (n // 2) * 2 + batch * n * 2
    copies = max(1, -(-3 * l2 // sparse_bytes)) if sparse_bytes < 3 * l2 else 1
    shape = {"N": n, "B": batch, "weights_fit_l2": n * n * 2 * 9 // 16 < l2, "results": {}}
    ref = absref = None
    timed = []  # (result, forwards) of the backends that run, timed together below
    for backend in (*args.backends, DENSE):
        r = BackendResult(backend)
        shape["results"][backend] = r
        impl = registry.backend(backend) if backend != DENSE else None
        if impl is not None:
            try:
                impl.check_shape(n, n, batch, dt, f"N={n} B={batch}")
            except CellSpecError as e:
                r.not_run = str(e)
                continue
        if isinstance(impl, Triton):  # tuned here on a narrowed search, built from the cache
            from kernels.compressed24 import compress

            names = None if args.all_configs else CORE_CONFIGS
            configs = None if names is None else tuple(triton24.CONFIG_BY_NAME[c] for c in names)
            where = f"N={n} B={batch}"
            try:
                _, _, r.tuning_ms = tune24.choose(compress(wm), None, x, where, configs)
            except triton.runtime.errors.OutOfResources as e:
                r.not_run = str(e)  # no config of the search fits this B: the table says so
                continue
        if impl is None:
            xs = [x[:, : n // 2].contiguous()]
            ws = [w_half] + [w_half.clone() for _ in range(copies - 1)]
            outs = [torch.empty(batch, n, device="cuda", dtype=dt) for _ in range(copies)]
            xs = xs * copies
            fwd = [partial(torch.mm, xs[i], ws[i].t(), out=outs[i]) for i in range(copies)]
            nbytes = dense_bytes
        else:
            where = f"kernel_bench N={n} B={batch}"
            halves = [impl.build(wm, None, x, where) for _ in range(copies)]
            rec = halves[0].record
            r.backend_ran = rec.backend
            r.alg_id, r.alg_source, r.padded_batch = rec.alg_id, rec.alg_source, rec.padded_batch
            xs = [x] + [x.clone() for _ in range(copies - 1)]
            outs = [torch.empty(batch, n, device="cuda", dtype=dt) for _ in range(copies)]
            fwd = [partial(halves[i].mm_into, xs[i], outs[i]) for i in range(copies)]
            nbytes = sparse_bytes
            if ref is None:
                ref, absref = checks.reference(x, wm, None)
            outs[0].fill_(float("nan"))
            fwd[0]()
            torch.cuda.synchronize()
            r.errors = checks.error_figures(outs[0], ref, absref, checks.bounds(dt, n, None, 1))
            checks.assert_correct(r.errors, f"kernel_bench N={n} B={batch} {backend}")
        r.cold_copies = copies
        r.floor_ms = floor_ms(nbytes, ceiling)
        timed.append((r, fwd))
    for _ in range(ROUNDS):
        for r, fwd in timed:
            r.warm_rounds_ms.append(graph_ms(fwd[:1]))
            if copies > 1:
                r.cold_rounds_ms.append(graph_ms(fwd))
    for r, _ in timed:
        r.warm_ms = statistics.median(r.warm_rounds_ms)
        r.cold_ms = statistics.median(r.cold_rounds_ms) if copies > 1 else r.warm_ms
        r.pct_floor_warm = 100 * r.floor_ms / r.warm_ms
        r.pct_floor_cold = 100 * r.floor_ms / r.cold_ms
    shape["results"] = {k: asdict(v) for k, v in shape["results"].items()}
    return shape


def ratio(a, b):
    return f"{a / b:5.2f}" if a and b else "  n/a"


def print_table(shapes: list[dict]) -> None:
    head = f"{'N':>6} {'B':>5} {'backend':<12} {'warm ms':>9} {'cold ms':>9} {'floor':>8}"
    print(head + f" {'%floor':>7} {'spread':>7}  alg / config / padded B")
    for s in shapes:
        for name, r in s["results"].items():
            if r["not_run"]:
                print(f"{s['N']:>6} {s['B']:>5} {name:<12} not run: {r['not_run'][:70]}")
                continue
            alg = (
                r["alg_id"] if r["padded_batch"] is None else f"{r['alg_id']} @B{r['padded_batch']}"
            )
            rounds = r["cold_rounds_ms"] or r["warm_rounds_ms"]
            spread = 100 * (max(rounds) - min(rounds)) / r["cold_ms"]  # of the cold figure's rounds
            print(
                f"{s['N']:>6} {s['B']:>5} {name:<12} {r['warm_ms']:9.4f} {r['cold_ms']:9.4f} "
                f"{r['floor_ms']:8.4f} {r['pct_floor_cold']:6.1f}% {spread:6.1f}%  {alg}"
            )
    sparse = [k for k in shapes[0]["results"] if k != DENSE] if shapes else []
    print(f"\nratios (cold ms) to {DENSE} (byte floor 1.125): " + ", ".join(sparse))
    for s in shapes:
        t = {k: v["cold_ms"] for k, v in s["results"].items()}
        l2 = " (weights fit in L2: warm is L2-resident)" if s["weights_fit_l2"] else ""
        ratios = " ".join(ratio(t[k], t[DENSE]) for k in sparse)
        print(f"N={s['N']:>5} B={s['B']:>4}: {ratios}{l2}")
    auto = registry.default_backend("cuda")  # the backend that picks per shape
    if auto in sparse:
        others = [k for k in sparse if k != auto]
        print(f"\nratios (cold ms) to {auto} (>= 1: {auto} is not slower): " + ", ".join(others))
        for s in shapes:
            t = {k: v["cold_ms"] for k, v in s["results"].items()}
            picked = s["results"][auto]["backend_ran"]
            ratios = " ".join(ratio(t[k], t[auto]) for k in others)
            print(f"N={s['N']:>5} B={s['B']:>4}: {ratios}  ({auto} ran {picked})")
    for k in sparse:
        tuned = [s for s in shapes if s["results"][k]["tuning_ms"]]
        if not tuned:
            continue
        print(f"\n{k} configs the tuner timed (do_bench median ms, L2 flushed), fastest first")
        for s in shapes:
            tried = sorted(s["results"][k]["tuning_ms"].items(), key=lambda kv: kv[1])
            row = "  ".join(f"{name} {ms:.4f}" for name, ms in tried)
            print(f"N={s['N']:>5} B={s['B']:>4}: {row or 'from cache'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_out", type=Path)
    parser.add_argument("--quick", action="store_true", help="N 16384 and 32768, B 16 and 64 only")
    parser.add_argument(
        "--sweep-b", action="store_true", help="N 8192 and 16384 at B 1..4096 (auto against cslt)"
    )
    parser.add_argument("--all-configs", action="store_true", help="tune over every config")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=registry.backend_names(),
        help="2:4 backends to time (default: every one that runs here and shows in reports)",
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("kernel_bench needs a CUDA GPU")
    here = torch.device("cuda")
    if args.backends is None:
        specs = registry.backend_specs()
        runs = [b for b in specs if registry.backend(b.name).available(here) is None]
        args.backends = [b.name for b in runs if b.shown]
    for name in args.backends:
        reason = registry.backend(name).available(here)
        if reason:
            sys.exit(f"kernel_bench: {reason}")
    cache_dir = tempfile.mkdtemp(prefix="kernel_bench_")
    os.environ["BS_TRITON24_CACHE"] = f"{cache_dir}/triton24.json"
    os.environ["BS_CSLT_ALG_CACHE"] = f"{cache_dir}/cslt.json"
    os.environ["BS_SM90_24_CACHE"] = f"{cache_dir}/sm90_24.json"
    os.environ["BS_AUTO_CACHE"] = f"{cache_dir}/auto.json"
    start = time.time()
    props = torch.cuda.get_device_properties(0)
    ceiling = copy_ceiling_tb_s()

    meta = {
        "gpu": props.name,
        "sms": props.multi_processor_count,
        "l2_bytes": props.L2_cache_size,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton.__version__,
        "cusparselt": torch.backends.cusparselt.version(),
        "cusparselt_runtime": cusparselt_runtime_version(),
        "copy_ceiling_tb_s": ceiling,
        "dtype": "bf16",
        "mask": "random_2of4",
        "timing": f"CUDA graph of back-to-back forwards (~{GRAPH_MS} ms), median of {SAMPLES}",
    }
    print(f"{props.name}: copy ceiling {ceiling:.2f} TB/s, L2 {props.L2_cache_size >> 20} MiB")
    shapes = []
    for n, batch in QUICK if args.quick else SWEEP_B if args.sweep_b else FULL:
        t = time.time()
        shapes.append(run_shape(n, batch, args, ceiling, props.L2_cache_size))
        print(f"  N={n} B={batch} done in {time.time() - t:.1f} s", flush=True)
        torch.cuda.empty_cache()
        meta["seconds"] = time.time() - start
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"meta": meta, "shapes": shapes}, indent=1))
    print_table(shapes)
    print(f"\ntotal {time.time() - start:.0f} s; JSON {args.json_out}")


if __name__ == "__main__":
    main()
