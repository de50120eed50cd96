"""The sm90 2:4 backend (kernels/sm90_24.py: CUTLASS's wgmma.sp GEMMs for small batches).

Three layers, each saying why it skips where it cannot run:
- CPU, always (CI): availability reasons that never raise, the configuration and variant logic,
  the metadata converter's byte permutation (round trip and its closed formula), the generated
  sources.
- Toolchain (nvcc >= 12.2 and the CUTLASS headers; CI has neither, so these skip with the reason):
  the converter bit for bit against CUTLASS's own compression run on this CPU (a host-only
  program built on the GEMMs' own SparseConfig), and every configuration compiled for sm_90a
  with HGMMA.SP (the sparse tensor-core instruction) in its SASS. Objects are cached
  (scripts/sm90_sass_check.py), so only the first run pays the compile: about 80 s a
  configuration and dtype on one core.
- GPU (-m gpu, a Hopper GPU): scripts/sm90_gpu_check.py's checks at small sizes.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from common.errors import CellSpecError
from kernels import sm90_24
from kernels.compressed24 import Compressed24, compress_reference, decompress
from tests.conftest import ROOT

DTYPES = ("bf16", "fp16")


def _toolchain() -> str:
    """'' where nvcc and CUTLASS's headers are here, else why the compile checks skip."""
    if sm90_24.find_nvcc() is None:
        return (
            "no nvcc (CUDA >= 12.2) found via $CUDA_HOME, PATH or /usr/local/cuda: the sm_90a "
            "compile checks need it (pip install nvidia-cuda-nvcc==13.0.88 and set CUDA_HOME to "
            "its nvidia/cu13; see notes/sm90_24.md). CI has none"
        )
    include, why = sm90_24.cutlass_include()
    return "" if include is not None else why


NO_TOOLCHAIN = _toolchain()
needs_toolchain = pytest.mark.skipif(
    bool(NO_TOOLCHAIN), reason=f"sm_90a toolchain absent: {NO_TOOLCHAIN}"
)
NO_CUOBJDUMP = (
    ""
    if NO_TOOLCHAIN or sm90_24.find_cuobjdump(sm90_24.find_nvcc())
    else "no cuobjdump beside nvcc, on PATH or in $CUDA_HOME (pip install "
    "nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm): the SASS cannot be read"
)
needs_cuobjdump = pytest.mark.skipif(
    bool(NO_CUOBJDUMP), reason=f"sm_90a disassembler absent: {NO_CUOBJDUMP}"
)


# ------------------------------------------------------------------------------ availability


def test_on_a_machine_without_cuda_the_backend_says_why_and_never_raises():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: this checks the CPU answer")
    ok, reason = sm90_24.available.__wrapped__()
    assert not ok and "no CUDA device visible" in reason


