"""Building a cell on a rank: its inputs, masks, 2:4 backend and this rank's method.

Every rank builds identical X and W from the cell's seed, so the float64 reference each rank
computes is the same; the method object keeps only what that rank would hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from common.cell import CellSpec
from common.dtypes import DTYPES
from kernels.masks import make_mask_pair
from kernels.methods import BuildArgs, Method
from kernels.registry import MethodSpec, spec
from kernels.sparse24 import check_dims, check_shape, default_backend
from measure.cells.workloads import make_inputs


def resolve_backend(method: MethodSpec, device_type: str, requested: str) -> str | None:
    """The 2:4 backend a semi-structured method runs on here (None for dense methods)."""
    if not method.semi_structured:
        return None
    if device_type != "cuda":
        return "emulated"
    return default_backend(torch.device("cuda")) if requested == "auto" else requested


def unavailable_here(cell: CellSpec, device_type: str) -> str | None:
    """Why a valid cell cannot run on this machine (skipped with this reason), or None."""
    if cell.backend not in (None, "emulated") and device_type != "cuda":
        return f"the {cell.backend} 2:4 backend needs a CUDA GPU; this run is on {device_type}"
    return None


def preflight(cell: CellSpec, device_type: str, requested_backend: str = "auto") -> None:
    """Rules that depend on the machine; raised before any rank starts work on the cell. An
    emulated 2:4 cell (CPU) must still have a shape some GPU 2:4 kernel takes: its result
    stands for a GPU run, and one that no GPU can make is refused rather than emulated."""
    backend = resolve_backend(spec(cell.method), device_type, cell.backend or requested_backend)
    if backend == "emulated":
        where = f"{cell.name} (on {device_type}: emulated, but no GPU could run it)"
        check_dims(cell.N_out, cell.N, "any GPU backend", where)
    elif backend:
        check_shape(cell.N_out, cell.N, cell.B, DTYPES[cell.dtype], backend, cell.name)


@dataclass
class BuiltCell:
    layer: Method
    x: torch.Tensor
    args: BuildArgs
    build_peak_bytes: int | None


def build(
    ctx, cell: CellSpec, seed: int, requested_backend: str, method: MethodSpec | None = None
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


def _allocated(ctx) -> int | None:
    if ctx.device.type != "cuda":
        return None
    torch.cuda.synchronize(ctx.device)
    torch.cuda.reset_peak_memory_stats(ctx.device)
    return torch.cuda.memory_allocated(ctx.device)


def _peak_since(ctx, before: int | None) -> int | None:
    if before is None:
        return None
    torch.cuda.synchronize(ctx.device)
    return torch.cuda.max_memory_allocated(ctx.device) - before


def forward_peak_bytes(ctx, forward) -> int | None:
    """Peak bytes one plain forward allocates over what was allocated before it: the method's
    own transient and output memory, none of the timer's buffers or graphs."""
    before = _allocated(ctx)
    forward()
    return _peak_since(ctx, before)
