"""drift: x <- x + tanh(layer(x)) applied `steps` times with the weights fixed; not timed, the
per-step error against the float64 dense trajectory is the figure.
"""

from __future__ import annotations

from typing import Any

from common.cell import CellSpec
from common.schema.phase_figures import PhaseFigures
from common.schema.rank import RankResult
from kernels.registry import MethodSpec
from kernels.training import drift_run
from measure.checks.training import assert_drift, drift_figures
from measure.phases.pipeline import TaskOptions, agree, checked


def run_drift(
    ctx: Any, cell_dict: dict[str, Any], method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    trajectory = drift_run(built.layer, built.x, cell.steps or 0)
    w_eff = type(built.layer).effective_weight(built.args)
    fig = drift_figures(trajectory, built.x, w_eff, built.layer.collective, ctx.world_size)
    result.phase_figures = PhaseFigures(drift=fig)
    agree(ctx, result, lambda: assert_drift(fig, cell.name, ctx.rank))
    return result
