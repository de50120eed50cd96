"""CellSpec: one point of the cell matrix, what a parametrized pytest cell runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

AXES = ("phase", "method", "N", "N_out", "B", "dtype", "mask", "workload", "world_size", "bias")


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
        return "-".join(parts)

    @property
    def name(self) -> str:
        return f"{self.phase}[{self.id}]"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CellSpec:
        return cls(**{k: d[k] for k in AXES})
