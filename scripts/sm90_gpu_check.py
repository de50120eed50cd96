"""The sm90 2:4 backend on a Hopper GPU in one call: build, then check bit for bit. Its timing
beside every other backend is scripts/kernel_bench.py's (the backend is registered there).

1. build: the CUTLASS extension just in time (kernels/sm90_24.load), build seconds printed, the
   built configurations listed (stages, shared memory, threads). A failed build prints its
   reason and exits 2: nothing else can run.
2. checks (bf16 and fp16):
   - the converter (Compressed24 -> CUTLASS values + E) against CUTLASS's own device compressor,
     bit for bit, square and rectangular; with sparse groups (where the two write different but
     equivalent codes) the decoded weights must agree, and the GEMM fed CUTLASS's compressed
     operands must equal the GEMM fed ours, bit for bit;
   - every variant the tuner could pick at N 1024 / 4096 and B 1..1024: float error against
     float64 under the harness's bound (measure/checks.py; bias on for every other B), and the
     exact integer probe (measure/probe.py: +-1 weights on a random 2:4 mask, small-integer X,
     every partial sum exact in fp32: the output must equal float64 bit for bit);
   - planted metadata errors that the probe must catch (one group's kept weight moved to
     another column through its E code; one group's two kept weights swapped), then the weight
     restored by recompress and the probe passing again;
   - the transposed copy W_g^T built from a w.t() view (transposable mask), N_out != N_in too;
   - recompress into the same buffers (new values and a new mask) and replay a CUDA graph
     captured before it: the replay must equal float64 of the new weight (dp and stream-K).
Any failure in one shape or check is recorded and the rest goes on; the summary at the end says
what failed. JSON (every figure) goes to --json, else $OUT/sm90_gpu_check.json when $OUT is set,
rewritten after every step so a timeout keeps what was done.

    python scripts/sm90_gpu_check.py                 # build and every check
    python scripts/sm90_gpu_check.py --build-only    # diagnose a build in one short call
    python scripts/sm90_gpu_check.py --quick         # fewer shapes
    python scripts/sm90_gpu_check.py --configs coop_m128_n16_k128_c1x1,pingpong_m64_n16_k128_c1x1

Exit status: 0 all passed, 1 a check or shape failed, 2 the build failed (or no Hopper GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from kernels import sm90_24  # noqa: E402
from kernels.compressed24 import (  # noqa: E402
    Compressed24,
    compress,
    decompress,
)
from kernels.masks import make_mask_pair  # noqa: E402
from measure.checks import bounds as checks  # noqa: E402
from measure.checks import probe  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CHECK_N = (1024, 4096)
CHECK_B = (1, 8, 16, 32, 40, 64, 128, 256, 1024)
BENCH_N = (4096, 8192, 16384, 32768)
BENCH_B = (16, 32, 64, 128, 256, 1024)
QUICK_CHECK_N, QUICK_CHECK_B = (1024,), (1, 16, 64, 256)
QUICK_BENCH_N, QUICK_BENCH_B = (16384, 32768), (16, 64, 256)
COMPRESSOR_SHAPES = ((1024, 1024), (4096, 4096), (1024, 4096), (4096, 1024))
TRANSPOSED_SHAPES = ((1024, 1024, 16), (1024, 4096, 64), (4096, 1024, 8))  # W: N_out x N_in, B


class Report:
    """Everything the run found, written to JSON after every step."""

    def __init__(self, path: Path | None):
        self.path = path
        self.doc: dict = {"meta": {}, "build": {}, "checks": [], "failures": []}
        self.start = time.time()

    def fail(self, what: str, err: BaseException | str) -> None:
        text = err if isinstance(err, str) else "".join(traceback.format_exception(err))[-3000:]
        self.doc["failures"].append({"what": what, "error": text})
        first = text.strip().splitlines()[-1] if text.strip() else "?"
        print(f"  FAILED {what}: {first[:300]}", flush=True)

    def save(self) -> None:
        self.doc["meta"]["seconds"] = time.time() - self.start
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.doc, indent=1, default=str))


def log(msg: str) -> None:
    print(msg, flush=True)


# The checks take their device from here; tests/test_sm90_24.py runs them on the CPU against an
# emulated kernel to check this script's own logic (probes, plants, records) before GPU time.
DEVICE = "cuda"


def sm_count() -> int:
    if DEVICE == "cpu":
        return 132
    return torch.cuda.get_device_properties(0).multi_processor_count


def sync() -> None:
    if DEVICE != "cpu":
        torch.cuda.synchronize()


# -------------------------------------------------------------------------------- build


def build(report: Report, verbose: bool) -> bool:
    props = torch.cuda.get_device_properties(0)
    report.doc["meta"].update(
        gpu=props.name,
        sms=props.multi_processor_count,
        l2_bytes=props.L2_cache_size,
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cusparselt=torch.backends.cusparselt.version(),
        cutlass_include=str(sm90_24.cutlass_include()[0]),
        nvcc=str(sm90_24.find_nvcc()),
    )
    log(f"{props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}")
    log(f"CUTLASS: {report.doc['meta']['cutlass_include']}; nvcc: {report.doc['meta']['nvcc']}")
    t = time.time()
    try:
        ext = sm90_24.load(verbose)
    except Exception as e:
        report.doc["build"] = {"ok": False, "seconds": time.time() - t}
        report.fail("build", e)
        lines = str(e).splitlines()
        errors = [ln for ln in lines if "error" in ln.lower()][:40]
        log("build output, its error lines first, then its tail:")
        log("\n".join(errors + ["..."] + lines[-40:]))
        ok, why = sm90_24.available()
        log(f"build failed after {time.time() - t:.0f} s; available() says: {why[:300]}")
        return False
    seconds = time.time() - t
    ok, why = sm90_24.available()
    configs = ext.configs()
    report.doc["build"] = {"ok": ok, "seconds": seconds, "reason": why, "configs": configs}
    log(f"build: {seconds:.0f} s ({why})")
    log(f"  {'configuration':<28} {'dtype':<5} {'stages':>6} {'smem KB':>8} {'threads':>7}")
    for c in configs:
        log(
            f"  {c['name']:<28} {c['dtype']:<5} {c['stages']:>6} {c['smem_bytes'] / 1024:>8.1f} "
            f"{c['threads']:>7}"
        )
    return ok


# ------------------------------------------------------------------------------- checks


def random_half(n_out, n_in, dtype, gen, mask="random_2of4", nonzero=True):
    """A random masked weight and its mask pair; `nonzero`: no kept weight is exactly zero."""
    w = torch.randn(n_out, n_in, device=DEVICE, generator=gen).to(dtype)
    if nonzero:
        w = torch.where(w == 0, torch.ones_like(w), w)
    masks = make_mask_pair(mask, w, gen)
    return w * masks[0], masks


def check_compressor(report: Report, dtype_name: str, gen) -> None:
    """Our converter against CUTLASS's device compressor, and the GEMM on either's operands."""
    ext = sm90_24.load()
    dt = DTYPES[dtype_name]
    for n_out, n_in in COMPRESSOR_SHAPES:
        what = f"compressor {dtype_name} {n_out}x{n_in}"
        try:
            wm, _ = random_half(n_out, n_in, dt, gen)
            ours = compress(wm)
            e_ours = sm90_24.to_cutlass_meta(ours.meta)
            v_cut, e_cut = ext.cutlass_compress(wm)
            same_v = torch.equal(ours.values.view(torch.int16), v_cut.view(torch.int16))
            same_e = torch.equal(e_ours, e_cut)
            # sparse groups: codes may differ, the decoded weights may not
            sparse = wm.clone()
            sparse[:, ::8] = 0
            sparse[::3, 1::8] = 0
            v_s, e_s = ext.cutlass_compress(sparse)
            decoded = decompress(Compressed24(v_s, sm90_24.from_cutlass_meta(e_s, n_out, n_in)))
            same_decoded = torch.equal(decoded, sparse)
            ok = same_v and same_e and same_decoded
            rec = {
                "check": "compressor",
                "dtype": dtype_name,
                "shape": [n_out, n_in],
                "values_equal": same_v,
                "meta_equal": same_e,
                "meta_bytes_differing": int((e_ours != e_cut).sum()),
                "sparse_groups_decode_equal": same_decoded,
                "ok": ok,
            }
            if (n_out, n_in) == COMPRESSOR_SHAPES[0]:  # the GEMM on CUTLASS's operands == ours
                rec["gemm_on_cutlass_operands_equal"] = gemm_operands_agree(ext, wm, v_cut, e_cut)
                ok = ok and rec["gemm_on_cutlass_operands_equal"]
                rec["ok"] = ok
            report.doc["checks"].append(rec)
            log(f"  {what}: {'ok' if ok else 'MISMATCH'} {rec}")
            if not ok:
                report.fail(what, f"converter disagrees with CUTLASS's compressor: {rec}")
        except Exception as e:
            report.fail(what, e)


def gemm_operands_agree(ext, wm, values, meta) -> bool:
    x = torch.randn(16, wm.shape[1], device=DEVICE, dtype=wm.dtype)
    sms = sm_count()
    first = sm90_24.candidates(*wm.shape, 16, sms, _built_configs())[0]
    half = sm90_24.Sm90Sparse24Half(wm, None, x, variant=first.name)
    a = half.mm(x)
    b = torch.empty_like(a)
    index, mode, splits = half._args
    ext.gemm(index, values, meta, x, None, b, half.workspace, mode, splits, half.sm_count)
    sync()
    return torch.equal(a.view(torch.int16), b.view(torch.int16))


def float_check(half, wm, bias, x) -> checks.ErrorFigures:
    ref, absref = checks.reference(x, wm, bias)
    out = torch.full((x.shape[0], wm.shape[0]), float("nan"), dtype=x.dtype, device=DEVICE)
    half.mm_into(x, out)
    sync()
    bound = checks.bounds(x.dtype, wm.shape[1], None, 1)
    return checks.error_figures(out, ref, absref, bound)


def exact_weight(n_out, n_in, dtype, gen, mask="random_2of4", bias=False):
    """The probe's +-1 weight on the half's kept positions (and a +-1 bias)."""
    w0 = torch.zeros(n_out, n_in, device=DEVICE, dtype=dtype)
    masks = make_mask_pair(mask, w0, gen)
    w = probe.probe_weight(n_out, n_in, masks, dtype, DEVICE, gen) * masks[0]
    b = None
    if bias:
        b = (torch.randint(0, 2, (n_out,), generator=gen, device=DEVICE) * 2 - 1).to(dtype)
    return w, b


def exact_check(half, w, b, batch, gen, graph=None) -> dict:
    """Every probe through `half.mm_into` (or through `graph`, a (CUDAGraph, x, out) captured
    on mm_into): mismatches against float64, which must be 0, and the groups covered."""
    n_out, n_in = w.shape
    dtype = w.dtype
    g = probe.groups_per_row(dtype, n_in, b is not None)
    probes = probe.probe_count(dtype, n_in, batch, b is not None)
    rows = probe._row_groups(n_in // 4, g, batch, probes, gen, DEVICE)
    covered = torch.zeros(n_in // 4, dtype=torch.bool, device=DEVICE)
    mismatches = nonfinite = 0
    first = None
    for p in range(probes):
        x = probe.probe_input(rows[p * batch : (p + 1) * batch], n_in, dtype, gen)
        covered |= x.view(batch, -1, 4).ne(0).any(-1).any(0)
        if graph is None:
            out = torch.full((batch, n_out), float("nan"), dtype=dtype, device=DEVICE)
            half.mm_into(x, out)
        else:
            cuda_graph, x_static, out = graph
            x_static.copy_(x)
            out.fill_(float("nan"))
            cuda_graph.replay()
        want = probe._reference(x, w, b)
        got = out.double()
        wrong = got != want
        mismatches += int(wrong.sum())
        nonfinite += int((~torch.isfinite(got)).sum())
        if first is None and wrong.any():
            r, c = wrong.nonzero()[0].tolist()
            first = {"probe": p, "row": r, "col": c, "got": got[r, c].item()}
            first["want"] = want[r, c].item()
    return {
        "probes": probes,
        "covered": int(covered.sum()),
        "groups": n_in // 4,
        "mismatches": mismatches,
        "nonfinite": nonfinite,
        "first_mismatch": first,
        "exact": mismatches == 0 and int(covered.sum()) == n_in // 4,
    }


def check_variants(report: Report, dtype_name: str, n: int, batches, gen) -> None:
    """Float and exact checks of every candidate variant at (n, B)."""
    dt = DTYPES[dtype_name]
    sms = sm_count()
    for i, batch in enumerate(batches):
        bias = i % 2 == 1
        what = f"variants {dtype_name} N={n} B={batch} bias={bias}"
        try:
            wm, _ = random_half(n, n, dt, gen)
            b = torch.randn(n, device=DEVICE, generator=gen).to(dt) if bias else None
            x = torch.randn(batch, n, device=DEVICE, generator=gen).to(dt)
            we, be = exact_weight(n, n, dt, gen, bias=bias)
            options = sm90_24.candidates(n, n, batch, sms, _built_configs())
            half = sm90_24.Sm90Sparse24Half(wm, b, x, what, variant=options[0].name)
            exact_half = sm90_24.Sm90Sparse24Half(we, be, x, what, variant=options[0].name)
            for v in options:
                half._use(v, x)
                exact_half._use(v, x)
                fig = float_check(half, wm, b, x)
                ex = exact_check(exact_half, we, be, batch, gen)
                try:
                    checks.assert_correct(fig, f"{what} {v.name}")
                    float_ok = True
                except AssertionError:
                    float_ok = False
                ok = float_ok and ex["exact"]
                rec = {"check": "variant", "dtype": dtype_name, "N": n, "B": batch, "bias": bias}
                rec |= {"variant": v.name, "float": dataclasses.asdict(fig), "exact": ex, "ok": ok}
                report.doc["checks"].append(rec)
                state = "ok" if ok else "FAILED"
                log(
                    f"  {what} {v.name:<36} rel_fro {fig.rel_fro:.2e} (bound "
                    f"{fig.rel_fro_bound:.1e}) exact mismatches {ex['mismatches']}: {state}"
                )
                if not ok:
                    report.fail(f"{what} {v.name}", f"float {dataclasses.asdict(fig)} exact {ex}")
        except Exception as e:
            report.fail(what, e)
        report.save()


def _built_configs() -> list[sm90_24.Config]:
    names = {c["name"] for c in sm90_24.load().configs()}
    return [c for c in sm90_24.CONFIGS if c.name in names]


def plant_moved_index(half, row: int, group: int) -> str:
    """Point one kept weight of (row, group) at another column, through the E code only."""
    meta = half.compressed.meta.clone()
    word = int(meta[row, group // 8]) & 0xFFFFFFFF
    shift = 4 * (group % 8)
    i0, i1 = (word >> shift) & 3, (word >> (shift + 2)) & 3
    pairs = [(a, c) for a in range(4) for c in range(a + 1, 4)]
    new = next(p for p in pairs if p != (i0, i1) and (p[0] == i0 or p[1] == i1))
    word = (word & ~(0xF << shift)) | ((new[0] | new[1] << 2) << shift)
    meta[row, group // 8] = word - (1 << 32) if word >= 1 << 31 else word
    sm90_24.to_cutlass_meta(meta, out=half.meta_e)
    return f"row {row} group {group}: indices ({i0}, {i1}) -> {new}"


def plant_swapped_pair(half, row: int, group: int) -> str:
    """Swap the two kept weights of (row, group): the product of swapped indices, written with
    a valid ascending code (a descending one is not a defined hardware code)."""
    v = half.compressed.values
    v[row, 2 * group : 2 * group + 2] = v[row, 2 * group : 2 * group + 2].flip(0).clone()
    return f"row {row} group {group}: kept pair swapped"


def check_planted(report: Report, dtype_name: str, n: int, batch: int, gen) -> None:
    dt = DTYPES[dtype_name]
    sms = sm_count()
    options = sm90_24.candidates(n, n, batch, sms, _built_configs())
    split = [v for v in options if v.mode != "dp"]
    for v in [options[0], *split[:1]]:
        for plant in (plant_moved_index, plant_swapped_pair):
            what = f"planted {plant.__name__} {dtype_name} N={n} B={batch} {v.name}"
            try:
                w, b = exact_weight(n, n, dt, gen)
                x = torch.zeros(batch, n, device=DEVICE, dtype=dt)
                half = sm90_24.Sm90Sparse24Half(w, b, x, what, variant=v.name)
                row = int(torch.randint(0, n, (1,), generator=gen, device=DEVICE))
                group = int(torch.randint(0, n // 4, (1,), generator=gen, device=DEVICE))
                where = plant(half, row, group)
                caught = exact_check(half, w, b, batch, gen)
                half.recompress(w)
                restored = exact_check(half, w, b, batch, gen)
                ok = caught["mismatches"] > 0 and restored["exact"]
                rec = {"check": "planted", "dtype": dtype_name, "N": n, "B": batch}
                rec |= {"variant": v.name, "plant": plant.__name__, "where": where}
                rec |= {"caught": caught, "restored": restored, "ok": ok}
                report.doc["checks"].append(rec)
                log(
                    f"  {what}: {where}; caught {caught['mismatches']} mismatches, "
                    f"after recompress {restored['mismatches']}: {'ok' if ok else 'FAILED'}"
                )
                if not ok:
                    report.fail(what, f"caught {caught} restored {restored}")
            except Exception as e:
                report.fail(what, e)


def check_transposed(report: Report, dtype_name: str, gen) -> None:
    """The W_g^T copy built from a w.t() view (a transposable mask keeps it 2:4)."""
    dt = DTYPES[dtype_name]
    for n_out, n_in, batch in TRANSPOSED_SHAPES:
        what = f"transposed {dtype_name} W {n_out}x{n_in} -> W^T, B={batch}"
        try:
            wm, _ = random_half(n_out, n_in, dt, gen, "transposable_random")
            wt = wm.t()  # a view: N_in x N_out, 2:4 along its columns too
            x = torch.randn(batch, n_out, device=DEVICE, generator=gen).to(dt)
            half = sm90_24.Sm90Sparse24Half(wt, None, x, what)
            fig = float_check(half, wt, None, x)
            we, _ = exact_weight(n_out, n_in, dt, gen, "transposable_random")
            exact_half = sm90_24.Sm90Sparse24Half(we.t(), None, x, what, variant=half.alg_id)
            ex = exact_check(exact_half, we.t(), None, batch, gen)
            half.recompress(wt)  # a transposed view again, into the same buffers
            fig2 = float_check(half, wt, None, x)
            try:
                checks.assert_correct(fig, what)
                checks.assert_correct(fig2, what + " recompressed")
                float_ok = True
            except AssertionError:
                float_ok = False
            ok = float_ok and ex["exact"]
            rec = {"check": "transposed", "dtype": dtype_name, "shape": [n_out, n_in], "B": batch}
            rec |= {"variant": half.alg_id, "float": dataclasses.asdict(fig), "exact": ex, "ok": ok}
            report.doc["checks"].append(rec)
            log(
                f"  {what} {half.alg_id}: rel_fro {fig.rel_fro:.2e}, exact mismatches "
                f"{ex['mismatches']}: {'ok' if ok else 'FAILED'}"
            )
            if not ok:
                report.fail(what, f"float {dataclasses.asdict(fig)} exact {ex}")
        except Exception as e:
            report.fail(what, e)


def check_graph_recompress(report: Report, dtype_name: str, gen) -> None:
    """Capture mm_into in a CUDA graph, recompress a new weight (new mask too) into the same
    buffers, replay: the replay must give the new weight's exact product."""
    dt = DTYPES[dtype_name]
    n, batch = 4096, 64
    sms = sm_count()
    options = sm90_24.candidates(n, n, batch, sms, _built_configs())
    picks = [options[0]] + [v for v in options if v.mode == "streamk"][:1]
    picks += [v for v in options if v.mode == "splitk"][:1]
    for v in picks:
        what = f"graph+recompress {dtype_name} N={n} B={batch} {v.name}"
        try:
            w1, b = exact_weight(n, n, dt, gen, bias=True)
            w2, _ = exact_weight(n, n, dt, gen)  # another mask and other signs
            x_static = torch.zeros(batch, n, device=DEVICE, dtype=dt)
            out = torch.empty(batch, n, device=DEVICE, dtype=dt)
            half = sm90_24.Sm90Sparse24Half(w1, b, x_static, what, variant=v.name)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                half.mm_into(x_static, out)  # warm-up outside the capture
            torch.cuda.current_stream().wait_stream(stream)
            sync()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                half.mm_into(x_static, out)
            before = exact_check(half, w1, b, batch, gen, (graph, x_static, out))
            half.recompress(w2)
            after = exact_check(half, w2, b, batch, gen, (graph, x_static, out))
            ok = before["exact"] and after["exact"]
            rec = {"check": "graph_recompress", "dtype": dtype_name, "N": n, "B": batch}
            rec |= {"variant": v.name, "before": before, "after": after, "ok": ok}
            report.doc["checks"].append(rec)
            log(
                f"  {what}: replay mismatches before {before['mismatches']}, after recompress "
                f"{after['mismatches']}: {'ok' if ok else 'FAILED'}"
            )
            if not ok:
                report.fail(what, f"before {before} after {after}")
        except Exception as e:
            report.fail(what, e)


