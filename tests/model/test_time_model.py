"""The time model's physics: its terms come from the registry's work model over the description's
peaks, and the comparisons docs/DESIGN.md derives by hand come out of it."""

from __future__ import annotations

import pytest

from common.errors import ReportInputError
from kernels.registry import spec, twins
from reports.model import machine
from reports.model.compose import compose
from reports.model.observations import Observation
from reports.model.time_model import (
    Cell,
    Fit,
    KernelParams,
    LinkParams,
    bus_bytes,
    predict,
    units,
)

H100 = machine.load_all()["h100_sxm"]
SAME = KernelParams({"graph": 0.0, "eager": 0.0}, bw_eff=0.8, math_eff=0.7)
LINK = LinkParams(latency_s=30e-6, bw_eff=0.6, small_latency_s=10e-6, small_bw_eff=0.15)
FIT = Fit(
    "h100_sxm",
    {k: SAME for k in ("dense", "2:4 cslt", "2:4 triton")},
    {"nvlink4": LINK},
    "test parameters",
)


def cell(method: str, n: int, b: int, backend: str | None = None, ws: int = 2) -> Cell:
    return Cell(method, backend, n, n, b, "bf16", ws if method != "dense_single" else 1)


def test_terms_are_the_registry_work_over_the_description_peaks():
    c = cell("block_shock", 16384, 64, "cslt")
    w = spec("block_shock").work(16384, 16384, 64, 2, 2)
    u = units(c, H100)
    assert u.mem_s_at_peak == w.bytes / H100.memory_bytes_per_s
    assert u.math_s_at_peak == 2 * w.flops / H100.math_rate("bf16", sparse=True)
    assert u.link_s_at_peak == w.collective_bytes / H100.link.bytes_per_s


def test_memory_bound_block_shock_reads_nine_eighths_of_tp():
    """At B=1 the bytes are the weights: a 2:4 half stores 9/16 of 2N^2, a TP shard N^2."""
    bs, tp = (
        predict(cell(m, 32768, 1, b), H100, FIT)
        for m, b in (("block_shock", "cslt"), ("dense_tp_row", None))
    )
    assert bs.regime == tp.regime == "memory"
    assert bs.memory_s / tp.memory_s == pytest.approx(9 / 8, rel=1e-3)


def test_math_bound_sparse_tensor_cores_tie_tp_and_triton_pays_double():
    """Twice the rate on half the work is a tie (docs/DESIGN.md); dense MMAs over the expanded
    weight (Triton) take twice as long."""
    n, b = 16384, 65536
    tp = predict(cell("dense_tp_row", n, b), H100, FIT)
    cslt = predict(cell("block_shock", n, b, "cslt"), H100, FIT)
    triton = predict(cell("block_shock", n, b, "triton"), H100, FIT)
    assert tp.regime == cslt.regime == "math"
    assert cslt.math_s == pytest.approx(tp.math_s, rel=1e-4)  # 1978.9 vs 2 x 989.4 TFLOP/s
    assert triton.math_s == pytest.approx(2 * tp.math_s, rel=1e-12)


def test_bus_bytes_follow_nccl_tests():
    assert bus_bytes("all_reduce", 100.0, 2) == 100.0
    assert bus_bytes("all_reduce", 100.0, 4) == 150.0
    assert bus_bytes("all_gather", 100.0, 2) == 50.0
    with pytest.raises(ReportInputError, match="no link model for collective 'broadcast'"):
        bus_bytes("broadcast", 1.0, 2)


def test_nccl_picks_the_faster_protocol():
    small, big = 1e-6, 1e-3  # bus seconds at the link's peak
    assert LINK.protocol(small) == "small" and LINK.protocol(big) == "bulk"
    assert LINK.time(small) == pytest.approx(10e-6 + small / 0.15)
    assert LINK.time(big) == pytest.approx(30e-6 + big / 0.6)


def test_one_gpu_and_l2_resident_cells():
    p = predict(cell("dense_single", 4096, 16), H100, FIT)
    assert p.collective_s == 0 and p.l2_resident  # 33.5 MB of weights, 50 MiB of L2
    assert not predict(cell("dense_single", 8192, 16), H100, FIT).l2_resident
    assert p.regime == max(p.terms, key=p.terms.__getitem__)


def test_a_kernel_the_fit_lacks_is_refused_by_name():
    with pytest.raises(ReportInputError, match="kernel '2:4 flinear' has no fitted parameters"):
        predict(cell("block_shock", 16384, 64, "flinear"), H100, FIT)


@pytest.mark.parametrize(("two", "one"), sorted(twins().items()))
def test_each_two_rank_method_runs_its_one_gpu_twin(two, one):
    """Composition rests on this: a rank of the two-rank method moves and computes exactly what
    its one-GPU twin does."""
    for n, b in ((4096, 16), (16384, 1024)):
        w2, w1 = spec(two).work(n, n, b, 2, 2), spec(one).work(n, n, b, 2, 1)
        assert (w2.bytes, w2.flops, w2.weight_bytes) == (w1.bytes, w1.flops, w1.weight_bytes)


def test_a_composed_cell_is_its_measured_half_plus_the_link():
    two = cell("block_shock", 16384, 64, "cslt")
    half = Observation(
        Cell("block_shock_half", "cslt", 16384, 16384, 64, "bf16", 1),
        "h100_sxm",
        2.0e-4,
        2.0e-4,
        None,
        "x.json::half",
    )
    c = compose(two, [half], H100, FIT)
    assert c is not None and c.half is half
    assert c.total_s == pytest.approx(2.0e-4 + predict(two, H100, FIT).collective_s)
    assert compose(cell("dense_tp_col", 16384, 64), [half], H100, FIT) is None
