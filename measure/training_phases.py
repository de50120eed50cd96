"""phase2 (backward wrt input), phase3 (one train step) and drift, as pipelines of the engine.

Each is a rank task of the one shape (measure/phases.py): it starts with the same forward
check and exact probe as every phase, then checks its own figure against float64 (grad_X; the
weights and losses after `steps` optimizer steps; the drift trajectory), the ranks agree on the
verdict, and only a cell that passed is timed:
- phase2: backward alone (primary), forward+backward, its compute and its collective alone;
- phase3: the full step (primary: forward, backward, grad_W, optimizer, re-compression),
  compress alone, grad_W alone, optimizer alone, backward alone; eager (torch.optim's step is
  not captured in a graph), on a fresh build so the check's training does not leak into it;
- drift: not timed; the per-step error against the float64 dense trajectory is the figure.
"""

from __future__ import annotations

import torch

from common.dtypes import DTYPES
from common.errors import CorrectnessError
from kernels.masks import TRANSPOSABLE_MASKS
from kernels.registry import MethodSpec
from kernels.training import TrainConfig, TrainState, drift_run
from measure import checks
from measure.cell import CellSpec
from measure.cellbuild import build, forward_peak_bytes
from measure.energy import meter_energy
from measure.phases import TaskOptions, _checked, _modes
from measure.results import RankResult
from measure.timing import Sampler
from measure.training_checks import (
    assert_drift,
    assert_trained,
    check_backward,
    drift_figures,
    grad_output,
    learning_rate,
    reference_for,
    training_figures,
)


def _agree(ctx, result: RankResult, check) -> bool:
    """Run `check` (raises CorrectnessError), keep its message; True when every rank passed."""
    try:
        check()
    except CorrectnessError as e:
        result.failure = str(e)
    (any_failed,) = ctx.agree_max(float(result.failure is not None))
    return any_failed == 0


def run_backward_timing(
    ctx, cell_dict: dict, method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = _checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    layer, args = built.layer, built.args
    args.require_sparse_backward = cell.mask in TRANSPOSABLE_MASKS and method.semi_structured
    layer.prepare_backward(args)
    gy = grad_output(cell.B, cell.N_out, DTYPES[cell.dtype], ctx.device, seed + 3)
    back = check_backward(layer, type(layer).effective_weight(args), gy, ctx.world_size)
    result.phase_figures = {
        "backward_backend": back.backward_backend,
        "backward_errors": back.errors.as_dict(),
    }
    if not _agree(ctx, result, lambda: checks.assert_correct(back.errors, cell.name, ctx.rank)):
        return result
    xl, gyl = layer.local_input(built.x), layer.local_grad_output(gy)
    sampler = Sampler(ctx, options.policy)
    modes = _modes(ctx, options.mode)
    backward = lambda: layer.backward_input(gyl)  # noqa: E731
    result.memory.forward_peak_bytes = forward_peak_bytes(ctx, backward)
    timing = {"backward": sampler.measure(backward, modes[0])}
    timing["forward_backward"] = sampler.measure(
        lambda: (layer.forward(xl), layer.backward_input(gyl)), modes[0]
    )
    if layer.backward_collective and ctx.world_size > 1:
        timing["compute"] = sampler.measure(lambda: layer.compute_backward(gyl), modes[0])
        partial = layer.compute_backward(gyl)
        timing["collective"] = sampler.measure(lambda: layer.collect_backward(partial), modes[0])
    result.timing, result.modes, result.primary = timing, modes, "backward"
    result.energy = meter_energy(ctx, backward, modes[0], options.energy, options.policy, cell.B)
    return result


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
    built, result, any_failed = _checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    state, target = _train_state(ctx, cell, built, seed)
    xl = built.layer.local_input(built.x)
    losses = [state.step(xl).item() for _ in range(cell.steps)]
    ref, weights = reference_for(state, built.args, built.x, target, cell.steps, ctx.world_size)
    fig = training_figures(weights, ref, losses)
    result.phase_figures = {"train": fig, **state.state_bytes()}
    if not _agree(ctx, result, lambda: assert_trained(fig, cell.name, ctx.rank)):
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


def run_drift(ctx, cell_dict: dict, method: MethodSpec, seed: int, options: TaskOptions):
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = _checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    trajectory = drift_run(built.layer, built.x, cell.steps)
    w_eff = type(built.layer).effective_weight(built.args)
    fig = drift_figures(trajectory, built.x, w_eff, built.layer.collective, ctx.world_size)
    result.phase_figures = {"drift": fig}
    _agree(ctx, result, lambda: assert_drift(fig, cell.name, ctx.rank))
    return result
