"""Energy windows in Zeus's shape: begin_window/end_window around a region, per-device joules.

Sources, best first:
- NVML's cumulative energy counter (mJ, Volta and newer), with a background thread sampling
  instantaneous power, clocks, temperature and throttle reasons every `period_s`; the integral
  of those samples is recorded beside the counter as a cross-check;
- NVML power samples integrated (trapezoid) where the counter is missing;
- RAPL package energy (powercap sysfs) on a CPU-only machine, where readable;
- otherwise MeterUnavailable with the reason: the record says `unavailable`, never a number.
The counter moves about every 100 ms, so windows are a second or more by default.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from common.errors import MeterUnavailable
from common.schema.energy import EnergyFigures, PowerSample
from measure.machine import nvml
from measure.timing.sampler import capture_graph

RAPL = Path("/sys/class/powercap/intel-rapl:0")


@dataclass
class Window:
    """One window's result on one device."""

    name: str
    method: str
    seconds: float
    joules: float
    joules_integral: float | None = None
    samples: list[PowerSample] = field(default_factory=list)
    settle_s: float = 0.0  # idle windows: how long power took to settle first

    @property
    def watts(self) -> float:
        return self.joules / self.seconds if self.seconds else float("nan")


class PowerSampler(threading.Thread):
    """Samples NVML power/clock/temperature/throttle in the background while a window is open."""

    def __init__(self, h, period_s: float):
        super().__init__(daemon=True)
        self.h, self.period_s = h, period_s
        self.samples: list[PowerSample] = []
        self._halt = threading.Event()

    def run(self):
        p = nvml.pynvml
        while not self._halt.is_set():
            self.samples.append(
                (
                    time.perf_counter(),
                    nvml.power_w(self.h),
                    p.nvmlDeviceGetClockInfo(self.h, p.NVML_CLOCK_SM),
                    p.nvmlDeviceGetTemperature(self.h, p.NVML_TEMPERATURE_GPU),
                    nvml.clock_event_reasons(self.h),
                )
            )
            self._halt.wait(self.period_s)

    def stop(self) -> list[PowerSample]:
        self._halt.set()
        self.join()
        return self.samples


def integrate(samples: list[PowerSample], t0: float, t1: float) -> float | None:
    """Trapezoid integral of power over [t0, t1] from (t, watts, ...) samples."""
    pts = [(t, w) for t, w, *_ in samples if t0 <= t <= t1]
    if len(pts) < 2:
        return None
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(pts, pts[1:], strict=False))


class NvmlMeter:
    def __init__(self, device: torch.device, period_s: float = 0.02):
        self.device = device
        self.h = nvml.handle(device)
        self.period_s = period_s
        try:
            nvml.energy_mj(self.h)
            self.method = "nvml_energy_counter"
        except nvml.pynvml.NVMLError:
            self.method = "nvml_power_integral"

    def settle(
        self,
        max_s: float = 10.0,
        span_s: float = 0.5,
        tolerance: float = 0.05,
        poll_s: float = 0.05,
    ) -> float:
        """Wait until power stops falling after earlier work (the last span_s of readings within
        `tolerance` of their mean), at most max_s; returns the seconds waited."""
        torch.cuda.synchronize(self.device)
        t0, readings, span = time.perf_counter(), [], max(2, round(span_s / poll_s))
        while time.perf_counter() - t0 < max_s:
            readings.append(nvml.power_w(self.h))
            recent = readings[-span:]
            if len(recent) == span and max(recent) - min(recent) <= tolerance * (
                sum(recent) / span
            ):
                break
            time.sleep(poll_s)
        return time.perf_counter() - t0

    def begin_window(self, name: str):
        torch.cuda.synchronize(self.device)
        self._sampler = PowerSampler(self.h, self.period_s)
        self._sampler.start()
        self._name, self._t0 = name, time.perf_counter()
        self._e0 = nvml.energy_mj(self.h) if self.method == "nvml_energy_counter" else None

    def end_window(self, name: str) -> Window:
        assert name == self._name, f"window {name!r} ended but {self._name!r} is open"
        torch.cuda.synchronize(self.device)
        e1 = nvml.energy_mj(self.h) if self._e0 is not None else None
        t1 = time.perf_counter()
        samples = self._sampler.stop()
        integral = integrate(samples, self._t0, t1)
        joules = (e1 - self._e0) / 1e3 if e1 is not None and self._e0 is not None else integral
        if joules is None:
            raise MeterUnavailable(f"window {name!r}: too short for two power samples")
        return Window(name, self.method, t1 - self._t0, joules, integral, samples)


