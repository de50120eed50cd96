"""phase2: backward wrt the input, weights frozen.

The forward check and exact probe first (measure/phases/pipeline.py), then grad_X on every rank
against float64; only a cell that passed is timed: backward alone (primary), forward+backward,
its compute and its collective alone.
"""

from __future__ import annotations

from typing import Any

from common.cell import CellSpec
from common.dtypes import DTYPES
from common.schema.phase_figures import PhaseFigures
from common.schema.rank import RankResult
from common.schema.timing import Stats
from kernels.masks import TRANSPOSABLE_MASKS
from kernels.registry import MethodSpec
from measure.cells.build import forward_peak_bytes
from measure.checks import bounds as checks
from measure.checks.training import check_backward, grad_output
from measure.machine.energy import meter_energy
from measure.phases.pipeline import TaskOptions, agree, checked, timing_modes
from measure.timing.sampler import Sampler


def run_backward_timing(
    ctx: Any, cell_dict: dict[str, Any], method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    layer, args = built.layer, built.args
    args.require_sparse_backward = cell.mask in TRANSPOSABLE_MASKS and method.semi_structured
    layer.prepare_backward(args)
    gy = grad_output(cell.B, cell.N_out, DTYPES[cell.dtype], ctx.device, seed + 3)
    back = check_backward(layer, type(layer).effective_weight(args), gy, ctx.world_size)
    result.phase_figures = PhaseFigures(
        backward_backend=back.backward_backend, backward_errors=back.errors
    )
    if not agree(ctx, result, lambda: checks.assert_correct(back.errors, cell.name, ctx.rank)):
        return result
    xl, gyl = layer.local_input(built.x), layer.local_grad_output(gy)
    sampler = Sampler(ctx, options.policy)
    modes = timing_modes(ctx, options.mode)
    backward = lambda: layer.backward_input(gyl)  # noqa: E731
    result.memory.forward_peak_bytes = forward_peak_bytes(ctx, backward)
    timing: dict[str, Stats] = {"backward": sampler.measure(backward, modes[0])}
    timing["forward_backward"] = sampler.measure(
        lambda: (layer.forward(xl), layer.backward_input(gyl)), modes[0]
    )
    if layer.backward_collective and ctx.world_size > 1:
        timing["compute"] = sampler.measure(lambda: layer.compute_backward(gyl), modes[0])
        partial = layer.compute_backward(gyl)
        timing["collective"] = sampler.measure(lambda: layer.collect_backward(partial), modes[0])
    result.timing, result.modes = timing, modes
    result.energy = meter_energy(ctx, backward, modes[0], options.energy, options.policy, cell.B)
    return result
