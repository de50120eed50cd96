"""phase3: one train step.

The forward check and exact probe first, then the weights and losses after `steps` optimizer
steps against a float64 reference trained by the same rule; only a cell that passed is timed:
the full step (primary: forward, backward, grad_W, optimizer, re-compression), backward alone,
grad_W alone, optimizer alone, compress alone; eager (torch.optim's step is not captured in a
graph), on a fresh build so the check's training does not leak into it.
"""

from __future__ import annotations

import torch

from common.cell import CellSpec
from kernels.registry import MethodSpec
from kernels.training import TrainConfig, TrainState
from measure.cells.build import build, forward_peak_bytes
from measure.checks.training import (
    assert_trained,
    learning_rate,
    reference_for,
    training_figures,
)
from measure.machine.energy import meter_energy
from measure.phases.pipeline import TaskOptions, agree, checked
from measure.records.results import RankResult
from measure.timing.sampler import Sampler


def _train_state(ctx, cell: CellSpec, built, seed: int) -> TrainState:
    g = torch.Generator(device=ctx.device).manual_seed(seed + 3)
    target = torch.randn(cell.B, cell.N_out, generator=g, device=ctx.device)
    lr = learning_rate(cell.optimizer, built.x, built.args.weight)
    cfg = TrainConfig(cell.optimizer, lr, cell.variant)
    return TrainState(built.layer, built.args, cfg, target, record_masks=True), target


def run_train_step(
    ctx, cell_dict: dict, method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    state, target = _train_state(ctx, cell, built, seed)
    xl = built.layer.local_input(built.x)
    losses = [state.step(xl).item() for _ in range(cell.steps)]
    ref, weights = reference_for(state, built.args, built.x, target, cell.steps, ctx.world_size)
    fig = training_figures(weights, ref, losses)
    result.phase_figures = {"train": fig, **state.state_bytes()}
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
    timing = {
        "step": sampler.measure(step, mode),
        "backward": sampler.measure(lambda: state.backward_input(gyl), mode),
        "grad_weight": sampler.measure(lambda: state.grad_weight(xl, gyl), mode),
        "optimizer": sampler.measure(state.optimizer_step, mode),
        "compress": sampler.measure(state.compress, mode),
    }
    result.timing, result.modes, result.primary = timing, [mode], "step"
    result.phase_figures.update(state.state_bytes())
    result.energy = meter_energy(ctx, step, mode, options.energy, options.policy, cell.B)
    return result
