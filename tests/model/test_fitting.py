"""The fitter recovers known parameters from cells made with them, and calibration makes the
model reproduce the target's cell exactly while leaving the rest at the source's values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from reports.model import fitting, machine
from reports.model.observations import CollectiveSample, Measured, Observation
from reports.model.time_model import Cell, Fit, KernelParams, LinkParams, predict, units

GPUS = machine.load_all()
H100, H200 = GPUS["h100_sxm"], GPUS["h200"]
TRUE = {
    "dense": KernelParams({"graph": 4e-6, "eager": 30e-6}, bw_eff=0.87, math_eff=0.66),
    "2:4 cslt": KernelParams({"graph": 17e-6, "eager": 550e-6}, bw_eff=0.55, math_eff=0.62),
}
LINK = LinkParams(latency_s=40e-6, bw_eff=0.6, small_latency_s=20e-6, small_bw_eff=0.15)
TRUTH = Fit("h100_sxm", TRUE, {"nvlink4": LINK}, "the truth")


def cells(gpu, rng=None, noise=0.0) -> Measured:
    """Cells timed 'by' the true parameters (times scaled by 1 +- noise), their collectives."""
    out, colls = [], []
    for (method, backend), n, b, mode in itertools.product(
        (
            ("dense_single", None),
            ("dense_half", None),
            ("block_shock_half", "cslt"),
            ("dense_tp_row", None),
            ("block_shock", "cslt"),
        ),
        (8192, 16384, 32768),
        (16, 256, 4096),
        ("graph", "eager"),
    ):
        ws = 2 if method in ("dense_tp_row", "block_shock") else 1
        c = Cell(method, backend, n, n, b, "bf16", ws, mode)
        p = predict(c, gpu, Fit(gpu.key, TRUE, {gpu.link.key: LINK}, "truth"))
        k = 1 + (rng.uniform(-noise, noise) if rng is not None else 0.0)
        coll = p.collective_s * k if ws == 2 and mode == "graph" else None
        comp = p.compute_s * k if ws == 1 or mode == "graph" else None
        out.append(Observation(c, gpu.key, p.total_s * k, comp, coll, "synthetic"))
    for payload in (2**20, 2**28):  # ceilings-style samples, 1 MiB and 256 MiB
        c = Cell("dense_tp_row", None, payload // 2, payload // 2, 1, "bf16", 2)
        t = predict(c, gpu, Fit(gpu.key, TRUE, {gpu.link.key: LINK}, "truth")).collective_s
        colls.append(CollectiveSample(gpu.key, "all_reduce", payload, 2, t, "ceilings"))
    return Measured(out, colls)


def test_fit_recovers_the_parameters_cells_were_made_with():
    """To 0.1%: the fit's pull toward its prior (a ridge of 1e-3) biases it by less."""
    f = fitting.fit(cells(H100), H100)
    for kernel, true in TRUE.items():
        got = f.kernels[kernel]
        assert got.bw_eff == pytest.approx(true.bw_eff, rel=1e-3)
        assert got.math_eff == pytest.approx(true.math_eff, rel=1e-3)
        for mode in ("graph", "eager"):
            assert got.per_call_s[mode] == pytest.approx(true.per_call_s[mode], rel=1e-3)
        assert max(map(abs, f.residuals[kernel])) < 1e-3
    link = f.links["nvlink4"]
    for name in fitting.LINK_NAMES:
        assert getattr(link, name) == pytest.approx(getattr(LINK, name), rel=1e-3), name


def test_fit_under_noise_stays_close():
    f = fitting.fit(cells(H100, np.random.default_rng(0), noise=0.03), H100)
    assert f.kernels["dense"].bw_eff == pytest.approx(0.87, rel=0.03)
    assert f.kernels["2:4 cslt"].math_eff == pytest.approx(0.62, rel=0.05)


