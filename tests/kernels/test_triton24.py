"""The Triton 2:4 kernel: correct against float64 through the Triton interpreter on the CPU (every
mask, bf16 and fp16, bias or not, B 1 to 40), planted unpacking bugs caught, bad shapes refused
before anything runs, every tiling compiled for Hopper (sm_90) on the CPU, and on a GPU every
configuration checked."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import fields
from functools import cache

import pytest
import torch

from common.errors import CellSpecError
from kernels import registry
from kernels.masks import MASKS
from measure.checks import bounds as checks
from tests.conftest import ROOT

HAVE_TRITON = importlib.util.find_spec("triton") is not None
# Every test here runs Triton (its interpreter, its compiler or its kernels): each one is
# skipped with this reason where it is missing, and counted on its own.
pytestmark = pytest.mark.skipif(
    not HAVE_TRITON, reason="triton is not installed (pip install -e '.[test]' brings it)"
)
if HAVE_TRITON:
    import triton

    from kernels import triton24, tune24

BATCHES = (1, 8, 16, 40)


@cache
def _interpreted(*args: str) -> list[dict]:
    """One subprocess (TRITON_INTERPRET must be set before triton is imported, and not here)."""
    cmd = [sys.executable, "-m", "tests.kernels.triton24_interp", *args]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def _figures(d: dict) -> checks.ErrorFigures:
    """The error figures of one interpreted case (its JSON line also names the case)."""
    return checks.ErrorFigures(**{f.name: d[f.name] for f in fields(checks.ErrorFigures)})


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("mask", MASKS)
def test_interpreted_kernel_matches_float64(mask, dtype, bias, batch):
    [fig] = [
        f
        for f in _interpreted()
        if (f["mask"], f["dtype"], f["bias"], f["B"]) == (mask, dtype, bias, batch)
    ]
    checks.assert_correct(_figures(fig), f"triton24 interp {mask} {dtype} bias={bias} B={batch}")


def test_every_planted_unpacking_bug_fails_the_check():
    figs = {(f["plant"], f["config"]): f for f in _interpreted("--planted")}
    assert {p for p, _ in figs} == {"swap_indices", "swap_pair_nibbles", "x_lane_order"}
    assert {c.startswith("tma_") for _, c in figs} == {False, True}  # both kernels
    assert len(figs) == 6
    for (plant, config), fig in figs.items():
        assert fig["nonfinite"] == 0, (plant, config)
        assert fig["rel_fro"] > 50 * fig["rel_fro_bound"], (plant, config)
        with pytest.raises(AssertionError):
            checks.assert_correct(_figures(fig), f"planted {plant} {config}")


def test_interpreted_compress_kernel_writes_the_reference_bytes():
    """The one-pass compress kernel (train steps re-compress with it) against the torch
    definition of the format, bitwise: every mask's halves, a transposed view, sparse groups,
    -0.0; a group with three nonzeros is counted."""
    cases = {(c["case"], c["dtype"]): c for c in _interpreted("--compress")}
    assert len(cases) == 2 * (2 * len(MASKS) + 3)
    for key, case in cases.items():
        if key[0] == "three nonzeros in one group":
            assert case["bad_groups"] == 1
        else:
            assert case["bad_groups"] == 0 and case["values_equal"] and case["meta_equal"], key


def test_interpreted_select_and_place_kernels_equal_the_torch_paths():
    """A Block-Shock half trains only its kept values: select reads them out of a dense tensor
    (fp32 gradients, bf16 weights, any strides), place puts them back; bitwise against torch
    for both halves of every mask, and the round trip gives W * M."""
    cases = _interpreted("--select")
    assert len(cases) == len(MASKS) * 2 * 2 * 2
    for case in cases:
        assert case["select_equal"] and case["place_equal"] and case["round_trip"], case


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (compiles for it)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_select_and_place_equal_the_torch_paths_on_the_gpu(dtype):
    from kernels.compressed24 import (
        Compressed24,
        compress,
        decompress,
        group_indices,
        place,
        select,
    )
    from kernels.masks import make_mask_pair

    g = torch.Generator(device="cuda").manual_seed(6)
    w = torch.randn(512, 1024, device="cuda", generator=g).to(dtype)
    for m in make_mask_pair("transposable_random", w, g):
        meta = compress(m.to(torch.bfloat16)).meta
        for dense in (w, w.t().contiguous().t()):
            values = select(dense, meta)
            ref = dense.reshape(512, 256, 4).gather(-1, group_indices(meta)).reshape(512, 512)
            assert torch.equal(values, ref)
            assert torch.equal(place(values, meta), w * m)
            assert torch.equal(place(values, meta), decompress(Compressed24(ref, meta)))
    assert torch.equal(compress(w * m).values, select(w, meta))  # fp32 compresses through torch


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (compiles for it)")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_compress_kernel_equals_the_reference_on_the_gpu(dtype):
    from common.errors import MaskError
    from kernels.compressed24 import compress, compress_reference
    from kernels.masks import make_mask_pair

    g = torch.Generator(device="cuda").manual_seed(5)
    w = torch.randn(512, 1024, device="cuda", generator=g).to(dtype)
    m0, m1 = make_mask_pair("transposable_random", w, g)
    for wm in (w * m0, (w * m1).t()):  # the transposed view: 2:4 along columns too
        wm[3, 4:8] = torch.tensor([-0.0, 1.0, -0.0, 0.0], dtype=dtype)
        fast, ref = compress(wm), compress_reference(wm)
        assert torch.equal(fast.values.view(torch.int16), ref.values.view(torch.int16))
        assert torch.equal(fast.meta, ref.meta)
    bad = (w * m0).clone()
    bad[7, 8:12] = 1.0
    with pytest.raises(MaskError, match=r"gpu: not 2:4: row 7, group 2 .* 4 nonzeros"):
        compress(bad, "gpu")


@pytest.mark.parametrize(
    ("n_out", "n_in", "batch", "dtype", "rule"),
    [
        (128, 256, 16, torch.float32, "bf16 or fp16"),
        (96, 256, 16, torch.bfloat16, "N_out a multiple of 64"),
        (128, 320, 16, torch.bfloat16, "N_in a multiple of 128"),
        (128, 256, 257, torch.bfloat16, "B from 1 to 256"),
        (128, 256, 0, torch.float16, "B from 1 to 256"),
    ],
)
def test_shapes_the_kernel_cannot_take_name_cell_backend_and_rule(n_out, n_in, batch, dtype, rule):
    with pytest.raises(CellSpecError, match=rf"phase1\[x\]: backend triton .*{rule}"):
        registry.backend("triton").check_shape(n_out, n_in, batch, dtype, "phase1[x]")


def test_every_bench_shape_has_candidates_within_the_chip():
    for n in (4096, 8192, 16384, 32768):
        for batch in (1, 16, 32, 64, 128, 256):
            found = tune24.candidates(n, n, batch, sm_count=132)
            assert found, (n, batch)
            for c in found:
                assert c.fits(n, n) and c in triton24.CONFIGS
                assert c.split_k == 1 or n // c.block_n < 2 * 132


def _hopper_cases() -> list[tuple[triton24.Config, str, str]]:
    """Every tiling of both kernels (split 1, bias, prmt, bf16), plus split-K, each expansion
    and fp16 on the first tiling of each kernel (none without triton: the test is skipped)."""
    if not HAVE_TRITON:
        return []
    cases = [(c, "prmt", "bf16") for c in triton24.CONFIGS if c.split_k == 1]
    for first in (triton24.CONFIGS[0], next(c for c in triton24.CONFIGS if c.tma)):
        split = triton24.CONFIG_BY_NAME[first.name.replace("_s1_", "_s4_")]
        cases += [(split, "prmt", "bf16"), (first, "prmt", "fp16")]
        cases += [(first, e, "bf16") for e in triton24.EXPANSIONS if e != "prmt"]
    return cases


@pytest.mark.parametrize(
    "cfg, expansion, dtype", _hopper_cases(), ids=lambda v: getattr(v, "name", str(v))
)
def test_every_tiling_compiles_for_hopper(cfg, expansion, dtype):
    """Compiled for sm_90 through ptxas (Triton ships it): the interpreter runs the Python-level
    indexing but not the lowering, the register and shared-memory layouts or the inline PTX of
    the prmt expansion; this catches a kernel that would not build on an H100, without one."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    bb, h = 64, cfg.block_k // 8
    consts = dict(
        DTYPE={"bf16": triton.language.bfloat16, "fp16": triton.language.float16}[dtype],
        HAS_BIAS=cfg.split_k == 1,
        SPLIT_K=cfg.split_k,
        BLOCK_N=cfg.block_n,
        BLOCK_K=cfg.block_k,
        BLOCK_B=bb,
        EXPAND=triton24.EXPANSIONS.index(expansion),
    )
    types = {
        "x_desc": f"tensordesc<{dtype}[{bb}, {cfg.block_k}]>",
        "pairs_desc": f"tensordesc<i64[{cfg.block_n}, {h}]>",
        "meta_desc": f"tensordesc<u8[{cfg.block_n}, {h}]>",
        "x_ptr": f"*{dtype}",
        "pairs_ptr": "*i64",
        "meta_ptr": "*u8",
        "bias_ptr": f"*{dtype}",
        "out_ptr": f"*{dtype}" if cfg.split_k == 1 else "*fp32",
    }
    fn = triton24._sparse24_tma_kernel if cfg.tma else triton24._sparse24_mm_kernel
    sig = {a: "constexpr" if a in consts else types.get(a, "i32") for a in fn.arg_names}
    aligned = [
        i
        for i, a in enumerate(fn.arg_names)
        if a.endswith("_ptr") or a.startswith(("n_", "stride_"))
    ]
    attrs = {(i,): [["tt.divisibility", 16]] for i in aligned}  # as a launch on aligned shapes
    src = ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)
    opts = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts)
    assert kernel.asm["cubin"] and "wgmma" in kernel.asm["ptx"]  # Hopper's warpgroup MMA
    if expansion == "prmt":
        assert "prmt.b32" in kernel.asm["ptx"]


