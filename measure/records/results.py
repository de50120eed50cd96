"""A cell's outcome as the session holds it, and the record it becomes.

Ranks return a RankResult (common/schema/rank.py; it pickles across the pool); the session wraps
the ranks' results in a CellResult with the cell's verdict and, for a passed timed cell, its
CellFigures. The record (`CellResult.record`), pytest-benchmark's extra_info, the end-of-run
summary, asv and the reports are printers over these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.cell import CellSpec
from common.outcomes import FailureKind, Status
from common.schema.attempt import Attempt
from common.schema.figures import CellFigures
from common.schema.rank import MemoryFigures, RankResult
from common.schema.record import CellRecord
from common.schema.versions import RECORD_VERSION
from measure.timing.policy import MEASUREMENT_VERSION

__all__ = ["CellResult", "MemoryFigures", "RankResult"]


@dataclass
class CellResult:
    """One cell's outcome: passed (checked and measured), failed (its check failed: nothing
    measured or published) or error (a rank raised, died or hung before a result)."""

    cell: CellSpec
    status: Status
    ranks: list[RankResult] = field(default_factory=list)
    failure: str | None = None
    failure_kind: FailureKind | None = None
    failed_rank: int | None = None
    stacks: dict[int, str] | None = None  # every rank's Python stack when a rank hung
    figures: CellFigures | None = None  # derived figures of a timed cell (extra_info)

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

    def record(self, run_id: str, attempt: Attempt | None) -> CellRecord:
        """The cell's record, as the run `run_id` writes it in `attempt`."""
        return CellRecord(
            record_version=RECORD_VERSION,
            measurement_version=MEASUREMENT_VERSION,
            run_id=run_id,
            attempt=attempt,
            name=self.cell.name,
            phase=self.cell.phase,
            cell=self.cell,
            status=self.status,
            correct=None if not self.ranks else self.passed,
            failure=self.failure,
            failure_kind=self.failure_kind,
            failed_rank=self.failed_rank,
            stacks=None if self.stacks is None else {str(r): s for r, s in self.stacks.items()},
            published=self.published,
            emulated=self.emulated,
            ranks=self.ranks,
            figures=self.figures,
        )