@pytest.fixture
def hopper(monkeypatch):
    """A pretend H100: everything that looks at the device answers as one would."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(sm90_24, "cutlass_include", lambda: (ROOT, "a test folder"))
    monkeypatch.setattr(sm90_24, "find_nvcc", lambda: ROOT / "nvcc")
    monkeypatch.setattr(sm90_24, "nvcc_version", lambda nvcc: "13.0.88")


def test_each_missing_piece_is_named(hopper, monkeypatch):
    def boom(verbose=False):
        raise RuntimeError("Error building extension: ninja: build stopped: subcommand failed")

    monkeypatch.setattr(sm90_24, "load", boom)
    ok, reason = sm90_24.available.__wrapped__()
    assert not ok and reason.startswith("build failed:") and "subcommand failed" in reason

    monkeypatch.setattr(sm90_24, "nvcc_version", lambda nvcc: "12.1.105")
    ok, reason = sm90_24.available.__wrapped__()
    assert not ok and "nvcc 12.1.105 is too old" in reason

    monkeypatch.setattr(sm90_24, "find_nvcc", lambda: None)
    ok, reason = sm90_24.available.__wrapped__()
    assert not ok and "no nvcc found" in reason

    monkeypatch.setattr(sm90_24, "cutlass_include", lambda: (None, "no CUTLASS headers: x"))
    ok, reason = sm90_24.available.__wrapped__()
    assert (ok, reason) == (False, "no CUTLASS headers: x")

    monkeypatch.setattr(torch.version, "cuda", None)
    assert sm90_24.available.__wrapped__() == (False, "torch was built without CUDA")

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA A100")
    ok, reason = sm90_24.available.__wrapped__()
    assert not ok and "compute capability 9.0" in reason and "A100 is 8.0" in reason

    def broken(*a):
        raise RuntimeError("CUDA driver version is insufficient")

    monkeypatch.setattr(torch.cuda, "get_device_capability", broken)
    assert sm90_24.available.__wrapped__() == (
        False,
        "RuntimeError: CUDA driver version is insufficient",
    )


def test_a_build_that_works_is_reported_with_its_kernel_count(hopper, monkeypatch):
    class Ext:
        @staticmethod
        def configs():
            return [{}] * 20

    monkeypatch.setattr(sm90_24, "load", lambda verbose=False: Ext)
    ok, reason = sm90_24.available.__wrapped__()
    assert ok and reason.startswith("20 kernels built with nvcc 13.0.88")


def test_building_a_half_where_the_backend_cannot_run_raises_with_the_reason(monkeypatch):
    monkeypatch.setattr(sm90_24, "available", lambda: (False, "no CUDA device visible (x)"))
    w = torch.zeros(64, 128, dtype=torch.bfloat16)
    with pytest.raises(sm90_24.Sm90Unavailable, match=r"cell\[1\]: .*unavailable: no CUDA"):
        sm90_24.Sm90Sparse24Half(w, None, torch.zeros(8, 128, dtype=torch.bfloat16), "cell[1]")
    assert issubclass(sm90_24.Sm90Unavailable, CellSpecError)  # the harness's skip-with-reason


def test_cutlass_headers_are_found_by_env_and_missing_ones_are_named(tmp_path, monkeypatch):
    inc = tmp_path / "include"
    (inc / "cutlass/gemm/collective/builders").mkdir(parents=True)
    (inc / "cutlass/gemm/collective/builders/sm90_sparse_gmma_builder.inl").write_text("")
    (inc / "cute").mkdir()
    (inc / "cute/tensor.hpp").write_text("")
    monkeypatch.setenv(sm90_24.CUTLASS_ENV, str(inc))
    path, where = sm90_24.cutlass_include()
    assert path == inc and where.startswith("$BS_CUTLASS_INCLUDE")

    monkeypatch.setenv(sm90_24.CUTLASS_ENV, str(tmp_path / "nowhere"))
    monkeypatch.setattr(sm90_24, "ROOT", tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    path, why = sm90_24.cutlass_include()
    assert path is None and "nowhere" in why and "pack_cutlass_headers.sh" in why


# ------------------------------------------------------------------ configurations, variants


def test_configuration_names_are_unique_and_every_candidate_round_trips():
    assert len(sm90_24.CONFIG_BY_NAME) == len(sm90_24.CONFIGS)
    for n in (1024, 4096, 8192, 16384, 32768):
        for batch in (1, 8, 16, 24, 32, 40, 64, 100, 128, 256, 1024, 4096):
            found = sm90_24.candidates(n, n, batch, sm_count=132)
            assert found, (n, batch)
            for v in found:
                assert sm90_24.Variant.parse(v.name) == v
                assert v.config.tile_n in sm90_24.tile_n_choices(batch)


def test_every_configuration_is_a_candidate_somewhere_in_the_bench_matrix():
    seen = {
        v.config
        for n in (4096, 8192, 16384, 32768)
        for b in (1, 8, 16, 32, 64, 128, 256, 1024)
        for v in sm90_24.candidates(n, n, b, 132)
    }
    assert seen == set(sm90_24.CONFIGS)


def test_tile_n_holds_the_batch_in_one_tile_up_to_256():
    assert sm90_24.tile_n_choices(1) == {16}
    assert sm90_24.tile_n_choices(16) == {16}
    assert sm90_24.tile_n_choices(17) == {32}
    assert sm90_24.tile_n_choices(64) == {64}
    assert sm90_24.tile_n_choices(128) == {128, 64}
    assert sm90_24.tile_n_choices(256) == {256, 128}
    assert sm90_24.tile_n_choices(1024) == {256, 128}


def test_k_is_split_only_where_output_tiles_leave_sms_idle():
    for n in (4096, 8192, 16384, 32768):
        for batch in (16, 64, 256, 1024):
            for v in sm90_24.candidates(n, n, batch, 132):
                c = v.config
                tiles = -(-n // c.tile_m) * -(-batch // c.tile_n)
                if v.mode != "dp":
                    assert c.stream_k, v.name  # only the cooperative kernel splits K
                if v.mode == "splitk":
                    assert tiles < 132 and tiles * v.splits <= 264, v.name
                    assert n // c.tile_k // v.splits >= 4, v.name
    names = {v.name for v in sm90_24.candidates(4096, 4096, 16, 132)}
    assert "coop_m128_n16_k128_c1x1.splitk4" in names  # 32 tiles: split-K is what fills an H100
    assert not any(".split" in v.name for v in sm90_24.candidates(32768, 32768, 16, 132))


@pytest.mark.parametrize(
    "name, message",
    [
        ("coop_m128_n24_k128_c1x1.dp", "unknown sm90 2:4 configuration"),
        ("coop_m128_n16_k128_c1x1.splitk", "unknown mode"),
        ("coop_m128_n16_k128_c1x1", "unknown mode"),
    ],
)
def test_bad_variant_names_are_refused(name, message):
    with pytest.raises(ValueError, match=message):
        sm90_24.Variant.parse(name)


@pytest.mark.parametrize(
    ("n_out", "n_in", "batch", "dtype", "rule"),
    [
        (128, 256, 16, torch.float32, "bf16 or fp16"),
        (96, 256, 16, torch.bfloat16, "N_out a multiple of 64"),
        (128, 320, 16, torch.float16, "N_in a multiple of 128"),
        (128, 256, 0, torch.bfloat16, "B >= 1"),
    ],
)
def test_shapes_the_kernels_cannot_take_name_the_rule(n_out, n_in, batch, dtype, rule):
    with pytest.raises(CellSpecError, match=rf"phase1\[x\]: backend sm90 .*{rule}"):
        sm90_24.check_shape(n_out, n_in, batch, dtype, "phase1[x]")


def test_generated_sources_are_one_file_per_configuration_and_dtype(tmp_path):
    configs = sm90_24.CONFIGS[:3]
    files = sm90_24.write_sources(tmp_path, configs)
    assert len(files) == 2 * len(configs)
    registry = (tmp_path / "sm90_24_configs.inc").read_text().splitlines()
    want = [f"BS_SM90_CONFIG({sm90_24.entry_function(c, d)})" for c in configs for d in DTYPES]
    assert registry == want
    text = files[0].read_text()
    entry = 'BS_SM90_ENTRY(entry_coop_m128_n16_k128_c1x1_bf16, "coop_m128_n16_k128_c1x1", bf16, '
    assert entry + "Coop, 128, 16, 128, 1, 1)" in text
    stamps = [f.stat().st_mtime_ns for f in files]
    sm90_24.write_sources(tmp_path, configs)  # unchanged text: untouched, no rebuild
    assert [f.stat().st_mtime_ns for f in files] == stamps


# ------------------------------------------------------------------- the metadata converter


def _random_meta(n_out: int, n_in: int, gen: torch.Generator) -> torch.Tensor:
    """Compressed24 meta words with valid codes (i0 < i1) in every group."""
    w = torch.randn(n_out, n_in, generator=gen)
    keep = torch.rand(n_out, n_in // 4, 4, generator=gen).argsort(-1)[..., :2]
    mask = torch.zeros(n_out, n_in // 4, 4, dtype=torch.bool).scatter_(-1, keep, True)
    return compress_reference((w * mask.view(n_out, n_in)).to(torch.bfloat16)).meta


def test_the_converter_is_the_closed_formula_of_its_docstring():
    gen = torch.Generator().manual_seed(3)
    n_out, n_in = 192, 384  # 3 atoms each way: swapped atom strides would show
    meta = _random_meta(n_out, n_in, gen)
    src = meta.view(torch.uint8).view(n_out, n_in // 8)
    want = torch.empty(n_out * n_in // 8, dtype=torch.uint8)
    for m in range(n_out):
        ma, m4, m2, m8 = m // 64, m % 64 // 16, m % 16 // 8, m % 8
        for j in range(n_in // 8):
            ka, kn, k2, kb = j // 16, j % 16 // 4, j % 4 // 2, j % 2
            at = ka * n_out * 16 + ma * 1024 + m4 * 256 + k2 * 128 + m8 * 16 + kn * 4 + m2 * 2 + kb
            want[at] = src[m, j]
    assert torch.equal(sm90_24.to_cutlass_meta(meta), want)


def test_the_converter_round_trips_and_writes_into_the_given_buffer():
    gen = torch.Generator().manual_seed(4)
    meta = _random_meta(128, 512, gen)
    out = torch.empty(128 * 512 // 8, dtype=torch.uint8)
    ptr = out.data_ptr()
    got = sm90_24.to_cutlass_meta(meta, out=out)
    assert got.data_ptr() == ptr  # a re-compression keeps the GEMM's buffer
    assert torch.equal(sm90_24.from_cutlass_meta(out, 128, 512), meta)
    with pytest.raises(CellSpecError, match="N_out % 64"):
        sm90_24.to_cutlass_meta(meta[:96])


# ------------------------------------------------- the half and the GPU checks, emulated


def _cutlass_rules_compress(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, E) as CUTLASS's sm90 compressor writes them (its chunk rules: nonzeros in order,
    -0.0 is zero, a lone value pairs with index 3, an empty group gets code 0), in Python."""
    n_out, n_in = w.shape
    bits = w.reshape(n_out, n_in // 4, 4).view(torch.int16)
    values = torch.zeros(n_out, n_in // 4, 2, dtype=torch.int16)
    codes = torch.zeros(n_out, n_in // 4, dtype=torch.int32)
    for r in range(n_out):
        for g in range(n_in // 4):
            kept = [j for j in range(4) if int(bits[r, g, j]) & 0x7FFF]
            vals = [int(bits[r, g, j]) for j in kept]
            if len(kept) == 1 and kept[0] == 3:
                kept, vals = [0, 3], [0, vals[0]]
            elif len(kept) == 1:
                kept, vals = [kept[0], 3], [vals[0], 0]
            elif not kept:
                kept, vals = [0, 0], [0, 0]
            values[r, g] = torch.tensor(vals, dtype=torch.int16)
            codes[r, g] = kept[0] | kept[1] << 2
    shifts = 4 * torch.arange(8)
    words = (codes.view(n_out, -1, 8).long() << shifts).sum(-1)
    meta = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
    return values.view(n_out, n_in // 2).view(w.dtype), sm90_24.to_cutlass_meta(meta)


class _EmulatedExt:
    """The binding's interface with the GEMM emulated in float64 on the CPU. It reads exactly
    the buffers the kernel reads (the half's values and CUTLASS's E, decoded through
    from_cutlass_meta), so a wrong permutation, a stale buffer or a lost plant shows."""

    __name__ = "bs_sm90_24_emulated"

    def __init__(self):
        self.calls = []

    def configs(self):
        pairs = [(c, d) for c in sm90_24.CONFIGS for d in DTYPES]
        return [
            {"index": i, "name": c.name, "dtype": d, "tile_m": c.tile_m, "tile_n": c.tile_n,
             "tile_k": c.tile_k, "stream_k": c.stream_k, "e_atom_k": 128, "stages": 4,
             "smem_bytes": 0, "threads": 384}
            for i, (c, d) in enumerate(pairs)
        ]  # fmt: skip

    def workspace_bytes(self, index, m, n, k, mode, splits, sms):
        return 4096 * splits if mode == sm90_24.MODES["splitk"] else 0

    def check(self, index, values, meta, x, bias, out, workspace, mode, splits, sms):
        cfg = self.configs()[index]
        if sm90_24.DTYPES[values.dtype] != cfg["dtype"]:
            return f"configuration {cfg['name']} is built for {cfg['dtype']}"
        if workspace.numel() < self.workspace_bytes(index, 0, 0, 0, mode, splits, sms):
            return "workspace too small"
        return ""

    def prepare(self, index):
        pass

    def gemm(self, index, values, meta, x, bias, out, workspace, mode, splits, sms):
        self.calls.append((index, mode, splits))
        n_out, n_in = values.shape[0], values.shape[1] * 2
        w = decompress(Compressed24(values, sm90_24.from_cutlass_meta(meta, n_out, n_in)))
        y = x.double() @ w.double().t()
        out.copy_(y if bias is None else y + bias.double())
        return out

    def cutlass_compress(self, dense):
        return _cutlass_rules_compress(dense)


@pytest.fixture
def emulated(monkeypatch, tmp_path):
    """sm90_24 on the CPU with the emulated kernel: the real half, tuner and cache around it."""
    ext = _EmulatedExt()
    props = type("Props", (), {"multi_processor_count": 132})()
    monkeypatch.setattr(sm90_24, "available", lambda: (True, "emulated"))
    monkeypatch.setattr(sm90_24, "load", lambda verbose=False: ext)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a: props)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "emulated H100")
    monkeypatch.setenv(sm90_24.CACHE_ENV, str(tmp_path / "sm90_cache.json"))
    ticks = iter(range(1000, 0, -1))  # each variant timed is faster than the one before
    monkeypatch.setattr(sm90_24, "_median_ms", lambda fn: (fn(), next(ticks) / 1000)[1])
    return ext


def _masked(n_out, n_in, dtype, gen, mask="random_2of4"):
    from kernels.masks import make_mask_pair

    w = torch.randn(n_out, n_in, generator=gen).to(dtype)
    return w * make_mask_pair(mask, w, gen)[0]


def test_the_half_tunes_once_caches_its_choice_and_computes_x_w_t(emulated, tmp_path):
    gen = torch.Generator().manual_seed(21)
    w = _masked(512, 1024, torch.bfloat16, gen)
    bias = torch.randn(512, generator=gen).to(torch.bfloat16)
    x = torch.randn(16, 1024, generator=gen).to(torch.bfloat16)
    half = sm90_24.Sm90Sparse24Half(w, bias, x, "cell")
    options = [v.name for v in sm90_24.candidates(512, 1024, 16, 132)]
    assert half.alg_source == "tuned" and list(half.tuning_ms) == options
    assert not half.tuning_errors
    assert half.alg_id == options[-1]  # the emulated timer made the last one fastest
    assert half.stored_bytes == 512 * 1024 * 2 * 9 // 16
    out = torch.full((16, 512), float("nan"), dtype=torch.bfloat16)
    assert half.mm_into(x, out) is out
    want = (x.double() @ w.double().t() + bias.double()).to(torch.bfloat16)
    assert torch.equal(out, want)
    again = sm90_24.Sm90Sparse24Half(w, bias, x, "cell")
    assert again.alg_source.startswith("cache ") and again.alg_id == half.alg_id
    assert not again.tuning_ms
    stored = json.loads((tmp_path / "sm90_cache.json").read_text())
    assert list(stored.values()) == [half.alg_id]
    assert "emulated H100 | cutlass sm90 2:4 emulated | " in next(iter(stored))


def test_recompress_from_a_transposed_view_keeps_the_buffers(emulated):
    gen = torch.Generator().manual_seed(22)
    w = _masked(256, 512, torch.float16, gen, "transposable_random")
    x = torch.randn(8, 256, generator=gen).to(torch.float16)
    half = sm90_24.Sm90Sparse24Half(w.t(), None, x, variant="pingpong_m64_n16_k128_c1x1.dp")
    assert half.alg_source == "given"
    buffers = [t.data_ptr() for t in (half.compressed.values, half.meta_e)]
    assert torch.equal(half.mm(x), (x.double() @ w.double()).to(torch.float16))
    w2 = _masked(256, 512, torch.float16, gen, "transposable_random")  # another mask too
    half.recompress(w2.t())
    assert [t.data_ptr() for t in (half.compressed.values, half.meta_e)] == buffers
    assert torch.equal(half.mm(x), (x.double() @ w2.double()).to(torch.float16))


def test_a_split_k_variant_gets_its_workspace_and_a_wrong_dtype_is_refused(emulated):
    gen = torch.Generator().manual_seed(23)
    w = _masked(256, 1024, torch.bfloat16, gen)
    x = torch.randn(16, 1024, generator=gen).to(torch.bfloat16)
    half = sm90_24.Sm90Sparse24Half(w, None, x, variant="coop_m128_n16_k128_c1x1.splitk4")
    assert half.workspace.numel() == 4096 * 4
    half.mm(x)
    assert emulated.calls[-1][1:] == (sm90_24.MODES["splitk"], 4)
    with pytest.raises(CellSpecError, match="backend sm90 needs bf16 or fp16"):
        sm90_24.Sm90Sparse24Half(w.float(), None, x.float())


def test_a_variant_cutlass_refuses_is_skipped_by_the_tuner_with_its_reason(emulated, monkeypatch):
    refuse = "coop_m128_n16_k128_c1x1.splitk2"

    def gemm(index, values, meta, x, bias, out, workspace, mode, splits, sms):
        if (mode, splits) == (sm90_24.MODES["splitk"], 2):
            raise RuntimeError("sm90_24 coop_m128_n16_k128_c1x1: CUTLASS run: Error Internal")
        return _EmulatedExt.gemm(emulated, index, values, meta, x, bias, out, workspace, mode,
                                 splits, sms)  # fmt: skip

    monkeypatch.setattr(emulated, "gemm", gemm)
    gen = torch.Generator().manual_seed(26)
    w = _masked(256, 1024, torch.bfloat16, gen)
    half = sm90_24.Sm90Sparse24Half(w, None, torch.randn(16, 1024).to(torch.bfloat16))
    assert refuse not in half.tuning_ms and "Error Internal" in half.tuning_errors[refuse]
    assert half.alg_id != refuse


@pytest.fixture
def gpu_check(emulated, monkeypatch):
    """scripts/sm90_gpu_check.py's checks on the CPU against the emulated kernel, small shapes."""
    gpu = _gpu_check_module()
    monkeypatch.setattr(gpu, "DEVICE", "cpu")
    monkeypatch.setattr(gpu, "COMPRESSOR_SHAPES", ((128, 256), (256, 128)))
    monkeypatch.setattr(gpu, "TRANSPOSED_SHAPES", ((256, 128, 8), (128, 512, 40)))
    return gpu


def test_the_gpu_scripts_checks_pass_and_catch_every_plant_on_a_correct_kernel(gpu_check):
    gpu = gpu_check
    report = gpu.Report(None)
    gen = torch.Generator().manual_seed(24)
    gpu.check_compressor(report, "bf16", gen)
    gpu.check_variants(report, "fp16", 256, (1, 40), gen)
    gpu.check_planted(report, "bf16", 256, 16, gen)
    gpu.check_transposed(report, "bf16", gen)
    assert not report.doc["failures"], report.doc["failures"]
    kinds = {c["check"] for c in report.doc["checks"]}
    assert kinds == {"compressor", "variant", "planted", "transposed"}
    planted = [c for c in report.doc["checks"] if c["check"] == "planted"]
    assert {c["plant"] for c in planted} == {"plant_moved_index", "plant_swapped_pair"}
    assert all(c["caught"]["mismatches"] > 0 and c["restored"]["exact"] for c in planted)


def test_the_gpu_scripts_checks_fail_on_a_wrong_metadata_layout(gpu_check, monkeypatch):
    """A converter that lays E out in another order (atoms along K first) must fail the exact
    probe: the checks see layout bugs, not just crashes."""
    right = sm90_24.to_cutlass_meta

    def wrong(meta, out=None):
        e = right(meta)
        n_out, n_in = meta.shape[0], meta.shape[1] * 32
        e = e.view(n_in // 128, n_out // 64, 1024).transpose(0, 1).contiguous().view(-1)
        return e if out is None else out.copy_(e)

    monkeypatch.setattr(sm90_24, "to_cutlass_meta", wrong)
    gpu = gpu_check
    report = gpu.Report(None)
    gpu.check_variants(report, "bf16", 256, (16,), torch.Generator().manual_seed(25))
    assert report.doc["failures"]
    assert all(not c["exact"]["exact"] for c in report.doc["checks"])


# ------------------------------------------------------------------------------- toolchain


def _two_of_four(n_out, n_in, dtype, gen, exactly_two=True) -> torch.Tensor:
    """A random 2:4 weight; `exactly_two`: every group keeps two nonzero values."""
    w = torch.randn(n_out, n_in, generator=gen).to(dtype)
    w = torch.where(w == 0, torch.ones_like(w), w)
    keep = torch.rand(n_out, n_in // 4, 4, generator=gen).argsort(-1)[..., :2]
    mask = torch.zeros(n_out, n_in // 4, 4, dtype=torch.bool).scatter_(-1, keep, True)
    w = w * mask.view(n_out, n_in)
    if not exactly_two:  # groups with one or no nonzero, and a negative zero
        w[:, ::8] = 0
        w[::3, 1::8] = 0
        w[5, 0:4] = torch.tensor([0.0, -0.0, 0.0, 2.0])
        w[6, 4:8] = torch.tensor([-0.0, 0.0, 0.0, 0.0])
    return w


def _host_reference(w: torch.Tensor, tmp_path) -> tuple[torch.Tensor, torch.Tensor]:
    n_out, n_in = w.shape
    binary = sm90_24.host_reference_binary()
    dense, values, meta = (tmp_path / f for f in ("dense.bin", "values.bin", "meta.bin"))
    w.contiguous().view(torch.int16).numpy().tofile(dense)
    dtype = sm90_24.DTYPES[w.dtype]
    cmd = [str(binary), dtype, str(n_out), str(n_in), str(dense), str(values), str(meta)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    v = torch.from_numpy(np.fromfile(values, dtype=np.int16)).view(n_out, n_in // 2)
    return v, torch.from_numpy(np.fromfile(meta, dtype=np.uint8))


@needs_toolchain
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("shape", [(64, 128), (192, 384), (128, 1024)], ids=str)
def test_the_converter_writes_cutlass_compressors_bytes(dtype, shape, tmp_path):
    """Compressed24 -> (values, E) against CUTLASS's compression on the host, bit for bit."""
    gen = torch.Generator().manual_seed(shape[0] + shape[1])
    w = _two_of_four(*shape, dtype, gen)
    values, meta = _host_reference(w, tmp_path)
    ours = compress_reference(w)
    assert torch.equal(ours.values.view(torch.int16), values)
    assert torch.equal(sm90_24.to_cutlass_meta(ours.meta), meta)


@needs_toolchain
def test_groups_with_fewer_than_two_nonzeros_decode_to_the_same_weight(tmp_path):
    """There CUTLASS and Compressed24 write different codes (CUTLASS pairs a lone value with
    index 3, an empty group gets code 0); both must decode to the weight."""
    w = _two_of_four(128, 512, torch.bfloat16, torch.Generator().manual_seed(9), False)
    values, meta = _host_reference(w, tmp_path)
    theirs = Compressed24(values.view(torch.bfloat16), sm90_24.from_cutlass_meta(meta, 128, 512))
    assert torch.equal(decompress(theirs), w)  # -0.0 == 0.0: the zeros are the same weight
    assert not torch.equal(sm90_24.to_cutlass_meta(compress_reference(w).meta), meta)


def _sass(configs: str, tmp_path) -> dict:
    out = tmp_path / "sass.json"
    cmd = [sys.executable, "scripts/sm90_sass_check.py", "--configs", configs, "--json", str(out)]
    if configs != "none":
        cmd.append("--no-compressor")
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    return json.loads(out.read_text())


@needs_toolchain
@needs_cuobjdump
@pytest.mark.parametrize("config", [c.name for c in sm90_24.CONFIGS])
def test_every_configuration_issues_the_sparse_tensor_core_instruction(config, tmp_path):
    """Compiled for sm_90a as the JIT build compiles it; HGMMA.SP (wgmma.sp) and no dense
    HGMMA in the SASS, and no local-memory spills."""
    doc = _sass(config, tmp_path)
    results = doc["results"]
    assert {r["dtype"] for r in results} == {"bf16", "fp16"}
    tile_n = sm90_24.CONFIG_BY_NAME[config].tile_n
    for r in results:
        assert r["sparse"] > 0 and r["dense"] == 0, r
        # fp16 prints as HGMMA.SP.64xNx32.F32 (no input suffix), bf16 with .BF16
        suffix = ".F32.BF16" if r["dtype"] == "bf16" else ".F32"
        assert list(r["hgmma"]) == [f"HGMMA.SP.64x{tile_n}x32{suffix}"], r
        assert r["local"] == 0, r


@needs_toolchain
@needs_cuobjdump
def test_cutlass_compressor_compiles_for_sm90a(tmp_path):
    [r] = _sass("none", tmp_path)["results"]
    assert r["name"] == "compressor" and r["compiled"]


# ------------------------------------------------------------------------------------- GPU


def _gpu_check_module():
    spec = importlib.util.spec_from_file_location(
        "sm90_gpu_check", ROOT / "scripts/sm90_gpu_check.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)")
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_on_hopper_the_kernels_are_exact_and_see_planted_metadata_errors(dtype):
    ok, reason = sm90_24.available()
    if not ok:
        pytest.skip(f"sm90 backend unavailable: {reason}")
    gpu = _gpu_check_module()
    report = gpu.Report(None)
    gen = torch.Generator(device="cuda").manual_seed(11)
    gpu.check_compressor(report, dtype, gen)
    gpu.check_variants(report, dtype, 1024, (1, 40, 256), gen)
    gpu.check_planted(report, dtype, 1024, 16, gen)
    gpu.check_transposed(report, dtype, gen)
    gpu.check_graph_recompress(report, dtype, gen)
    assert report.doc["checks"] and not report.doc["failures"], report.doc["failures"]
