"""The one check-then-measure pipeline every phase runs, and the pairing of a phase's
description with its task.

A phase is a rank task with one shape, `task(ctx, cell_dict, method, seed, options) ->
RankResult`, that the session runs on the cell's rank pool (or torchrun's ranks). Every task
starts with `checked`: build the cell, compare one forward with float64 under the derived
bounds, then the exact probe (measure/checks/probe.py: integer inputs on which the result must
equal float64 bit for bit, so a single wrong weight fails at any K); the ranks agree on the
verdict, and a cell that failed its check stops there, on every rank, before anything is timed.
A phase's own check goes through `agree` the same way; then the task times what its description
(common/phases.py) names. The table of phases is measure/phases/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from common.cell import CellSpec
from common.dtypes import DTYPES
from common.errors import CorrectnessError
from common.phases import CATALOG, PhaseInfo
from common.schema.checks import ErrorFigures
from common.schema.rank import MemoryFigures, RankResult
from kernels import registry
from kernels.registry import MethodSpec
from measure.cells.build import BuiltCell, build
from measure.checks import bounds as checks
from measure.checks.probe import assert_exact, exact_probe, poisoned_forward
from measure.timing.policy import TimingPolicy

# what the rank pool runs: (ctx, cell as a dict, the method's spec, seed, options) -> result
Task = Callable[[Any, dict[str, Any], MethodSpec, int, "TaskOptions"], RankResult]


@dataclass(frozen=True)
class TaskOptions:
    """What every rank needs besides the cell: the run's choices (picklable)."""

    backend: str = registry.AUTO
    mode: str = "graph"
    energy: bool = True
    policy: TimingPolicy = TimingPolicy()


@dataclass(frozen=True)
class Phase:
    """A phase's description (torch-free, common/phases.py) and the rank task that runs it."""

    info: PhaseInfo
    task: Task

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def timed(self) -> bool:
        """It publishes a timing (and needs the pool's ceilings for its floor)."""
        return self.info.timed

    @property
    def axes(self) -> tuple[str, ...]:
        return self.info.axes

    def measurement_count(self, world_size: int) -> int:
        return self.info.measurement_count(world_size)


def check_forward(ctx: Any, cell: CellSpec, layer: Any, x: torch.Tensor, args: Any) -> ErrorFigures:
    """Poison the outputs, run one forward of `layer`, compare with float64."""
    y = poisoned_forward(layer, x)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    ref, absref = checks.reference(x, type(layer).effective_weight(args), args.bias)
    bound = checks.bounds(DTYPES[cell.dtype], cell.N, layer.collective, ctx.world_size)
    return checks.error_figures(
        y, ref, absref, bound, checks.count_nonfinite(x, args.weight, args.bias)
    )


def checked(
    ctx: Any, cell: CellSpec, method: MethodSpec, seed: int, options: TaskOptions
) -> tuple[BuiltCell, RankResult, bool]:
    """Build and check the cell; the ranks agree whether any of them failed (the third value).
    The result publishes the timing the cell's phase names as primary."""
    built = build(ctx, cell, seed, options.backend, method)
    layer = built.layer
    kernel = layer.kernel_record()
    result = RankResult(
        rank=ctx.rank,
        device=str(ctx.device),
        process_group_backend=ctx.backend if ctx.world_size > 1 else None,
        shared_device=ctx.shared_device,
        pool_generation=ctx.generation,
        kernel_backend=kernel.backend,
        emulated=ctx.device.type != "cuda",
        alg_id=kernel.alg_id,
        alg_source=kernel.alg_source,
        alg_search_error=kernel.search_error,
        seed=seed,
        memory=MemoryFigures(
            weight_bytes=layer.weight_bytes, build_peak_bytes=built.build_peak_bytes
        ),
        primary=CATALOG[cell.phase].primary or "forward",
    )
    result.errors = check_forward(ctx, cell, layer, built.x, built.args)
    result.exact = exact_probe(
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
    try:
        checks.assert_correct(result.errors, cell.name, ctx.rank)
        assert_exact(result.exact, cell.name, ctx.rank)
    except CorrectnessError as e:
        result.failure = str(e)
    (any_failed,) = ctx.agree_max(float(result.failure is not None))
    return built, result, any_failed > 0


def timing_modes(ctx: Any, requested: str) -> list[str]:
    """Timing modes here, the primary first: graph replay needs CUDA and (for two ranks) NCCL,
    which can be captured; gloo groups and CPUs time eagerly or on the host clock."""
    if ctx.device.type != "cuda":
        return ["host"]
    modes = ["graph", "eager"] if ctx.world_size == 1 or ctx.backend == "nccl" else ["eager"]
    if requested == "eager" and "eager" in modes:
        modes = ["eager"] + [m for m in modes if m != "eager"]
    return modes


def agree(ctx: Any, result: RankResult, check: Callable[[], None]) -> bool:
    """Run `check` (raises CorrectnessError), keep its message; True when every rank passed."""
    try:
        check()
    except CorrectnessError as e:
        result.failure = str(e)
    (any_failed,) = ctx.agree_max(float(result.failure is not None))
    return bool(any_failed == 0)
