"""Where the Triton 2:4 half loses its time: the production kernel beside stripped copies of it.

Measures what a tiling and pipeline reach when parts of the work are removed (same grid, same
bytes read from the weight), so a change to the kernel aims at the part that costs:
- `full_<expansion>`: the production kernel (kernels/triton24.py) with each way of expanding a
  group (triton24.EXPANSIONS), its best configs from the H100 runs, each checked against
  float64 first;
- the production loop with one part removed (`ABLATIONS`, same grid and descriptors, not Y):
  `no_expand` (each lane tile is its pair word's raw half), `no_x_split` (every dot multiplies
  one H-column X tile from the copy engine, so X is not split in registers and 1/8 of its bytes
  are read; the smaller X pipeline also changes shared memory and so occupancy), `one_mma` (the
  eight lane tiles summed elementwise into one dot: the expansion stays, seven MMAs and their
  waits go);
- `stream`: loads the pair words and meta bytes only and folds them into an integer sum: the
  pure streaming rate of this tiling;
- the dense half (`kernel_bench.DENSE`): torch's dense N x N/2 half (cuBLAS), what TP runs per rank;
plus the one-pass compress kernel (kernels/triton_compress24.py) against cuSPARSELt's compress
and the torch reference path. Floors: bytes over the device-copy ceiling measured here.

    python scripts/kernel_ceiling.py OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernels import triton24  # noqa: E402
from kernels.compressed24 import compress, compress_into, compress_reference  # noqa: E402
from kernels.masks import make_mask_pair  # noqa: E402
from measure.checks import bounds as checks  # noqa: E402
from scripts.kernel_bench import DENSE, copy_ceiling_tb_s, floor_ms, graph_ms  # noqa: E402

SHAPES = [(16384, 16), (16384, 64), (32768, 16), (32768, 64)]
# The tuner's winners on an H100 (reports/published/data/h100-2026-11-25c): B 16, B 16-32, B 64 (two
# programs an SM), B 64 (256 rows).
CONFIGS = (
    "tma_n64_k256_s1_w4_p4",
    "tma_n128_k256_s1_w8_p3",
    "tma_n128_k128_s1_w4_p3",
    "tma_n256_k128_s2_w8_p3",
)


# What `_ablated_kernel` drops from the production loop (kernels/triton24._tile_product):
# the expansion (each lane tile is its pair word's raw half, tied to the meta by an xor), the
# split of X (every dot multiplies one H-column X tile from the copy engine: 1/8 of X's bytes),
# or seven of the eight MMAs (the eight lane tiles summed elementwise into one dot).
ABLATIONS = {"no_expand": 1, "no_x_split": 2, "one_mma": 3}


@triton.jit
def _ablated_kernel(
    x_desc, xh_desc, pairs_desc, meta_desc, out_ptr, n_in, stride_ob, stride_os,
    DTYPE: tl.constexpr, SPLIT_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_B: tl.constexpr, DROP: tl.constexpr, EXPAND: tl.constexpr,
):  # fmt: skip
    """The production kernel's loop with one part removed (ABLATIONS); not Y."""
    k_len = n_in // SPLIT_K
    k0 = tl.program_id(1) * k_len
    row0 = tl.program_id(0) * BLOCK_N
    acc = tl.zeros((BLOCK_N, BLOCK_B), dtype=tl.float32)
    for k in range(k0, k0 + k_len, BLOCK_K):
        q = pairs_desc.load([row0, k // 8])
        even, odd = triton24._pair_nibbles(meta_desc.load([row0, k // 8]).to(tl.int32))
        if DROP == 2:
            xh = xh_desc.load([0, k // 8])
            e0, e1, e2, e3, o0, o1, o2, o3 = xh, xh, xh, xh, xh, xh, xh, xh
        else:
            e0, e1, e2, e3, o0, o1, o2, o3 = triton24._split_x(x_desc.load([0, k]))
        if DROP == 1:
            lo_e, hi_e = q.to(tl.int32) ^ even, q.to(tl.int32) ^ (even << 16)
            lo_o, hi_o = (q >> 32).to(tl.int32) ^ odd, (q >> 32).to(tl.int32) ^ (odd << 16)
        else:
            lo_e, hi_e = triton24._group_lanes(q.to(tl.int32), even, EXPAND)
            lo_o, hi_o = triton24._group_lanes((q >> 32).to(tl.int32), odd, EXPAND)
        if DROP == 3:
            a0, a1, a2, a3 = triton24._lane_tiles(lo_e, hi_e, DTYPE)
            b0, b1, b2, b3 = triton24._lane_tiles(lo_o, hi_o, DTYPE)
            w = ((a0 + a1) + (a2 + a3)) + ((b0 + b1) + (b2 + b3))
            acc = tl.dot(w, tl.trans(e0), acc)
        else:
            acc = triton24._lane_dots(lo_e, hi_e, e0, e1, e2, e3, acc, DTYPE)
            acc = triton24._lane_dots(lo_o, hi_o, o0, o1, o2, o3, acc, DTYPE)
    _store(acc, out_ptr, stride_ob, stride_os)


@triton.jit
def _stream_kernel(
    pairs_desc, meta_desc, out_ptr, n_in, stride_ob, stride_os, SPLIT_K: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr,
):  # fmt: skip
    """Loads the pair words and meta bytes only, folded into an integer sum."""
    H: tl.constexpr = BLOCK_K // 8
    k_len = n_in // SPLIT_K
    k0 = tl.program_id(1) * k_len
    row0 = tl.program_id(0) * BLOCK_N
    fold = tl.zeros((BLOCK_N, H), dtype=tl.int64)
    keep = tl.zeros((BLOCK_N, H), dtype=tl.int32)
    for k in range(k0, k0 + k_len, BLOCK_K):
        fold ^= pairs_desc.load([row0, k // 8])
        keep ^= meta_desc.load([row0, k // 8]).to(tl.int32)
    total = tl.sum(fold, axis=1).to(tl.float32) + tl.sum(keep, axis=1).to(tl.float32)
    acc = tl.zeros((BLOCK_N, BLOCK_B), dtype=tl.float32) + total[:, None]
    _store(acc, out_ptr, stride_ob, stride_os)


@triton.jit
def _store(acc, out_ptr, stride_ob, stride_os):
    BLOCK_N: tl.constexpr = acc.shape[0]
    BLOCK_B: tl.constexpr = acc.shape[1]
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    bs = tl.arange(0, BLOCK_B)
    ptrs = out_ptr + tl.program_id(1) * stride_os + bs[None, :] * stride_ob + cols[:, None]
    tl.store(ptrs, acc)


def stripped(kind: str, c, x: torch.Tensor, cfg: triton24.Config, expansion: str | None = None):
    """A forward of the stripped kernel `kind` (an ABLATIONS key or "stream") with `cfg`'s tiling
    and the production kernel's own descriptors and expansion (fp32 partial outputs)."""
    mm = triton24.Sparse24Matmul(c, None, x.shape[0], cfg, "ceiling", expansion)
    n_out, n_in = c.shape
    bb = triton24.block_b(x.shape[0])
    out = torch.empty(cfg.split_k, bb, n_out, dtype=torch.float32, device=x.device)
    grid = (n_out // cfg.block_n, cfg.split_k)
    common = dict(SPLIT_K=cfg.split_k, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, BLOCK_B=bb,
                  num_warps=cfg.num_warps, num_stages=cfg.num_stages)  # fmt: skip
    weight_and_out = (mm.pairs_desc, mm.meta_desc, out, n_in, out.stride(1), out.stride(0))
    if kind == "stream":
        return lambda: _stream_kernel[grid](*weight_and_out, **common)
    xh = TensorDescriptor(x, [x.shape[0], n_in], [x.stride(0), 1], [bb, cfg.block_k // 8])
    args = (mm._x_descriptor(x), xh, *weight_and_out)
    tail = dict(DTYPE=tl.bfloat16, DROP=ABLATIONS[kind], EXPAND=mm.expand, **common)
    return lambda: _ablated_kernel[grid](*args, **tail)


def run_shape(n: int, batch: int, ceiling: float) -> list[dict]:
    g = torch.Generator(device="cuda").manual_seed(n + batch)
    w = torch.randn(n, n, device="cuda", generator=g).bfloat16()
    wm = w * make_mask_pair("random_2of4", w, g)[0]
    x = torch.randn(batch, n, device="cuda", generator=g).bfloat16()
    c = compress(wm)
    sparse_bytes = c.nbytes + 2 * batch * n * 2
    rows = []
    ref, absref = checks.reference(x, wm, None)
    bound = checks.bounds(torch.bfloat16, n, None, 1)
    for name in CONFIGS:
        cfg = triton24.CONFIG_BY_NAME[name]
        kinds = {}
        for expansion in triton24.EXPANSIONS:
            out = torch.full((batch, n), float("nan"), dtype=torch.bfloat16, device="cuda")
            mm = triton24.Sparse24Matmul(c, None, batch, cfg, "ceiling", expansion)
            mm(x, out)
            torch.cuda.synchronize()
            figs = checks.error_figures(out, ref, absref, bound)
            checks.assert_correct(figs, f"N={n} B={batch} {name} {expansion}")
            kinds[f"full_{expansion}"] = lambda mm=mm, out=out: mm(x, out)
        for kind in (*ABLATIONS, "stream"):
            kinds[kind] = stripped(kind, c, x, cfg)
        for kind, fn in kinds.items():
            ms = graph_ms([fn])
            pct = 100 * floor_ms(sparse_bytes, ceiling) / ms
            rows.append(dict(N=n, B=batch, config=name, kind=kind, ms=ms, pct_floor=pct))
    half = w[:, : n // 2].contiguous()
    out = torch.empty(batch, n, dtype=torch.bfloat16, device="cuda")
    ms = graph_ms([lambda: torch.mm(x[:, : n // 2], half.t(), out=out)])
    dense_bytes = half.numel() * 2 + batch * n // 2 * 2 + batch * n * 2
    rows.append(dict(N=n, B=batch, config="cublas", kind=DENSE, ms=ms,
                     pct_floor=100 * floor_ms(dense_bytes, ceiling) / ms))  # fmt: skip
    return rows


def compress_rows(ceiling: float) -> list[dict]:
    """Both compressions of a T1 step (W_g, and W_g^T from a transposed view) at N 8192-32768."""
    rows = []
    for n in (8192, 16384, 32768):
        g = torch.Generator(device="cuda").manual_seed(n)
        w = torch.randn(n, n, device="cuda", generator=g).bfloat16()
        wm = w * make_mask_pair("transposable_random", w, g)[0]
        fast = compress(wm)
        ref = compress_reference(wm)
        same = torch.equal(fast.values.view(torch.int16), ref.values.view(torch.int16))
        same = same and torch.equal(fast.meta, ref.meta)
        del ref
        nbytes = wm.numel() * 2 + fast.nbytes
        for kind, fn in {  # compress_into: what a train step's recompress runs
            "triton_compress": lambda wm=wm, c=fast: compress_into(wm, c),
            "triton_compress_transposed_view": lambda wm=wm, c=fast: compress_into(wm.t(), c),
            "cslt_compress": lambda wm=wm: torch._cslt_compress(wm),
        }.items():
            ms = triton.testing.do_bench(fn, warmup=20, rep=200, return_mode="median")
            pct = 100 * floor_ms(nbytes, ceiling) / ms
            rows.append(dict(N=n, kind=kind, ms=ms, pct_floor=pct, equal_to_reference=same))
        del fast
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    out_path = Path(sys.argv[1])
    ceiling = copy_ceiling_tb_s()
    result = {"device": torch.cuda.get_device_name(), "copy_ceiling_tb_s": ceiling, "rows": []}
    print(f"{result['device']}: copy ceiling {ceiling:.3f} TB/s")
    for n, b in SHAPES:
        for row in run_shape(n, b, ceiling):
            result["rows"].append(row)
            print(f"N={row['N']} B={row['B']} {row['config']:<26} {row['kind']:<13} "
                  f"{row['ms']:.4f} ms  {row['pct_floor']:.1f}% of floor", flush=True)  # fmt: skip
        out_path.write_text(json.dumps(result, indent=1))
    result["compress"] = compress_rows(ceiling)
    for row in result["compress"]:
        print(f"compress N={row['N']} {row['kind']:<32} {row['ms']:.3f} ms "
              f"{row['pct_floor']:.1f}% of floor, same bytes as reference: "
              f"{row['equal_to_reference']}")  # fmt: skip
    out_path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
