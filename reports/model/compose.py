"""Two GPUs from one: a two-rank cell from one GPU's measured half plus the link's model.

Multi-GPU machines are scarce; one GPU is not. Each rank of a two-rank method runs exactly the
GEMM of a one-GPU cell the harness already times (the registry's work models agree, and a test
holds them to it): Block-Shock's rank runs a 2:4 half (`block_shock_half` on the same backend),
row-parallel TP's rank the dense N x N/2 half (`dense_half`), the masked-split ablation's rank a
full dense GEMM (`dense_single`). So the two-rank forward is that measured time plus the
collective the link model predicts for the method's payload. Column-parallel TP's rank (an
N/2 x N GEMM) has no one-GPU twin measured here, so it is not composed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from kernels.registry import twins
from reports.model.machine import GpuSpec
from reports.model.observations import Observation
from reports.model.time_model import Cell, Fit, link_params, link_time, units


@dataclass(frozen=True)
class Composed:
    """A two-rank cell's time from a measured one-GPU half and the modelled collective."""

    cell: Cell
    half: Observation
    collective_s: float
    basis: str

    @property
    def total_s(self) -> float:
        return self.half.median_s + self.collective_s


def half_cell(cell: Cell) -> Cell | None:
    """The one-GPU cell one rank of `cell` runs, None where no one-GPU method is its twin."""
    twin = twins().get(cell.method)
    if cell.world_size != 2 or twin is None:
        return None
    return replace(cell, method=twin, world_size=1)


def measured(cell: Cell, observations: Iterable[Observation], gpu: GpuSpec) -> Observation | None:
    """The machine's measurement of exactly this cell (the median one where there are several),
    None where it was not measured."""
    found = sorted(
        (o for o in observations if o.cell == cell and o.machine == gpu.key),
        key=lambda o: o.median_s,
    )
    return found[len(found) // 2] if found else None


def compose(cell: Cell, halves: Iterable[Observation], gpu: GpuSpec, fit: Fit) -> Composed | None:
    """The cell from the machine's measured half at the same shape, backend and timing mode
    (their median where measured several times), None when that half was not measured."""
    twin = half_cell(cell)
    half = measured(twin, halves, gpu) if twin is not None else None
    if twin is None or half is None:
        return None
    link = link_params(fit, gpu.link)
    return Composed(
        cell,
        half,
        link_time(units(cell, gpu), link),
        f"measured {twin.label} ({Path(half.source.split('::')[0]).name}) + link model",
    )