def test_l2_resident_cells_are_left_out_of_the_fit():
    c = Cell("dense_single", None, 4096, 4096, 16, "bf16", 1)
    absurd = Observation(c, "h100_sxm", 1.0, 1.0, None, "absurd")  # a second per forward
    f = fitting.fit(Measured([*cells(H100).cells, absurd], cells(H100).collectives), H100)
    assert f.kernels["dense"].bw_eff == pytest.approx(0.87, rel=1e-3)


def test_one_memory_bound_cell_pins_the_bandwidth_and_nothing_else():
    src = fitting.fit(cells(H100), H100)
    c = Cell("dense_single", None, 32768, 32768, 16, "bf16", 1)
    measured = 0.8e-3  # slower than the source's parameters say on an H200
    target = Measured([Observation(c, "h200", measured, measured, None, "target")])
    cal = fitting.calibrate(src, target, H200)
    assert predict(c, H200, cal).total_s == pytest.approx(measured, rel=1e-9)
    assert cal.kernels["dense"].math_eff == src.kernels["dense"].math_eff
    assert cal.kernels["2:4 cslt"] == src.kernels["2:4 cslt"]
    assert cal.origin["dense.bw_eff"] == "calibrated with 1 cells of H200"
    assert "not calibrated on H200" in cal.origin["dense.math_eff"]
    assert not cal.extrapolated


@pytest.mark.parametrize(
    ("batch", "pinned", "scaled"),
    [(4096, "bw_eff", "small_bw_eff"), (64, "latency_s", "small_latency_s")],
)
def test_a_collective_pins_its_dominant_term_and_the_other_protocol_follows(batch, pinned, scaled):
    """A 256 MiB all-reduce is bandwidth-bound, a 4 MiB one latency-bound; the protocol the cell
    did not use keeps the source's ratio, so a slow link cannot keep a fast small protocol."""
    src = fitting.fit(cells(H100), H100)
    c = Cell("dense_tp_row", None, 32768, 32768, batch, "bf16", 2)
    p = predict(c, H200, src)
    slow = p.collective_s * 3
    target = Measured([Observation(c, "h200", p.compute_s + slow, p.compute_s, slow, "target")])
    cal = fitting.calibrate(src, target, H200)
    link, before = cal.links["nvlink4"], src.links["nvlink4"]
    assert predict(c, H200, cal).collective_s == pytest.approx(slow, rel=1e-9)
    x = units(c, H200).link_s_at_peak
    small = link.small_latency_s + x / link.small_bw_eff
    bulk = link.latency_s + x / link.bw_eff
    assert min(small, bulk) == pytest.approx(slow, rel=1e-9)  # neither protocol undercuts it
    moved, carried = (getattr(link, n) / getattr(before, n) for n in (pinned, scaled))
    assert (moved > 1) == (carried > 1) and abs(np.log(carried)) >= abs(np.log(moved)) - 1e-9
    assert cal.origin[f"link.{pinned}"] == "calibrated with 1 collectives of H200"
    assert cal.origin[f"link.{scaled}"] == "scaled as the calibrated protocol's on H200"


def test_no_target_cell_means_an_extrapolation_that_says_from_what():
    src = fitting.fit(cells(H100), H100)
    f = fitting.calibrate(src, Measured(), GPUS["b200"])
    assert f.extrapolated and f.basis.startswith("extrapolated to B200 from the fit on")
    assert "nvlink4's" in f.origin["link nvlink5"]
    p = predict(Cell("dense_tp_row", None, 16384, 16384, 64, "bf16", 2), GPUS["b200"], f)
    assert p.extrapolated and p.collective_s > 0


def test_a_backend_with_no_cells_borrows_its_library_and_says_so():
    f = fitting.with_fallbacks(fitting.fit(cells(H100), H100))
    assert f.kernels["2:4 flinear"] == f.kernels["2:4 cslt"]
    assert fitting.borrowed(f) == {"2:4 flinear", "2:4 cslt_padded"}
    assert f.origin["2:4 flinear"].endswith("(same library)")
    refit = fitting.fit(cells(H200), H200, prior=f)  # a refit never carries a stale loan
    assert "2:4 flinear" not in refit.kernels