def run_checks(report: Report, quick: bool) -> None:
    gen = torch.Generator(device=DEVICE).manual_seed(2025)
    for dtype_name in DTYPES:
        log(f"\nchecks, {dtype_name}")
        check_compressor(report, dtype_name, gen)
        report.save()
        for n in QUICK_CHECK_N if quick else CHECK_N:
            check_variants(report, dtype_name, n, QUICK_CHECK_B if quick else CHECK_B, gen)
            for batch in (16, 64):
                check_planted(report, dtype_name, n, batch, gen)
            report.save()
        check_transposed(report, dtype_name, gen)
        check_graph_recompress(report, dtype_name, gen)
        report.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer shapes in the checks")
    parser.add_argument("--configs", help=f"build only these (sets ${sm90_24.CONFIGS_ENV})")
    parser.add_argument("--verbose-build", action="store_true")
    parser.add_argument("--json", type=Path, help="default: $OUT/sm90_gpu_check.json if $OUT")
    args = parser.parse_args()
    if args.configs:
        os.environ[sm90_24.CONFIGS_ENV] = args.configs
    path = args.json or (
        Path(os.environ["OUT"]) / "sm90_gpu_check.json" if "OUT" in os.environ else None
    )
    report = Report(path)
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        log(f"sm90_gpu_check needs a Hopper GPU: {sm90_24.available()[1]}")
        sys.exit(2)
    ok = build(report, args.verbose_build)
    report.save()
    if not ok:
        sys.exit(2)
    if not args.build_only:
        run_checks(report, args.quick)
    report.save()
    checks_run = [c for c in report.doc["checks"]]
    passed = sum(1 for c in checks_run if c.get("ok"))
    log(f"\nSUMMARY ({time.time() - report.start:.0f} s)")
    b = report.doc["build"]
    log(f"  build: {b.get('seconds', 0):.0f} s, {b.get('reason')}")
    log(f"  checks: {passed} of {len(checks_run)} passed")
    for f in report.doc["failures"]:
        log(f"  FAILED {f['what']}: {f['error'].strip().splitlines()[-1][:200]}")
    log(
        "  ALL PASSED"
        if not report.doc["failures"]
        else f"  {len(report.doc['failures'])} FAILURES"
    )
    if path:
        log(f"  JSON: {path}")
    sys.exit(1 if report.doc["failures"] else 0)


if __name__ == "__main__":
    main()
