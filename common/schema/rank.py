"""What one rank returns for a cell (it pickles across the rank pool) and each record keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.schema.checks import ErrorFigures, ExactFigures
from common.schema.energy import EnergyFigures
from common.schema.machine import DeviceState
from common.schema.phase_figures import PhaseFigures
from common.schema.timing import Stats


@dataclass(kw_only=True)
class MemoryFigures:
    """Device bytes on this rank (None off CUDA, where the allocator cannot say)."""

    weight_bytes: int  # what the method keeps for its weights (compressed halves as stored)
    build_peak_bytes: int | None  # peak allocated while the method was built
    # peak of one call of the timed task over what was allocated before it (None: not timed)
    forward_peak_bytes: int | None = None


@dataclass(kw_only=True)
class RankResult:
    """One rank's view of a cell: how it ran, what its check found, what it measured."""

    rank: int
    device: str
    process_group_backend: str | None
    shared_device: bool
    pool_generation: int
    kernel_backend: str  # the 2:4 backend that ran, "dense", or "emulated"
    emulated: bool
    alg_id: int | str | None  # cuSPARSELt's alg id, or the Triton config's name
    alg_source: str | None = None  # where the alg id came from (None: not recorded, version 1)
    alg_search_error: str | None
    seed: int
    memory: MemoryFigures
    errors: ErrorFigures | None = None  # the forward check's figures
    exact: ExactFigures | None = None  # the exact probe's figures, where it ran
    failure: str | None = None  # this rank's failed check, named (the ranks stop together)
    timing: dict[str, Stats] = field(default_factory=dict)  # key: a Measurement's name
    modes: list[str] = field(default_factory=list)  # timing modes here, the primary first
    primary: str = "forward"  # the timing the phase publishes (PhaseInfo.primary)
    phase_figures: PhaseFigures | None = None
    energy: EnergyFigures | None = None
    state_start: DeviceState = field(default_factory=DeviceState)
    state_end: DeviceState = field(default_factory=DeviceState)

    @property
    def forward(self) -> Stats | None:
        """The published timing: the phase's primary measurement."""
        return self.timing.get(self.primary)
