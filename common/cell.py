"""CellSpec: one point of the cell matrix, what a parametrized pytest cell runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Axes every cell has, then axes only some phases or methods take (None where they do not,
# and then left out of the id, so the ids of cells that never had them stay the same).
CORE_AXES = (
    "phase",
    "method",
    "N",
    "N_out",
    "B",
    "dtype",
    "mask",
    "workload",
    "world_size",
    "bias",
)
OPTIONAL_AXES = ("backend", "optimizer", "variant", "steps")
AXES = CORE_AXES + OPTIONAL_AXES


@dataclass(frozen=True)
class CellSpec:
    phase: str
    method: str
    N: int
    N_out: int
    B: int
    dtype: str
    mask: str | None
    workload: str
    world_size: int
    bias: bool
    backend: str | None = None  # the 2:4 kernel path of a semi-structured method (None: the run's)
    optimizer: str | None = None  # phase3: sgd or adamw
    variant: str | None = None  # phase3 of a 2:4 method: T1, T1m or T2
    steps: int | None = None  # phase3: optimizer steps checked; drift: blocks applied

    @property
    def id(self) -> str:
        """Readable pytest id, e.g. block_shock-N256-B64-bf16-random_2of4-gaussian-ws2."""
        n = f"N{self.N}" if self.N_out == self.N else f"N{self.N}x{self.N_out}"
        parts = [self.method, n, f"B{self.B}", self.dtype]
        if self.mask:
            parts.append(self.mask)
        parts += [self.workload, f"ws{self.world_size}"]
        if self.bias:
            parts.append("bias")
        parts += [v for v in (self.backend, self.optimizer, self.variant) if v]
        if self.steps:
            parts.append(f"T{self.steps}")
        return "-".join(parts)

    @property
    def name(self) -> str:
        return f"{self.phase}[{self.id}]"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellSpec:
        """The cell a dict of axes names; the optional axes may be absent (None)."""
        axes: dict[str, Any] = {k: d[k] for k in CORE_AXES}
        axes.update({k: d.get(k) for k in OPTIONAL_AXES})
        return cls(**axes)
