"""The phases, as pipelines of one engine.

A phase is a rank task with one shape, `task(ctx, cell_dict, method, seed, options) ->
RankResult`,
that the session runs on the cell's rank pool (or torchrun's ranks), and a flag saying whether
it publishes a timing. Every pipeline starts with the same check: build the cell, compare one
forward with float64 under the derived bounds, then the exact probe (measure/probe.py: integer
inputs on which the result must equal float64 bit for bit, so a single wrong weight fails at
any K); the ranks agree on the verdict, and a cell that failed its check stops
there, on every rank, before anything is timed. Adding a phase is one task here and one entry
in PHASES (and a cell function in bench/).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from common.dtypes import DTYPES
from common.errors import CorrectnessError
from kernels.registry import MethodSpec
from measure import checks, nvml
from measure.cell import CellSpec
from measure.cellbuild import build, forward_peak_bytes
from measure.energy import meter_energy
from measure.policy import TimingPolicy
from measure.probe import assert_exact, exact_probe, poisoned_forward
from measure.results import MemoryFigures, RankResult
from measure.timing import Sampler


@dataclass(frozen=True)
class TaskOptions:
    """What every rank needs besides the cell: the run's choices (picklable)."""

    backend: str = "auto"
    mode: str = "graph"
    energy: bool = True
    policy: TimingPolicy = TimingPolicy()


def check_forward(ctx, cell: CellSpec, layer, x, args) -> checks.ErrorFigures:
    """Poison the outputs, run one forward of `layer`, compare with float64."""
    y = poisoned_forward(layer, x)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    ref, absref = checks.reference(x, type(layer).effective_weight(args), args.bias)
    bound = checks.bounds(DTYPES[cell.dtype], cell.N, layer.collective, ctx.world_size)
    return checks.error_figures(
        y, ref, absref, bound, checks.count_nonfinite(x, args.weight, args.bias)
    )


def _checked(ctx, cell: CellSpec, method: MethodSpec, seed: int, options: TaskOptions):
    """Build and check the cell; the ranks agree whether every one of them passed."""
    built = build(ctx, cell, seed, options.backend, method)
    layer = built.layer
    half = getattr(layer, "half", None)
    result = RankResult(
        rank=ctx.rank,
        device=str(ctx.device),
        process_group_backend=ctx.backend if ctx.world_size > 1 else None,
        shared_device=ctx.shared_device,
        pool_generation=ctx.generation,
        kernel_backend=getattr(half, "backend", None) or "dense",
        emulated=ctx.device.type != "cuda",
        alg_id=layer.alg_id,
        alg_source=getattr(half, "alg_source", None),
        alg_search_error=getattr(half, "search_error", None),
        seed=seed,
        memory=MemoryFigures(layer.weight_bytes, built.build_peak_bytes, None),
    )
    result.errors = check_forward(ctx, cell, layer, built.x, built.args)
    exact = exact_probe(
        ctx,
        method.cls,
        cell.N,
        cell.N_out,
        cell.B,
        DTYPES[cell.dtype],
        cell.bias,
        built.args.masks,
        cell.mask,
        built.args.backend,
        seed + 2,  # seed + 1 draws the masks
    )
    result.exact = exact.as_dict()
    try:
        checks.assert_correct(result.errors, cell.name, ctx.rank)
        assert_exact(exact, cell.name, ctx.rank)
    except CorrectnessError as e:
        result.failure = str(e)
    (any_failed,) = ctx.agree_max(float(result.failure is not None))
    return built, result, any_failed > 0


def run_check(
    ctx, cell_dict: dict, method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    """phase0: the check alone."""
    _, result, _ = _checked(ctx, CellSpec.from_dict(cell_dict), method, seed, options)
    return result


def _modes(ctx, requested: str) -> list[str]:
    """Timing modes here, the primary first: graph replay needs CUDA and (for two ranks) NCCL,
    which can be captured; gloo groups and CPUs time eagerly or on the host clock."""
    if ctx.device.type != "cuda":
        return ["host"]
    modes = ["graph", "eager"] if ctx.world_size == 1 or ctx.backend == "nccl" else ["eager"]
    if requested == "eager" and "eager" in modes:
        modes = ["eager"] + [m for m in modes if m != "eager"]
    return modes


def run_forward_timing(
    ctx, cell_dict: dict, method: MethodSpec, seed: int, options: TaskOptions
) -> RankResult:
    """phase1: the check, then forward time (primary mode, the other mode, cold), compute and
    collective alone, the forward's own peak memory, then energy over a window of forwards."""
    cell = CellSpec.from_dict(cell_dict)
    built, result, any_failed = _checked(ctx, cell, method, seed, options)
    if any_failed:
        return result
    layer = built.layer
    xl = layer.local_input(built.x)
    cuda = ctx.device.type == "cuda"
    result.state_start = nvml.state(ctx.device) if cuda else {}
    sampler = Sampler(ctx, options.policy)
    modes = _modes(ctx, options.mode)
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


@dataclass(frozen=True)
class Phase:
    name: str
    task: Callable
    timed: bool  # publishes a timing (needs the pool's ceilings for its floor)
    axes: tuple[str, ...] = ()  # the optional cell axes it needs (optimizer, variant, steps)
    # Stopping-rule measurements its task makes on CUDA, each after its own warm-up, and those
    # it adds on two or more ranks (compute and collective apart): what a study's estimate
    # charges a cell before any has been measured.
    measurements: int = 0
    split_measurements: int = 0

    def measurement_count(self, world_size: int) -> int:
        return self.measurements + (self.split_measurements if world_size > 1 else 0)


# The training phases' tasks live in measure/training_phases.py, which builds on this module;
# these top-level entries (they pickle under spawn) import it when a cell runs.
def run_backward(ctx, *args) -> RankResult:
    from measure.training_phases import run_backward_timing

    return run_backward_timing(ctx, *args)


def run_train(ctx, *args) -> RankResult:
    from measure.training_phases import run_train_step

    return run_train_step(ctx, *args)


def run_drift(ctx, *args) -> RankResult:
    from measure.training_phases import run_drift as drift

    return drift(ctx, *args)


PHASES: dict[str, Phase] = {
    p.name: p
    for p in (
        Phase("phase0", run_check, timed=False),
        # forward in graph and eager mode and cold (CPU: host and cold)
        Phase("phase1", run_forward_timing, timed=True, measurements=3, split_measurements=2),
        # backward, forward + backward
        Phase("phase2", run_backward, timed=True, measurements=2, split_measurements=2),
        # step, backward, grad_W, optimizer, compress
        Phase(
            "phase3", run_train, timed=True, axes=("optimizer", "variant", "steps"), measurements=5
        ),
        Phase("drift", run_drift, timed=False, axes=("steps",)),
    )
}
