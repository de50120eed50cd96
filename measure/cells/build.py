"""Building a cell on a rank: its inputs, masks, 2:4 backend and this rank's method.

Every rank builds identical X and W from the cell's seed, so the float64 reference each rank
computes is the same; the method object keeps only what that rank would hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from common.cell import CellSpec
from common.dtypes import DTYPES
from common.errors import CellSpecError
from kernels import registry
from kernels.masks import make_mask_pair
from kernels.methods import BuildArgs, Method
from kernels.registry import MethodSpec, spec
from measure.cells.workloads import make_inputs
from measure.ranks.context import RankContext


def resolve_backend(method: MethodSpec, device_type: str, requested: str) -> str | None:
    """The 2:4 backend a semi-structured method runs on here (None for dense methods): the
    one the cell or the run names, else (registry.AUTO) the registry's default for this device."""
    if not method.semi_structured:
        return None
    return registry.default_backend(device_type) if requested == registry.AUTO else requested


def unavailable_here(cell: CellSpec, device_type: str) -> str | None:
    """Why a valid cell cannot run on this machine (skipped with this reason), or None: the
    backend it names says so itself."""
    if cell.backend is None:
        return None
    return registry.backend(cell.backend).available(torch.device(device_type))


def preflight(cell: CellSpec, device_type: str, requested_backend: str = registry.AUTO) -> None:
    """Rules that depend on the machine; raised before any rank starts work on the cell: the
    backend the cell runs on must be able to run here and take its shape."""
    name = resolve_backend(spec(cell.method), device_type, cell.backend or requested_backend)
    if name is None:
        return
    backend = registry.backend(name)
    reason = backend.available(torch.device(device_type))
    if reason is not None:
        raise CellSpecError(f"{cell.name}: {reason}")
    backend.check_shape(cell.N_out, cell.N, cell.B, DTYPES[cell.dtype], cell.name)


@dataclass
class BuiltCell:
    layer: Method
    x: torch.Tensor
    args: BuildArgs
    build_peak_bytes: int | None


def build(
    ctx: RankContext,
    cell: CellSpec,
    seed: int,
    requested_backend: str,
    method: MethodSpec | None = None,
) -> BuiltCell:
    """Inputs, masks and this rank's method; identical X and W on every rank from one seed.

    The spec travels with the task (rather than being looked up by name on the rank), so a
    method registered outside kernels/ (a test's toy method) is known to the rank too:
    unpickling the spec imports the module that registered it."""
    method = method or spec(cell.method)
    dtype = DTYPES[cell.dtype]
    x, w, b = make_inputs(
        cell.workload, cell.B, cell.N, cell.N_out, cell.bias, dtype, ctx.device, seed
    )
    masks = None
    if cell.mask:
        g = torch.Generator(device=ctx.device)
        g.manual_seed(seed + 1)
        masks = make_mask_pair(cell.mask, w, g)
    backend = resolve_backend(method, ctx.device.type, cell.backend or requested_backend)
    args = BuildArgs(w, b, masks, cell.mask, cell.B, ctx.group, backend)
    before = _allocated(ctx)
    layer = method.cls(args)
    peak = _peak_since(ctx, before)
    return BuiltCell(layer, x, args, peak)


def _allocated(ctx: RankContext) -> int | None:
    if ctx.device.type != "cuda":
        return None
    torch.cuda.synchronize(ctx.device)
    torch.cuda.reset_peak_memory_stats(ctx.device)
    return torch.cuda.memory_allocated(ctx.device)


def _peak_since(ctx: RankContext, before: int | None) -> int | None:
    if before is None:
        return None
    torch.cuda.synchronize(ctx.device)
    return torch.cuda.max_memory_allocated(ctx.device) - before


def forward_peak_bytes(ctx: RankContext, forward: Callable[[], object]) -> int | None:
    """Peak bytes one plain forward allocates over what was allocated before it: the method's
    own transient and output memory, none of the timer's buffers or graphs."""
    before = _allocated(ctx)
    forward()
    return _peak_since(ctx, before)
