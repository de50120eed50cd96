"""The typed result tree: what a rank returns for a cell, and what the session makes of it.

Ranks return a RankResult (it pickles across the pool); the session wraps the ranks' results
in a CellResult with the cell's verdict. The record, pytest-benchmark's extra_info, the
end-of-run summary, asv and the reports are printers over these objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from common.cell import CellSpec
from measure.checks.bounds import ErrorFigures
from measure.timing.sampler import Stats


@dataclass
class MemoryFigures:
    """Device bytes on this rank (None off CUDA, where the allocator cannot say)."""

    weight_bytes: int  # what the method keeps for its weights (compressed halves as stored)
    build_peak_bytes: int | None  # peak allocated while the method was built
    forward_peak_bytes: int | None  # peak of one forward over what was allocated before it


@dataclass
class RankResult:
    rank: int
    device: str
    process_group_backend: str | None
    shared_device: bool
    pool_generation: int
    kernel_backend: str
    emulated: bool
    alg_id: int | None
    alg_source: str | None
    alg_search_error: str | None
    seed: int
    memory: MemoryFigures
    errors: ErrorFigures | None = None
    exact: dict | None = None  # the exact probe's figures, where it ran
    failure: str | None = None  # this rank's failed check, named (the ranks stop together)
    timing: dict[str, Stats] = field(default_factory=dict)
    modes: list[str] = field(default_factory=list)
    primary: str = "forward"  # the timing the phase publishes (forward, backward, step)
    phase_figures: dict | None = None  # phase2/3/drift: backward backend, training, drift
    energy: dict | None = None  # measured figures, or {"energy": status, "reason": why}
    state_start: dict = field(default_factory=dict)
    state_end: dict = field(default_factory=dict)

    @property
    def forward(self) -> Stats | None:
        """The published timing: the phase's primary measurement."""
        return self.timing.get(self.primary)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class CellResult:
    """One cell's outcome: passed (checked and measured), failed (its check failed: nothing
    measured or published) or error (a rank raised, died or hung before a result)."""

    cell: CellSpec
    status: str
    ranks: list[RankResult] = field(default_factory=list)
    failure: str | None = None
    failure_kind: str | None = None
    failed_rank: int | None = None
    stacks: dict | None = None  # every rank's Python stack when a rank hung (rank -> text)
    figures: dict | None = None  # derived figures of a timed cell (pytest-benchmark extra_info)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def published(self) -> bool:
        """Only a passed cell's timing reaches pytest-benchmark, asv and the report tables."""
        return self.passed and self.figures is not None

    @property
    def emulated(self) -> bool | None:
        return self.ranks[0].emulated if self.ranks else None

    def record(self) -> dict:
        """The cell's record document (record_version 2)."""
        return {
            "phase": self.cell.phase,
            "status": self.status,
            "correct": None if not self.ranks else self.status == "passed",
            "failure": self.failure,
            "failure_kind": self.failure_kind,
            "failed_rank": self.failed_rank,
            "stacks": self.stacks,
            "published": self.published,
            "emulated": self.emulated,
            "ranks": [r.as_dict() for r in self.ranks],
            **({"figures": self.figures} if self.figures is not None else {}),
        }
