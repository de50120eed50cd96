"""Energy windows: idle subtraction and per-token arithmetic with a real clock, RAPL from a
powercap tree the test writes, and the paths that must say `unavailable` instead of a number."""

import os
import threading
import time

import pytest
import torch

from common.errors import MeterUnavailable
from measure import energy, nvml
from tests import rank_tasks


@pytest.fixture
def powercap(tmp_path):
    """A powercap folder whose counter a thread advances at 50 W (50 uJ per us) in real time."""
    (tmp_path / "max_energy_range_uj").write_text(str(2**32))
    counter = tmp_path / "energy_uj"
    counter.write_text("0")
    tmp = tmp_path / "energy_uj.tmp"
    stop = threading.Event()
    t0 = time.perf_counter()

    def tick():
        while not stop.is_set():
            tmp.write_text(str(int((time.perf_counter() - t0) * 50e6) % 2**32))
            os.replace(tmp, counter)  # whole values only, as sysfs gives
            time.sleep(0.002)

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    yield tmp_path
    stop.set()
    th.join()


def test_rapl_window_reads_the_counter_over_a_real_interval(powercap):
    meter = energy.RaplMeter(powercap)
    meter.begin_window("w")
    time.sleep(0.2)
    w = meter.end_window("w")
    assert w.seconds == pytest.approx(0.2, abs=0.05)
    assert w.watts == pytest.approx(50, rel=0.15)


def test_idle_is_subtracted_and_split_per_forward_and_token():
    active = energy.Window("forward", "test", seconds=2.0, joules=500.0)
    idle = energy.Window("idle", "test", seconds=1.0, joules=100.0)
    fig = energy.energy_figures(active, idle, forwards=1000, tokens_per_forward=64)
    assert fig["idle_w"] == 100 and fig["avg_w"] == 250
    assert fig["net_joules"] == pytest.approx(300)
    assert fig["j_per_forward"] == pytest.approx(0.3)
    assert fig["j_per_token"] == pytest.approx(0.3 / 64)
    assert fig["edp_j_s"] == pytest.approx(0.3 * 2.0 / 1000)


def test_a_window_not_above_idle_gives_no_number_but_a_reason():
    active = energy.Window("forward", "test", seconds=1.0, joules=90.0)
    idle = energy.Window("idle", "test", seconds=1.0, joules=100.0)
    fig = energy.energy_figures(active, idle, forwards=1000, tokens_per_forward=64)
    assert fig["energy"] == "below idle" and "j_per_forward" not in fig
    assert "not above idle (100.0 W)" in fig["reason"]


def test_counter_and_power_integral_are_cross_checked():
    samples = [(t / 10, 200.0, 1980, 50, 0) for t in range(11)]  # 200 W for 1 s
    assert energy.integrate(samples, 0.0, 1.0) == pytest.approx(200)
    active = energy.Window("forward", "nvml_energy_counter", 1.0, 210.0, 200.0, samples)
    fig = energy.energy_figures(active, energy.Window("idle", "x", 1.0, 50.0), 10, 1)
    assert fig["counter_vs_integral"] == pytest.approx(0.05)
    assert fig["peak_w"] == 200 and fig["throttle_reasons_seen"] == "0x0"


def test_throttle_bits_seen_in_the_window_are_reported():
    samples = [(0.0, 700.0, 1260, 70, 0x4), (1.0, 700.0, 1260, 70, 0x1)]
    active = energy.Window("forward", "nvml_energy_counter", 1.0, 700.0, 700.0, samples)
    fig = energy.energy_figures(active, energy.Window("idle", "x", 1.0, 80.0), 10, 1)
    assert fig["throttle_reasons_seen"] == "0x4"  # sw power cap kept, the idle bit dropped


def test_no_gpu_and_no_rapl_means_unavailable_with_a_reason(tmp_path):
    with pytest.raises(MeterUnavailable, match="RAPL not readable"):
        energy.RaplMeter(tmp_path / "absent")
    with pytest.raises(MeterUnavailable, match="is not an NVIDIA GPU"):
        nvml.handle(torch.device("cpu"))


def test_missing_nvml_library_is_unavailable(monkeypatch):
    monkeypatch.setattr(nvml, "pynvml", None)
    with pytest.raises(MeterUnavailable, match="nvidia-ml-py is not installed"):
        nvml.handle(torch.device("cuda", 0))


def test_idle_power_reads_a_real_interval_after_settling(powercap):
    idle = energy.idle_power(energy.RaplMeter(powercap), 0.1)
    assert idle.settle_s == 0.0 and idle.seconds >= 0.1
    assert idle.watts == pytest.approx(50, rel=0.2)


def test_energy_window_ends_on_the_same_forward_on_every_rank(gloo_pair):
    (n0, agreed0), (n1, agreed1) = gloo_pair.run(rank_tasks.fill_uneven_window)
    assert n0 == n1 and n0 >= 1
    assert agreed0 == agreed1 == [1.0, 0.0]  # each value's maximum over the two ranks
