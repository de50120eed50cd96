"""Runs the SDDMM grad_W kernel (kernels/triton_sddmm24.py) under the Triton interpreter (CPU) and
prints one JSON line a case.

Run as a subprocess by tests/kernels/test_sddmm24.py: TRITON_INTERPRET must be set before triton
is imported and must not leak into the pytest process. The interpreter's bf16 dot is patched as
tests/kernels/triton24_interp.py patches it (its tl.dot multiplies bf16's stored bit patterns as
integers); the kernel's output is fp32, so no cast is involved. Cases:
- default: every mask's halves, bf16 and fp16, B 1, 8, 40 and 64 (B not a multiple of the
  batch slice, and past one slice), grad_Y and X through transposed views; the float figures
  against float64 grad_Y^T X read at the kept positions, and whether the result equals the
  dense-then-select path on exact integer inputs bit for bit.
- `--planted`: one case per planted bug (each kept value read from the mirrored lane; lanes 1
  and 2 of the dense tile swapped), each of which the check must catch.

Usage: python -m tests.kernels.sddmm24_interp [--planted]
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.runtime import interpreter  # noqa: E402

from common.dtypes import DTYPES  # noqa: E402
from kernels import triton_sddmm24  # noqa: E402
from kernels.compressed24 import compress_reference, group_indices  # noqa: E402
from kernels.masks import MASKS, make_mask_pair  # noqa: E402
from measure.checks import bounds as checks  # noqa: E402
from tests.kernels import triton24_interp as patches  # noqa: E402

N_OUT, N_IN = 64, 256
BATCHES = (1, 8, 40, 64)
CONFIG = triton_sddmm24.Config(block_m=32, words=4, block_k=16)  # two slices at B 40


def kept(dense: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    """The values of a dense N_out x N_in tensor at the kept positions (compressed order)."""
    n_out, n_in = dense.shape
    return dense.reshape(n_out, n_in // 4, 4).gather(-1, group_indices(meta)).reshape(n_out, -1)


def run_case(mask: str, dtype: str, batch: int, seed: int, transposed: bool) -> dict:
    g = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    w = torch.randn(N_OUT, N_IN, generator=g)
    m0, m1 = make_mask_pair(mask, w, g)
    m = (m0, m1)[seed % 2]
    meta = compress_reference(m.to(torch.bfloat16)).meta
    gy = torch.randn(batch, N_OUT, generator=g).to(dt)
    x = torch.randn(batch, N_IN, generator=g).to(dt)
    if transposed:  # the same values through column-major strides
        gy, x = gy.t().contiguous().t(), x.t().contiguous().t()
    got = triton_sddmm24.sddmm24(gy, x, meta, config=CONFIG)
    ref, absref = checks.reference(gy.t(), x.t(), None)  # float64 grad_Y^T X and |.|
    bound = checks.bounds(torch.float32, batch, None, 1)  # fp32 output, K = B
    fig = checks.error_figures(got, kept(ref, meta), kept(absref, meta), bound)
    # integer inputs: every product and partial sum exact, so the result is the dense path's
    gi = torch.randint(-3, 4, (batch, N_OUT), generator=g).to(dt)
    xi = torch.randint(-3, 4, (batch, N_IN), generator=g).to(dt)
    exact = torch.equal(
        triton_sddmm24.sddmm24(gi, xi, meta, config=CONFIG), kept(gi.t().float() @ xi.float(), meta)
    )
    return {
        "mask": mask,
        "dtype": dtype,
        "B": batch,
        "transposed": transposed,
        "exact_on_integers": exact,
        **dataclasses.asdict(fig),
    }


@triton.jit
def _lane_swapped(a, b, c, d, i):
    """Planted: the lane of index 3 - i (a kept value read from the wrong column)."""
    return tl.where(i == 0, d, tl.where(i == 1, c, tl.where(i == 2, b, a)))


@triton.jit
def _tile_lanes_1_2_swapped(acc, BLOCK_M: tl.constexpr, G: tl.constexpr):
    a0, a1, a2, a3 = _tile_lanes_original(acc, BLOCK_M, G)
    return a0, a2, a1, a3


_tile_lanes_original = triton_sddmm24._tile_lanes
PLANTS = {"lane_from_wrong_column": ("_lane", _lane_swapped),
          "tile_lanes_1_2_swapped": ("_tile_lanes", _tile_lanes_1_2_swapped)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--planted", action="store_true")
    args = parser.parse_args()
    interpreter.InterpreterBuilder.create_dot = patches._create_dot
    if args.planted:
        for i, (plant, (name, fn)) in enumerate(sorted(PLANTS.items())):
            original = getattr(triton_sddmm24, name)
            setattr(triton_sddmm24, name, fn)  # the interpreter looks helpers up at run time
            try:
                fig = run_case("random_2of4", "bf16", 40, seed=7000 + i, transposed=False)
                print(json.dumps({"plant": plant, **fig}), flush=True)
            finally:
                setattr(triton_sddmm24, name, original)
        return
    i = 0
    for mask in MASKS:
        for dtype in ("bf16", "fp16"):
            for batch in BATCHES:
                fig = run_case(mask, dtype, batch, seed=6000 + i, transposed=i % 3 == 0)
                print(json.dumps(fig), flush=True)
                i += 1


if __name__ == "__main__":
    main()