def test_tuning_cache_key_names_triton_kernel_version_and_bucket():
    k = tune24.cache_key("NVIDIA H100", torch.bfloat16, 512, 256, 40)
    assert f"triton {triton.__version__}" in k and f"v{tune24.KERNEL_VERSION}" in k
    assert "B64" in k and "512x256" in k and "bfloat16" in k
    assert k == tune24.cache_key("NVIDIA H100", torch.bfloat16, 512, 256, 33)  # one bucket


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (compiles for it)")
@pytest.mark.parametrize("batch", [1, 40, 256])
def test_every_config_matches_float64_on_the_gpu(batch):
    from kernels.compressed24 import compress
    from kernels.masks import make_mask_pair

    g = torch.Generator(device="cuda").manual_seed(batch)
    n_out, n_in = 512, 1024
    w = torch.randn(n_out, n_in, device="cuda", generator=g).bfloat16()
    wm = w * make_mask_pair("random_2of4", w, g)[0]
    bias = torch.randn(n_out, device="cuda", generator=g).bfloat16()
    x = torch.randn(batch, n_in, device="cuda", generator=g).bfloat16()
    ref, absref = checks.reference(x, wm, bias)
    bound = checks.bounds(torch.bfloat16, n_in, None, 1)
    for cfg in [c for c in triton24.CONFIGS if c.fits(n_out, n_in)]:
        out = torch.full((batch, n_out), float("nan"), device="cuda", dtype=torch.bfloat16)
        try:
            triton24.Sparse24Matmul(compress(wm), bias, batch, cfg, "gpu test")(x, out)
        except triton.runtime.errors.OutOfResources:
            continue  # the tuner skips these too
        torch.cuda.synchronize()
        checks.assert_correct(checks.error_figures(out, ref, absref, bound), cfg.name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (compiles for it)")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_every_expansion_matches_float64_on_the_gpu(dtype):
    """The three ways of expanding a group ("prmt" is PTX, so only a GPU runs it) in both kernels,
    against float64 and bitwise against each other (the same lanes feed the same dots)."""
    from kernels.compressed24 import compress
    from kernels.masks import make_mask_pair

    g = torch.Generator(device="cuda").manual_seed(11)
    n_out, n_in, batch = 512, 1024, 40
    w = torch.randn(n_out, n_in, device="cuda", generator=g).to(dtype)
    wm = w * make_mask_pair("transposable_random", w, g)[1]
    x = torch.randn(batch, n_in, device="cuda", generator=g).to(dtype)
    ref, absref = checks.reference(x, wm, None)
    bound = checks.bounds(dtype, n_in, None, 1)
    for name in ("n64_k128_s1_w4_p4", "tma_n128_k128_s2_w4_p4"):
        outs = []
        for expansion in triton24.EXPANSIONS:
            out = torch.full((batch, n_out), float("nan"), device="cuda", dtype=dtype)
            cfg = triton24.CONFIG_BY_NAME[name]
            triton24.Sparse24Matmul(compress(wm), None, batch, cfg, "gpu", expansion)(x, out)
            torch.cuda.synchronize()
            checks.assert_correct(checks.error_figures(out, ref, absref, bound), expansion)
            outs.append(out)
        assert all(torch.equal(outs[0], o) for o in outs[1:]), name
