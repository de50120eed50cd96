"""Planted single-element faults and the rank tasks that run the exact probe on them.

A fault is planted in the weight a method is built from, at positions of this rank's own 2:4
half (the group's columns 0 and 1 for a maskless method), so it is what a mask, compression or
metadata bug of a new backend would produce, on whatever backend the half is then built:
- "double_drop": one kept weight doubled, its neighbour in the half dropped;
- "swap": the two kept weights of the half trade columns (a swapped in-group index);
- "flip": one weight's sign flipped.
Tasks are top-level functions so they pickle under spawn.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from common.cell import CellSpec
from common.dtypes import DTYPES
from common.errors import CorrectnessError
from kernels.methods import BuildArgs, Method
from kernels.registry import spec
from measure.cells.build import build
from measure.checks import bounds as checks
from measure.checks.probe import ExactFigures, exact_probe
from measure.phases.pipeline import check_forward

FAULTS = ("double_drop", "swap", "flip")


def plant(weight: torch.Tensor, keep: torch.Tensor | None, kind: str) -> torch.Tensor:
    """A copy of `weight` with one fault in row n_out//3, group n_in//8 + 1, at the columns the
    half keeps there (`keep`, a bool mask like weight) or columns 0 and 1 of the group."""
    w = weight.clone()
    row, group = w.shape[0] // 3, w.shape[1] // 8 + 1
    cols = torch.arange(4 * group, 4 * group + 4, device=w.device)
    a, b = cols[:2] if keep is None else cols[keep[row, cols]]
    if kind == "double_drop":
        w[row, a], w[row, b] = 2 * w[row, a], 0
    elif kind == "swap":
        w[row, a], w[row, b] = w[row, b].clone(), w[row, a].clone()
    elif kind == "flip":
        w[row, a] = -w[row, a]
    else:
        raise ValueError(f"unknown fault {kind!r}; faults: {FAULTS}")
    return w


def planted(base: type[Method], kind: str, on_rank: int) -> type[Method]:
    """`base` whose rank `on_rank` builds from a weight carrying fault `kind` in its own half
    (`base` itself for kind "none")."""
    if kind == "none":
        return base

    def build_(self, a: BuildArgs) -> None:
        if self.rank == on_rank:
            keep = self._half_mask(a) if hasattr(self, "_half_mask") else None
            a = replace(a, weight=plant(a.weight, keep, kind))
        base.build(self, a)

    return type(f"Planted{base.__name__}", (base,), {"build": build_})


def _probe_args(ctx, cell: CellSpec, method, args: BuildArgs, seed: int) -> ExactFigures:
    """The probe as the runner would call it, with the masks and backend of the cell's build."""
    fig = exact_probe(
        ctx,
        method,
        cell.N,
        cell.N_out,
        cell.B,
        DTYPES[cell.dtype],
        cell.bias,
        args.masks,
        cell.mask,
        args.backend,
        seed + 2,
    )
    return fig


def probe_cells(
    ctx, cell_dicts: list[dict], seed: int, backend: str = "auto"
) -> list[ExactFigures]:
    """The exact probe of every cell (all of this rank pool's world size), unplanted."""
    figures = []
    for c in cell_dicts:
        cell = CellSpec.from_dict(c)
        args = build(ctx, cell, seed, backend).args
        figures.append(_probe_args(ctx, cell, cell.method, args, seed))
    return figures


def probe_faults(
    ctx, cell_dict: dict, on_rank: int, seed: int, backend: str = "auto"
) -> dict[str, ExactFigures]:
    """The cell's probe figures unplanted ("none") and with each fault planted on `on_rank`."""
    cell = CellSpec.from_dict(cell_dict)
    args = build(ctx, cell, seed, backend).args
    base = spec(cell.method).cls
    methods = {k: planted(base, k, on_rank) for k in ("none", *FAULTS)}
    return {k: _probe_args(ctx, cell, m, args, seed) for k, m in methods.items()}


def float_check_faults(ctx, cell_dict: dict, on_rank: int, seed: int) -> dict[str, dict]:
    """Today's float figures on the cell's own (gaussian) inputs, unplanted ("none") and with
    each fault planted on `on_rank`."""
    cell = CellSpec.from_dict(cell_dict)
    built = build(ctx, cell, seed, "auto")
    x, args = built.x, built.args
    methods = {k: planted(spec(cell.method).cls, k, on_rank) for k in ("none", *FAULTS)}
    return {k: check_forward(ctx, cell, m(args), x, args) for k, m in methods.items()}


def float_check_passes(fig: checks.ErrorFigures) -> bool:
    try:
        checks.assert_correct(fig, "planted")
    except CorrectnessError:
        return False
    return True
