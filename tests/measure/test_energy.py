"""Energy windows: idle subtraction and per-token arithmetic with a real clock, RAPL from a
powercap tree the test writes, and the paths that must say `unavailable` instead of a number."""

import os
import time

import pytest
import torch

from common.errors import MeterUnavailable
from measure.machine import energy, nvml
from tests.measure import rank_tasks


class Powercap:
    """A powercap folder (`root`) whose counter advances only when `run` says work happened.

    The counter moves by watts x seconds of a real sleep, written whole as sysfs gives it, so a
    window's joules are exact and its seconds real. A thread ticking the counter in real time made
    the reading depend on when a busy 2-core CI machine scheduled that thread (39 W read for 50)."""

    def __init__(self, root, watts: float, start_uj: int = 0, wrap: int = 2**32):
        self.root, self.watts, self.wrap = root, watts, wrap
        (root / "max_energy_range_uj").write_text(str(wrap))
        self.uj = start_uj
        self._write()

    def _write(self):
        tmp = self.root / "energy_uj.tmp"
        tmp.write_text(str(self.uj % self.wrap))
        os.replace(tmp, self.root / "energy_uj")  # whole values only

    def run(self, seconds: float, sleep=time.sleep):
        sleep(seconds)
        self.uj += round(self.watts * seconds * 1e6)
        self._write()


@pytest.fixture
def powercap(tmp_path):
    return Powercap(tmp_path, watts=50.0)


def test_rapl_window_reads_the_counter_over_a_real_interval(powercap):
    meter = energy.RaplMeter(powercap.root)
    meter.begin_window("w")
    powercap.run(0.2)
    w = meter.end_window("w")
    assert w.joules == pytest.approx(10.0, abs=1e-6)
    assert w.seconds >= 0.2  # a real clock: the sleep is a lower bound, scheduling only adds
    assert w.watts == pytest.approx(w.joules / w.seconds)


def test_rapl_window_across_the_counter_wrap_counts_forward(tmp_path):
    pc = Powercap(tmp_path, watts=50.0, start_uj=2**32 - 3_000_000)  # 3 J before the wrap
    meter = energy.RaplMeter(tmp_path)
    meter.begin_window("w")
    pc.run(0.2)  # 10 J: the counter reads 7 J after wrapping
    w = meter.end_window("w")
    assert int((tmp_path / "energy_uj").read_text()) == 7_000_000
    assert w.joules == pytest.approx(10.0, abs=1e-6)


def test_idle_is_subtracted_and_split_per_forward_and_token():
    active = energy.Window("forward", "test", seconds=2.0, joules=500.0)
    idle = energy.Window("idle", "test", seconds=1.0, joules=100.0)
    fig = energy.energy_figures(active, idle, forwards=1000, tokens_per_forward=64)
    assert fig.idle_w == 100 and fig.avg_w == 250
    assert fig.net_joules == pytest.approx(300)
    assert fig.j_per_forward == pytest.approx(0.3)
    assert fig.j_per_token == pytest.approx(0.3 / 64)
    assert fig.edp_j_s == pytest.approx(0.3 * 2.0 / 1000)


def test_a_window_not_above_idle_gives_no_number_but_a_reason():
    active = energy.Window("forward", "test", seconds=1.0, joules=90.0)
    idle = energy.Window("idle", "test", seconds=1.0, joules=100.0)
    fig = energy.energy_figures(active, idle, forwards=1000, tokens_per_forward=64)
    assert fig.energy == "below idle" and fig.j_per_forward is None
    assert "not above idle (100.0 W)" in fig.reason


def test_counter_and_power_integral_are_cross_checked():
    samples = [(t / 10, 200.0, 1980, 50, 0) for t in range(11)]  # 200 W for 1 s
    assert energy.integrate(samples, 0.0, 1.0) == pytest.approx(200)
    active = energy.Window("forward", "nvml_energy_counter", 1.0, 210.0, 200.0, samples)
    fig = energy.energy_figures(active, energy.Window("idle", "x", 1.0, 50.0), 10, 1)
    assert fig.counter_vs_integral == pytest.approx(0.05)
    assert fig.peak_w == 200 and fig.throttle_reasons_seen == "0x0"


def test_throttle_bits_seen_in_the_window_are_reported():
    samples = [(0.0, 700.0, 1260, 70, 0x4), (1.0, 700.0, 1260, 70, 0x1)]
    active = energy.Window("forward", "nvml_energy_counter", 1.0, 700.0, 700.0, samples)
    fig = energy.energy_figures(active, energy.Window("idle", "x", 1.0, 80.0), 10, 1)
    assert fig.throttle_reasons_seen == "0x4"  # sw power cap kept, the idle bit dropped


def test_no_gpu_and_no_rapl_means_unavailable_with_a_reason(tmp_path):
    with pytest.raises(MeterUnavailable, match="RAPL not readable"):
        energy.RaplMeter(tmp_path / "absent")
    with pytest.raises(MeterUnavailable, match="is not an NVIDIA GPU"):
        nvml.handle(torch.device("cpu"))


def test_missing_nvml_library_is_unavailable(monkeypatch):
    monkeypatch.setattr(nvml, "pynvml", None)
    with pytest.raises(MeterUnavailable, match="nvidia-ml-py is not installed"):
        nvml.handle(torch.device("cuda", 0))


def test_idle_power_reads_a_real_interval_after_settling(powercap, monkeypatch):
    real_sleep = time.sleep
    monkeypatch.setattr(energy.time, "sleep", lambda s: powercap.run(s, sleep=real_sleep))
    idle = energy.idle_power(energy.RaplMeter(powercap.root), 0.1)
    assert idle.settle_s == 0.0 and idle.seconds >= 0.1
    assert idle.joules == pytest.approx(5.0, abs=1e-6)
    assert idle.watts == pytest.approx(idle.joules / idle.seconds)


def test_energy_window_ends_on_the_same_forward_on_every_rank(gloo_pair):
    (n0, agreed0), (n1, agreed1) = gloo_pair.run(rank_tasks.fill_uneven_window)
    assert n0 == n1 and n0 >= 1
    assert agreed0 == agreed1 == [1.0, 0.0]  # each value's maximum over the two ranks
