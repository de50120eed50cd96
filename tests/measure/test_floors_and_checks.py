"""Floors follow the byte and FLOP counts of docs/DESIGN.md; bounds follow dtype and K."""

import math

import pytest
import torch

from measure.checks import bounds as checks
from measure.timing import floors

CEIL = {
    "copy_bytes_per_s": 3e12,
    "matmul_flop_per_s": 7e14,
    "all_reduce_bus_bytes_per_s": 1e11,
    "all_gather_bus_bytes_per_s": 1e11,
}


def test_block_shock_weight_floor_is_9_8_of_tp_at_small_batch():
    bs = floors.work("block_shock", 32768, 32768, 64, 2, 2)["weight_bytes"]
    tp = floors.work("dense_tp_row", 32768, 32768, 64, 2, 2)["weight_bytes"]
    assert bs / tp == pytest.approx(9 / 8)
    f = floors.floor("block_shock", 32768, 32768, 64, 2, 2, CEIL)
    assert f["bound"] == "memory"


def test_large_batch_block_shock_and_tp_tie_on_math():
    kw = dict(n_in=32768, n_out=32768, batch=65536, elem=2, ws=2, ceilings=CEIL)
    bs = floors.floor("block_shock", **kw)
    tp = floors.floor("dense_tp_row", **kw)
    assert bs["bound"] == tp["bound"] == "math"
    assert bs["floor_compute_s"] == pytest.approx(tp["floor_compute_s"])


def test_dense_single_floor_is_weight_bytes_over_bandwidth():
    f = floors.floor("dense_single", 8192, 8192, 1, 2, 1, CEIL)
    assert f["floor_collective_s"] == 0
    assert f["floor_s"] == pytest.approx((2 * 8192 * 8192 + 2 * 8192 * 2) / 3e12)


def test_bounds_grow_with_roundings_and_k():
    one = checks.bounds(torch.bfloat16, 4096, None, 1)
    two = checks.bounds(torch.bfloat16, 4096, "all_reduce", 2)
    assert two["roundings"] == 3 and one["roundings"] == 1
    assert two["rel_fro_bound"] / one["rel_fro_bound"] == pytest.approx(math.sqrt(3), rel=1e-3)
    assert checks.bounds(torch.float16, 4096, None, 1)["rel_fro_bound"] < one["rel_fro_bound"]


def test_reference_is_chunked_float64(monkeypatch):
    monkeypatch.setattr(checks, "REFERENCE_CHUNK_BYTES", 8 * 64 * 3)  # 3 rows per chunk
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(5, 64, generator=g), torch.randn(10, 64, generator=g), torch.randn(10)
    ref, absref = checks.reference(x, w, b)
    torch.testing.assert_close(ref, x.double() @ w.double().t() + b.double())
    torch.testing.assert_close(absref, x.double().abs() @ w.double().abs().t() + b.double().abs())
