"""phase0 (the check alone) and phase1 (forward time, memory and energy)."""

from __future__ import annotations

from common.cell import CellSpec
from kernels.registry import MethodSpec
from measure.cells.build import forward_peak_bytes
from measure.machine import nvml
from measure.machine.energy import meter_energy
from measure.phases.pipeline import TaskOptions, checked, timing_modes
from measure.records.results import RankResult
from measure.timing.sampler import Sampler


def run_check(
    ctx, cell_dict: dict, method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    """phase0: the check alone."""
    _, result, _ = checked(ctx, CellSpec.from_dict(cell_dict), method, seed, options)
    return result


def run_forward_timing(
    ctx, cell_dict: dict, method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    """phase1: the check, then forward time (primary mode, the other mode, cold), compute and
    collective alone, the forward's own peak memory, then energy over a window of forwards."""
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    layer = built.layer
    xl = layer.local_input(built.x)
    cuda = ctx.device.type == "cuda"
    result.state_start = nvml.state(ctx.device) if cuda else {}
    sampler = Sampler(ctx, options.policy)
    modes = timing_modes(ctx, options.mode)
    forward = lambda: layer.forward(xl)  # noqa: E731
    result.memory.forward_peak_bytes = forward_peak_bytes(ctx, forward)
    timing = {"forward": sampler.measure(forward, modes[0])}
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
    result.state_end = nvml.state(ctx.device) if cuda else {}
    return result
