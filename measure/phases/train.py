"""phase3: one train step.

The check, in order: the forward check and exact probe (the pipeline's), then `steps` optimizer
steps whose every copy of the weights, grad_X and loss after every step, and the master after
the last, are compared on every rank with a float64 reference trained by the same rule
(measure/checks/train_steps.py), then the exact training probe (measure/checks/train_probe.py):
one step after which every copy must equal float64 bit for bit. Only a cell that passed is
timed, on a fresh build so the check's training does not leak into it: the full step (primary:
forward, loss, backward, grad_W, optimizer, re-compression), then the step in the other timing
mode, backward alone, grad_W alone (a 2:4 half's SDDMM, and beside it `grad_weight_dense`, the
dense GEMM and select it replaces), optimizer alone, compress alone.

Graph mode: where the primary mode is graph replay (CUDA, one rank or NCCL), one step is first
captured as a trial on every rank; where any rank's capture fails, the step and its parts are
timed eagerly, and `step_capture` (phase figures, and per rank in the published figures) says
why. Every part is timed in the step's mode, so the parts and the step compare.
"""

from __future__ import annotations

from collections.abc import Callable
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
from measure.checks.train_probe import assert_probe_exact, train_probe
from measure.checks.train_steps import (
    assert_trained,
    reference_for,
    train_and_record,
    training_figures,
)
from measure.checks.training import learning_rate
from measure.machine.energy import meter_energy
from measure.phases.pipeline import TaskOptions, agree, checked, timing_modes
from measure.timing.sampler import Sampler, capture_graph

CAPTURED = "captured"


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


def step_capture(ctx: Any, modes: list[str], step: Callable[[], object]) -> str:
    """CAPTURED where one train step captures into a CUDA graph on every rank (a trial, which
    also warms the step up), else why the step is timed without graph replay."""
    if "graph" not in modes:
        if ctx.device.type != "cuda":
            return f"no CUDA graphs on {ctx.device.type}: {modes[0]} timing"
        return f"ranks over {ctx.backend}: CUDA graphs capture NCCL collectives only"
    reason = None
    try:
        capture_graph(step, ctx.device, 1)
    except RuntimeError as e:  # an operation a capture forbids (a sync, a host copy)
        torch.cuda.synchronize(ctx.device)
        reason = f"capture failed: {str(e).strip().splitlines()[0][:200]}"
    (failed,) = ctx.agree_max(float(reason is not None))
    if failed and reason is None:
        reason = "another rank's capture failed"
    return reason or CAPTURED


def _check(
    ctx: Any, cell: CellSpec, built: BuiltCell, method: MethodSpec, seed: int, result: RankResult
) -> bool:
    """The training check and the exact training probe; True where every rank passed."""
    state, target = _train_state(ctx, cell, built, seed)
    run = train_and_record(state, built.layer.local_input(built.x), cell.steps or 0)
    ref, comparison = reference_for(state, built.args, built.x, target, run, ctx.world_size)
    fig = training_figures(comparison, ref)
    figures = PhaseFigures(train=fig)
    _set_state_bytes(figures, state)
    result.phase_figures = figures
    del state, run, ref, comparison  # the copies of every step, the check's training state
    backend = built.args.backend
    fig.probe = train_probe(ctx, method.cls, cell, built.args.masks, backend, seed + 4)
    probe = fig.probe

    def both() -> None:
        assert_trained(fig, cell.name, ctx.rank)
        assert_probe_exact(probe, cell.name, ctx.rank)

    return agree(ctx, result, both)


def run_train_step(
    ctx: Any, cell_dict: dict[str, Any], method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = checked(ctx, cell, method, seed, options)
    if any_failed or not _check(ctx, cell, built, method, seed, result):
        return result
    figures = result.phase_figures
    assert figures is not None
    del built
    built = build(ctx, cell, seed, options.backend, method)  # a fresh W_0 for the timing
    state, _ = _train_state(ctx, cell, built, seed)
    state.m0_history = None  # the check needed T1m's masks; timing must not keep N^2 per step
    xl = built.layer.local_input(built.x)
    _, gyl = state.loss_and_grad(state.forward(xl))
    sampler = Sampler(ctx, options.policy)
    step = lambda: state.step(xl)  # noqa: E731
    modes = timing_modes(ctx, options.mode)
    figures.step_capture = step_capture(ctx, modes, step)
    if figures.step_capture != CAPTURED:
        modes = [m for m in modes if m != "graph"]
    mode = modes[0]
    result.memory.forward_peak_bytes = forward_peak_bytes(ctx, step)
    state.grad_weight(xl, gyl)
    timing: dict[str, Stats] = {"step": sampler.measure(step, mode)}
    for other in modes[1:]:
        timing[f"step_{other}"] = sampler.measure(step, other)
    timing["backward"] = sampler.measure(lambda: state.backward_input(gyl), mode)
    timing["grad_weight"] = sampler.measure(lambda: state.grad_weight(xl, gyl), mode)
    if state.dense_grad_twin:
        dense = lambda: state.grad_weight_dense(xl, gyl)  # noqa: E731
        timing["grad_weight_dense"] = sampler.measure(dense, mode)
    timing["optimizer"] = sampler.measure(state.optimizer_step, mode)
    compress_mode = mode  # T2's step holds no compress: its capture is not proven by the step's
    if mode == "graph" and cell.variant == "T2":
        if step_capture(ctx, modes, state.compress) != CAPTURED:
            compress_mode = "eager"  # its Stats say so
    timing["compress"] = sampler.measure(state.compress, compress_mode)
    result.timing, result.modes = timing, modes
    _set_state_bytes(figures, state)  # what the timed steps held
    result.energy = meter_energy(ctx, step, mode, options.energy, options.policy, cell.B)
    return result
