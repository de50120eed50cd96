"""phase3: one train step.

The forward check and exact probe first, then the weights and losses after `steps` optimizer
steps against a float64 reference trained by the same rule; only a cell that passed is timed:
the full step (primary: forward, backward, grad_W, optimizer, re-compression), backward alone,
grad_W alone, optimizer alone, compress alone; eager (torch.optim's step is not captured in a
graph), on a fresh build so the check's training does not leak into it.
"""

from __future__ import annotations

from typing import Any

import torch

from common.cell import CellSpec
from common.errors import CellSpecError
from common.schema.phase_figures import PhaseFigures
from common.schema.rank import RankResult
from common.schema.timing import Stats
from kernels.registry import MethodSpec
from kernels.training import TrainConfig, TrainState
from measure.cells.build import BuiltCell, build, forward_peak_bytes
from measure.checks.training import (
    assert_trained,
    learning_rate,
    reference_for,
    training_figures,
)
from measure.machine.energy import meter_energy
from measure.phases.pipeline import TaskOptions, agree, checked
from measure.timing.sampler import Sampler


def _train_state(
    ctx: Any, cell: CellSpec, built: BuiltCell, seed: int
) -> tuple[TrainState, torch.Tensor]:
    """The train state of a fresh build and the regression target its loss is taken against."""
    if cell.optimizer is None:
        raise CellSpecError(f"{cell.name}: a train step needs an optimizer")
    g = torch.Generator(device=ctx.device).manual_seed(seed + 3)
    target = torch.randn(cell.B, cell.N_out, generator=g, device=ctx.device)
    lr = learning_rate(cell.optimizer, built.x, built.args.weight)
    cfg = TrainConfig(cell.optimizer, lr, cell.variant)
    return TrainState(built.layer, built.args, cfg, target, record_masks=True), target


def _set_state_bytes(figures: PhaseFigures, state: TrainState) -> None:
    """The training state this rank holds beyond the compute copy, into the phase figures."""
    held = state.state_bytes()
    figures.master_bytes = held["master_bytes"]
    figures.optimizer_bytes = held["optimizer_bytes"]
    figures.grad_bytes = held["grad_bytes"]


def run_train_step(
    ctx: Any, cell_dict: dict[str, Any], method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    steps = cell.steps or 0
    state, target = _train_state(ctx, cell, built, seed)
    xl = built.layer.local_input(built.x)
    losses = [state.step(xl).item() for _ in range(steps)]
    ref, weights = reference_for(state, built.args, built.x, target, steps, ctx.world_size)
    fig = training_figures(weights, ref, losses)
    figures = PhaseFigures(train=fig)
    _set_state_bytes(figures, state)
    result.phase_figures = figures
    if not agree(ctx, result, lambda: assert_trained(fig, cell.name, ctx.rank)):
        return result
    del state, built, weights  # the check's run: master, optimizer state, compressed halves
    built = build(ctx, cell, seed, options.backend, method)  # a fresh W_0 for the timing
    state, _ = _train_state(ctx, cell, built, seed)
    state.m0_history = None  # the check needed T1m's masks; timing must not keep N^2 per step
    xl = built.layer.local_input(built.x)
    _, gyl = state.loss_and_grad(state.forward(xl))
    sampler = Sampler(ctx, options.policy)
    mode = "eager" if ctx.device.type == "cuda" else "host"
    step = lambda: state.step(xl)  # noqa: E731
    result.memory.forward_peak_bytes = forward_peak_bytes(ctx, step)
    state.grad_weight(xl, gyl)
    timing: dict[str, Stats] = {
        "step": sampler.measure(step, mode),
        "backward": sampler.measure(lambda: state.backward_input(gyl), mode),
        "grad_weight": sampler.measure(lambda: state.grad_weight(xl, gyl), mode),
        "optimizer": sampler.measure(state.optimizer_step, mode),
        "compress": sampler.measure(state.compress, mode),
    }
    result.timing, result.modes = timing, [mode]
    _set_state_bytes(figures, state)  # what the timed steps held
    result.energy = meter_energy(ctx, step, mode, options.energy, options.policy, cell.B)
    return result
