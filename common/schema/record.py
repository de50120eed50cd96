"""A cell's record (results/<run_id>/cells/<phase>/<cell id>.json), written the moment the cell
ends, pass or fail."""

from __future__ import annotations

from dataclasses import dataclass

from common.cell import CellSpec
from common.outcomes import FailureKind, Status
from common.schema.attempt import Attempt
from common.schema.codec import omitted_when_none
from common.schema.figures import CellFigures
from common.schema.rank import RankResult


@dataclass(kw_only=True)
class CellRecord:
    """One cell's outcome: passed (checked and measured), failed (its check failed: nothing
    measured or published) or error (a rank raised, died or hung before a result)."""

    record_version: int
    measurement_version: int | None = None  # what the figures mean (None: version 1)
    run_id: str
    attempt: Attempt | None = None  # who wrote it (None: not recorded, before version 4)
    name: str  # the pytest name, phase[cell id]
    phase: str
    cell: CellSpec
    status: Status
    correct: bool | None  # None: no rank reported (an error before any result)
    failure: str | None
    failure_kind: FailureKind | None
    failed_rank: int | None
    stacks: dict[str, str] | None = None  # every rank's Python stack when a rank hung
    published: bool  # its timing reached pytest-benchmark, asv and the report tables
    emulated: bool | None
    ranks: list[RankResult]
    figures: CellFigures | None = omitted_when_none()  # a passed timed cell's figures
