"""The SDDMM grad_W kernel (kernels/triton_sddmm24.py): grad_Y^T X at a 2:4 half's kept positions
only. Through the Triton interpreter on the CPU: against float64 for every mask's halves, bf16 and
fp16, B from 1 to 64, through transposed views, and bit for bit the dense-then-select path on
integer inputs; two planted lane bugs caught; compiled for Hopper (sm_90) on the CPU; on a GPU,
against float64 and the dense path at training shapes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import fields
from functools import cache

import pytest
import torch

from kernels.masks import MASKS
from measure.checks import bounds as checks
from tests.conftest import ROOT

HAVE_TRITON = importlib.util.find_spec("triton") is not None
pytestmark = pytest.mark.skipif(
    not HAVE_TRITON, reason="triton is not installed (pip install -e '.[test]' brings it)"
)
if HAVE_TRITON:
    import triton

    from kernels import triton_sddmm24


@cache
def _interpreted(*args: str) -> list[dict]:
    """One subprocess (TRITON_INTERPRET must be set before triton is imported, and not here)."""
    cmd = [sys.executable, "-m", "tests.kernels.sddmm24_interp", *args]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def _figures(d: dict) -> checks.ErrorFigures:
    return checks.ErrorFigures(**{f.name: d[f.name] for f in fields(checks.ErrorFigures)})


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("mask", MASKS)
def test_interpreted_sddmm_matches_float64_at_the_kept_positions(mask, dtype):
    cases = [c for c in _interpreted() if (c["mask"], c["dtype"]) == (mask, dtype)]
    assert sorted(c["B"] for c in cases) == [1, 8, 40, 64]
    for c in cases:
        fig = _figures(c)
        checks.assert_correct(fig, f"sddmm24 interp {mask} {dtype} B={c['B']}")
        assert fig.rel_fro > 0 or c["B"] == 1  # fp32 sums of B > 1 products do round
        assert c["exact_on_integers"], c  # integer inputs: bit for bit the dense path
    assert {c["transposed"] for c in _interpreted()} == {False, True}


def test_every_planted_lane_bug_fails_the_check():
    figs = {f["plant"]: f for f in _interpreted("--planted")}
    assert set(figs) == {"lane_from_wrong_column", "tile_lanes_1_2_swapped"}
    for plant, fig in figs.items():
        assert fig["nonfinite"] == 0 and not fig["exact_on_integers"], plant
        assert fig["rel_fro"] > 1e4 * fig["rel_fro_bound"], plant
        with pytest.raises(AssertionError):
            checks.assert_correct(_figures(fig), f"planted {plant}")


def test_fits_names_the_calls_the_kernel_takes():
    cfg = triton_sddmm24.DEFAULT
    gy, x = torch.zeros(8, 128, dtype=torch.bfloat16), torch.zeros(8, 256, dtype=torch.bfloat16)
    assert not triton_sddmm24.fits(gy, x, cfg)  # the CPU: dense-then-select instead
    if torch.cuda.is_available():
        assert triton_sddmm24.fits(gy.cuda(), x.cuda(), cfg)
        assert not triton_sddmm24.fits(gy.cuda().float(), x.cuda().float(), cfg)  # no TF32
        assert not triton_sddmm24.fits(gy.cuda()[:, :96], x.cuda(), cfg)  # N_out % 64


def test_the_kernel_compiles_for_hopper():
    """Compiled for sm_90 through ptxas (Triton ships it): the tensor-core MMA in the product
    and the lowering of the lane select, which the interpreter does not run."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    cfg = triton_sddmm24.DEFAULT
    fn = triton_sddmm24._sddmm24_kernel
    consts = {"BLOCK_M": cfg.block_m, "WORDS": cfg.words, "BLOCK_K": cfg.block_k}
    types = {"gy_ptr": "*bf16", "x_ptr": "*bf16", "meta_ptr": "*i32", "out_ptr": "*fp32"}
    sig = {a: "constexpr" if a in consts else types.get(a, "i32") for a in fn.arg_names}
    aligned = [i for i, a in enumerate(fn.arg_names) if a.endswith("_ptr") or a == "n_groups"]
    attrs = {(i,): [["tt.divisibility", 16]] for i in aligned}
    src = ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)
    opts = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts)
    assert kernel.asm["cubin"] and "wgmma" in kernel.asm["ptx"]  # Hopper's warpgroup MMA


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (compiles for it)")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("batch", [8, 64, 1024])
def test_sddmm_matches_float64_and_the_dense_path_on_the_gpu(dtype, batch):
    from kernels.compressed24 import compress, select
    from kernels.masks import make_mask_pair

    g = torch.Generator(device="cuda").manual_seed(batch)
    n_out, n_in = 1024, 2048
    w = torch.randn(n_out, n_in, device="cuda", generator=g)
    m = make_mask_pair("transposable_random", w, g)[1]
    meta = compress(m.to(torch.bfloat16)).meta
    gy = torch.randn(batch, n_out, device="cuda", generator=g).to(dtype)
    x = torch.randn(batch, n_in, device="cuda", generator=g).to(dtype)
    got = triton_sddmm24.sddmm24(gy, x, meta)
    torch.cuda.synchronize()
    ref, absref = checks.reference(gy.t(), x.t(), None)
    fig = checks.error_figures(got, select(ref, meta), select(absref, meta),
                               checks.bounds(torch.float32, batch, None, 1))  # fmt: skip
    checks.assert_correct(fig, f"sddmm24 gpu {dtype} B={batch}")
    dense = select(torch.mm(gy.t(), x), meta).float()  # rounded to the dtype first
    dense_bound = checks.bounds(dtype, batch, None, 1)["elementwise_factor"]
    assert ((got - dense).abs().double() <= dense_bound * select(absref, meta)).all()