class RaplMeter:
    """CPU package energy from powercap; counts for the whole package, not one process."""

    method = "rapl_package"

    def __init__(self, root: Path = RAPL):
        self.energy = root / "energy_uj"
        try:
            self.wrap = int((root / "max_energy_range_uj").read_text())
            int(self.energy.read_text())
        except (OSError, ValueError) as e:
            raise MeterUnavailable(f"RAPL not readable at {root}: {e}") from None

    def settle(self, max_s: float = 10.0) -> float:
        return 0.0  # package power has no slow tail worth waiting for at this resolution

    def begin_window(self, name: str):
        self._name, self._t0, self._e0 = name, time.perf_counter(), int(self.energy.read_text())

    def end_window(self, name: str) -> Window:
        e1, t1 = int(self.energy.read_text()), time.perf_counter()
        delta = (e1 - self._e0) % self.wrap
        return Window(name, self.method, t1 - self._t0, delta / 1e6)


def make_meter(device: torch.device):
    """The best meter for a device; MeterUnavailable carries why none can be made."""
    if device.type == "cuda":
        return NvmlMeter(device)
    return RaplMeter()


def idle_power(meter, seconds: float) -> Window:
    """Power with nothing submitted, once it has settled after earlier work: the baseline
    subtracted from every window (seen on an H100: measured right after a loaded cell, the
    baseline drifted from 189 W to 121 W over five trials)."""
    settled = meter.settle()
    meter.begin_window("idle")
    time.sleep(seconds)
    window = meter.end_window("idle")
    window.settle_s = settled
    return window


def energy_figures(
    active: Window, idle: Window, forwards: int, tokens_per_forward: int
) -> EnergyFigures:
    """J per forward and per token, idle subtracted; the cross-check where both sources exist."""
    net = active.joules - idle.watts * active.seconds
    per_fwd = net / forwards
    if net <= 0:  # the work did not lift power above the idle baseline: nothing to attribute
        return EnergyFigures(
            energy="below idle",
            energy_method=active.method,
            reason=f"window {active.joules:.1f} J over {active.seconds:.2f} s is not above "
            f"idle ({idle.watts:.1f} W); use a longer window or a larger cell",
            joules_total=active.joules,
            idle_w=idle.watts,
            avg_w=active.watts,
        )
    fig = EnergyFigures(
        energy="measured",
        energy_method=active.method,
        window_s=active.seconds,
        forwards=forwards,
        joules_total=active.joules,
        idle_w=idle.watts,
        idle_settle_s=idle.settle_s,
        avg_w=active.watts,
        net_joules=net,
        j_per_forward=per_fwd,
        j_per_token=per_fwd / tokens_per_forward,
        edp_j_s=per_fwd * active.seconds / forwards,
    )
    if active.samples:
        fig.peak_w = max(s[1] for s in active.samples)
        fig.throttle_reasons_seen = hex(_or(s[4] for s in active.samples) & nvml.THROTTLE_MASK)
    if active.joules_integral is not None and active.method == "nvml_energy_counter":
        fig.joules_integral = active.joules_integral
        fig.counter_vs_integral = active.joules / active.joules_integral - 1
    return fig


def _or(values):
    acc = 0
    for v in values:
        acc |= v
    return acc


def meter_energy(ctx, forward, mode: str, enabled: bool, policy, tokens: int) -> EnergyFigures:
    """Idle baseline, then a window of back-to-back forwards lasting at least the policy's
    energy_window_s; every rank of ctx calls it together. The window's power samples ride in
    `series` until the writer moves them to a CSV file."""
    if not enabled:
        return EnergyFigures(energy="off", reason="--bs-energy off")
    try:
        meter = make_meter(ctx.device)
    except MeterUnavailable as e:
        return EnergyFigures(energy="unavailable", reason=str(e))
    run = forward
    if mode == "graph":
        run = capture_graph(run, ctx.device).replay
    ctx.barrier()
    idle = idle_power(meter, policy.idle_s)
    ctx.barrier()
    meter.begin_window("forward")
    forwards = fill_window(ctx, run, policy.energy_window_s)
    window = meter.end_window("forward")
    fig = energy_figures(window, idle, forwards, tokens)
    fig.series = window.samples
    ctx.barrier()
    return fig


def fill_window(ctx, run, window_s: float) -> int:
    """Back-to-back forwards in doubling chunks until window_s has passed on every rank;
    returns how many ran. The ranks agree after each chunk, so all run the same number."""
    forwards, chunk, t0 = 0, 1, time.perf_counter()
    while True:
        for _ in range(chunk):
            run()
        forwards += chunk
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)  # keep the host from queueing far past the window
        (elapsed,) = ctx.agree_max(time.perf_counter() - t0)
        if elapsed >= window_s:
            return forwards
        chunk = min(chunk * 2, 1024)
