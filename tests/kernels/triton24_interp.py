"""Runs the Triton 2:4 kernel under the Triton interpreter (CPU) and prints one JSON line a case.

Run as a subprocess by tests/kernels/test_triton24.py: TRITON_INTERPRET must be set before triton is
imported, and that must not leak into the pytest process, where other modules may compile the
same kernels for a GPU. Two things are patched here, never in kernels/:
- the interpreter's tl.dot multiplies bfloat16's stored uint16 bit patterns as integers (Triton
  3.9: bf16 is kept as uint16 and create_dot calls np.matmul on it), so bf16 operands are widened
  to float32 first, exactly (the products of two bf16 values are exact in fp32, as on the tensor
  cores); accumulation stays fp32.
- its float32 -> bfloat16 cast truncates (it passes no rounding mode to its converter), where
  the GPU rounds to nearest even; truncation alone doubles the output's rounding error, so the
  cast is done by torch (round to nearest even) instead.
- `--planted` runs one case per planted bug: one of the kernel's unpacking helpers swapped for a
  wrong one, so the caller can check that the correctness check catches each.
- `--compress` runs the one-pass compress kernel (kernels/triton_compress24.py) and prints
  whether its bytes equal the torch reference's and how many bad groups it counted.
- `--select` runs its select and place kernels (a half's kept values out of a dense tensor,
  and back) and prints whether they equal the torch paths bitwise.

Usage: python -m tests.kernels.triton24_interp [--planted | --compress | --select]
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.runtime import interpreter  # noqa: E402

from common.dtypes import DTYPES  # noqa: E402
from kernels import triton24  # noqa: E402
from kernels.compressed24 import compress  # noqa: E402
from kernels.masks import MASKS, make_mask_pair  # noqa: E402
from measure.checks import bounds as checks  # noqa: E402

N_OUT, N_IN = 64, 256
BATCHES = (1, 8, 16, 40)
# A plain and a split-K config of each kernel (pointer loads, copy-engine descriptors), all
# fitting the small shape: the interpreter runs
# every program, so shapes stay small (seconds for all cases).
CONFIGS = (
    triton24.Config(64, 128, 1, 4, 3),
    triton24.Config(64, 128, 2, 4, 3),
    triton24.Config(64, 128, 1, 4, 3, tma=True),
    triton24.Config(64, 128, 2, 4, 3, tma=True),
)


def _widen_bf16(h):
    if h.dtype == tl.bfloat16:
        return (h.data.astype(np.uint32) << 16).view(np.float32)
    return h.data


_cast_impl = interpreter.InterpreterBuilder.cast_impl


def _cast_rounding_to_nearest(self, src, dst_type):
    if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
        bits = torch.from_numpy(np.ascontiguousarray(src.data)).to(torch.bfloat16).view(torch.int16)
        return interpreter.TensorHandle(bits.numpy().view(np.uint16), tl.bfloat16)
    return _cast_impl(self, src, dst_type)


def _create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
    out = np.matmul(_widen_bf16(a), _widen_bf16(b), dtype=d.data.dtype) + d.data
    return interpreter.TensorHandle(out, d.dtype.scalar)


_lanes_original = triton24._group_lanes
_split_x_original = triton24._split_x


@triton.jit
def _lanes_swapped_indices(pairs, nibbles, EXPAND: tl.constexpr):
    swapped = ((nibbles & 3) << 2) | ((nibbles >> 2) & 3)
    return _lanes_original(pairs, swapped, EXPAND)


@triton.jit
def _pair_nibbles_swapped(meta_bytes):
    return (meta_bytes >> 4) & 0xF, meta_bytes & 0xF


@triton.jit
def _split_x_lanes_1_2_swapped(xt):
    e0, e1, e2, e3, o0, o1, o2, o3 = _split_x_original(xt)
    return e0, e2, e1, e3, o0, o2, o1, o3


PLANTS = {
    "swap_indices": ("_group_lanes", _lanes_swapped_indices),
    "swap_pair_nibbles": ("_pair_nibbles", _pair_nibbles_swapped),
    "x_lane_order": ("_split_x", _split_x_lanes_1_2_swapped),
}


def run_case(
    mask: str, dtype: str, bias: bool, batch: int, config, seed: int, expansion: str = "shift64"
) -> dict:
    g = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    w = torch.randn(N_OUT, N_IN, generator=g).to(dt)
    m0, _ = make_mask_pair(mask, w, g)
    wm = w * m0
    b = torch.randn(N_OUT, generator=g).to(dt) if bias else None
    x = torch.randn(batch, N_IN, generator=g).to(dt)
    out = torch.full((batch, N_OUT), float("nan"), dtype=dt)  # poisoned: every element written
    triton24.Sparse24Matmul(compress(wm), b, batch, config, "interp", expansion)(x, out)
    ref, absref = checks.reference(x, wm, b)
    fig = checks.error_figures(out, ref, absref, checks.bounds(dt, N_IN, None, 1))
    return {
        "mask": mask,
        "dtype": dtype,
        "bias": bias,
        "B": batch,
        "config": config.name,
        "expansion": expansion,
        **dataclasses.asdict(fig),
    }


def compress_cases():
    """(name, dtype, weight) cases: every mask's halves, a transposed view, sparse groups and
    -0.0, and one group with three nonzeros (one bad group)."""
    g = torch.Generator().manual_seed(3000)
    for dtype in ("bf16", "fp16"):
        w = torch.randn(64, 256, generator=g).to(DTYPES[dtype])
        for mask in MASKS:
            for half, m in enumerate(make_mask_pair(mask, w, g)):
                yield f"{mask} half {half}", dtype, w * m
        wt = torch.randn(256, 64, generator=g).to(DTYPES[dtype])
        m0, _ = make_mask_pair("transposable_random", wt, g)
        yield "transposed view", dtype, (wt * m0).t()  # 2:4 along both, read through strides
    for dtype in ("bf16", "fp16"):
        w = torch.randn(64, 256, generator=g).to(DTYPES[dtype])
        w = w * make_mask_pair("random_2of4", w, g)[0]
        w[:, 4:8] = 0.0
        w[1, 8:12] = torch.tensor([0.0, 0.0, 5.0, 0.0])
        w[2, 12:16] = torch.tensor([-0.0, 1.0, -0.0, 2.0])
        yield "sparse groups and -0.0", dtype, w
        bad = w.clone()
        bad[5, 20:24] = torch.tensor([1.0, 2.0, 3.0, 0.0])
        yield "three nonzeros in one group", dtype, bad


def run_compress_cases() -> None:
    from kernels import triton_compress24
    from kernels.compressed24 import compress_reference, empty_like_compressed

    for name, dtype, w in compress_cases():
        out = empty_like_compressed(*w.shape, w.dtype, w.device)
        bad = torch.zeros(1, dtype=torch.int32)
        triton_compress24.compress_into(w, out, bad)
        fields = {"case": name, "dtype": dtype, "bad_groups": int(bad.item())}
        if not fields["bad_groups"]:
            ref = compress_reference(w)
            fields["values_equal"] = torch.equal(
                out.values.view(torch.int16), ref.values.view(torch.int16)
            )  # bitwise: -0.0 kept as -0.0
            fields["meta_equal"] = torch.equal(out.meta, ref.meta)
        print(json.dumps(fields), flush=True)


def run_select_cases() -> None:
    from kernels import triton_compress24
    from kernels.compressed24 import Compressed24, compress_reference, decompress, group_indices

    g = torch.Generator().manual_seed(4000)
    for mask in MASKS:
        for dtype in ("fp32", "bf16"):
            w = torch.randn(64, 256, generator=g).to(DTYPES[dtype])
            for half, m in enumerate(make_mask_pair(mask, w, g)):
                meta = compress_reference(m.to(torch.float16)).meta  # the mask's positions
                for view, dense in (("rows", w), ("transposed view", w.t().contiguous().t())):
                    values = triton_compress24.select(dense, meta)
                    groups = dense.reshape(64, 64, 4)
                    ref = groups.gather(-1, group_indices(meta)).reshape(64, 128)
                    back = triton_compress24.place(values, meta)
                    ref_back = decompress(Compressed24(ref, meta))
                    print(json.dumps({
                        "case": f"{mask} half {half} {view}", "dtype": dtype,
                        "select_equal": torch.equal(values, ref),
                        "place_equal": torch.equal(back, ref_back),
                        "round_trip": torch.equal(back, w * m),
                    }), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--planted", action="store_true")
    parser.add_argument("--compress", action="store_true")
    parser.add_argument("--select", action="store_true")
    args = parser.parse_args()
    if args.select:
        run_select_cases()
        return
    if args.compress:
        run_compress_cases()
        return
    interpreter.InterpreterBuilder.create_dot = _create_dot
    interpreter.InterpreterBuilder.cast_impl = _cast_rounding_to_nearest
    if args.planted:
        for i, (plant, (name, fn)) in enumerate(sorted(PLANTS.items())):
            original = getattr(triton24, name)
            setattr(triton24, name, fn)  # the interpreter looks helpers up at run time
            try:
                for config in (CONFIGS[0], CONFIGS[2]):  # the pointer and the copy-engine kernel
                    fig = run_case("random_2of4", "bf16", False, 16, config, seed=2000 + i)
                    print(json.dumps({"plant": plant, **fig}), flush=True)
            finally:
                setattr(triton24, name, original)
        return
    # The config index advances once more per round of batches, so every config sees every B.
    cases = [
        (mask, dtype, bias, batch, CONFIGS[(i + i // len(BATCHES)) % len(CONFIGS)])
        for i, (mask, dtype, bias, batch) in enumerate(
            (m, d, b, n)
            for m in MASKS
            for d in ("bf16", "fp16")
            for b in (False, True)
            for n in BATCHES
        )
    ]
    # The two pure-Triton expansions alternate ("prmt" is PTX: the GPU tests cover it).
    for i, case in enumerate(cases):
        expansion = ("shift64", "shift32")[i % 2]
        print(json.dumps(run_case(*case, seed=1000 + i, expansion=expansion)), flush=True)


if __name__ == "__main__":
    main()
