"""phase0 (the check alone) and phase1 (forward time, memory and energy)."""

from __future__ import annotations

from typing import Any

from common.cell import CellSpec
from common.schema.codec import from_json
from common.schema.machine import DeviceState
from common.schema.rank import RankResult
from common.schema.timing import Stats
from kernels.registry import MethodSpec
from measure.cells.build import forward_peak_bytes
from measure.machine import nvml
from measure.machine.energy import meter_energy
from measure.phases.pipeline import TaskOptions, checked, timing_modes
from measure.timing.sampler import Sampler


def run_check(
    ctx: Any, cell_dict: dict[str, Any], method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    """phase0: the check alone."""
    _, result, _ = checked(ctx, CellSpec.from_dict(cell_dict), method, seed, options)
    return result


def device_state(ctx: Any) -> DeviceState:
    """NVML's snapshot of this rank's GPU (every field None off CUDA)."""
    if ctx.device.type != "cuda":
        return DeviceState()
    return from_json(DeviceState, nvml.state(ctx.device), "state", lenient=True)


def run_forward_timing(
    ctx: Any, cell_dict: dict[str, Any], method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    """phase1: the check, then forward time (primary mode, the other mode, cold), compute and
    collective alone, the forward's own peak memory, then energy over a window of forwards."""
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    layer = built.layer
    xl = layer.local_input(built.x)
    result.state_start = device_state(ctx)
    sampler = Sampler(ctx, options.policy)
    modes = timing_modes(ctx, options.mode)
    forward = lambda: layer.forward(xl)  # noqa: E731
    result.memory.forward_peak_bytes = forward_peak_bytes(ctx, forward)
    timing: dict[str, Stats] = {"forward": sampler.measure(forward, modes[0])}
    for mode in modes[1:]:
        timing[f"forward_{mode}"] = sampler.measure(forward, mode)
    timing["forward_cold"] = sampler.measure(forward, modes[0], "cold")
    if layer.collective and ctx.world_size > 1:
        timing["compute"] = sampler.measure(lambda: layer.compute(xl), modes[0])
        partial = layer.compute(xl)
        timing["collective"] = sampler.measure(lambda: layer.collect(partial), modes[0])
    result.timing = timing
    result.modes = modes
    result.energy = meter_energy(ctx, forward, modes[0], options.energy, options.policy, cell.B)
    result.state_end = device_state(ctx)
    return result
