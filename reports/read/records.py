"""Run folders (results/<run_id>): the run file and one record per cell, pass or fail.

Each file is read into the record schema's types (common/schema: RunDocument, CellRecord), any
readable version upgraded on the way (common/schema/versions.py says what changed); a file that
does not fit, or of a version not known here, is a ReportInputError naming the file and field.
A report row keeps what the report shows of a record: its status and failure, its worst error
over ranks (a rank may have died, or reported a NaN output) and, for drift, rank 0's curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.cell import CellSpec
from common.errors import RecordError, ReportInputError
from common.schema.record import CellRecord
from common.schema.run import RunDocument
from common.schema.versions import read_cell_record, read_run_document
from reports.read.fields import read_json


@dataclass(frozen=True)
class RecordRow:
    """One cell's outcome with its worst error over ranks (NaN where an output was NaN or no
    rank reported one)."""

    cell: CellSpec
    status: str
    failure: str | None
    failure_kind: str | None
    failed_rank: int | None
    emulated: bool | None
    rel_fro_error: float
    rel_fro_bound: float
    max_abs_error: float
    source: str
    drift_errors: tuple[float, ...] | None = None  # drift: rank 0's error after each block
    drift_bounds: tuple[float, ...] | None = None  # and the bound it was held to

    def row(self) -> dict[str, Any]:
        return {
            **self.cell.as_dict(),
            "name": self.cell.name,
            "status": self.status,
            "correct": self.status == "passed",
            "failure": self.failure,
            "failure_kind": self.failure_kind,
            "failed_rank": self.failed_rank,
            "emulated": self.emulated,
            "rel_fro_error": self.rel_fro_error,
            "rel_fro_bound": self.rel_fro_bound,
            "max_abs_error": self.max_abs_error,
            "source": self.source,
            "drift_errors": self.drift_errors,
            "drift_bounds": self.drift_bounds,
        }


@dataclass(frozen=True)
class RunState:
    """Whether a run ended as it should; `problem` is one sentence for the report's top."""

    run_id: str
    folder: str
    status: str | None  # None: a version-1 run file, which did not record it
    problem: str | None


def read_record(path: Path) -> CellRecord:
    """The cell record in `path`, any readable version."""
    try:
        return read_cell_record(read_json(path), str(path))
    except RecordError as e:
        raise ReportInputError(str(e)) from None


def read_run(path: Path) -> RunDocument:
    """run.json in `path`, any readable version."""
    try:
        return read_run_document(read_json(path), str(path))
    except RecordError as e:
        raise ReportInputError(str(e)) from None


def _worst(values: list[float]) -> float:
    """The largest value, NaN if any is NaN (a NaN output is the worst error there is)."""
    if not values or any(math.isnan(v) for v in values):
        return math.nan
    return max(values)


def record_row(record: CellRecord, path: Path) -> RecordRow:
    """What the report shows of one record."""
    errors = [r.errors for r in record.ranks if r.errors is not None]
    figures = record.ranks[0].phase_figures if record.ranks else None
    drift = figures.drift if figures is not None else None
    if drift is not None and len(drift.errors) != len(drift.bounds):
        raise ReportInputError(f"{path}: ranks[0].phase_figures.drift.errors and bounds differ")
    return RecordRow(
        cell=record.cell,
        status=record.status,
        failure=record.failure,
        failure_kind=record.failure_kind,
        failed_rank=record.failed_rank,
        emulated=record.emulated,
        rel_fro_error=_worst([e.rel_fro for e in errors]),
        rel_fro_bound=errors[0].rel_fro_bound if errors else math.nan,
        max_abs_error=_worst([e.max_abs for e in errors]),
        source=str(path),
        drift_errors=tuple(drift.errors) if drift is not None else None,
        drift_bounds=tuple(drift.bounds) if drift is not None else None,
    )


def run_state(folder: Path) -> RunState:
    """Read run.json: a run that is not `completed` with an end time did not finish (version 1
    recorded neither, so its state is unknown, not a problem)."""
    doc = read_run(folder / "run.json")
    if doc.record_version == 1:
        return RunState(doc.run_id, str(folder), None, None)
    status, ended = doc.status, doc.ended
    if status == "completed" and ended is not None:
        return RunState(doc.run_id, str(folder), status, None)
    if status in ("interrupted", "crashed"):
        what = f"was {status} (exit status {doc.exitstatus})"
    else:
        what = f"did not finish (run.json says status {status!r}, ended {ended!r})"
    return RunState(
        doc.run_id,
        str(folder),
        status,
        f"Run {doc.run_id} ({folder}) {what}: it stopped early, so cells it would have run are "
        "missing from this report.",
    )


def load_run(folder: Path) -> tuple[RunState, list[RecordRow]]:
    """The run's state and every cell record it holds, all phases."""
    rows = [record_row(read_record(p), p) for p in sorted(folder.glob("cells/*/*.json"))]
    return run_state(folder), rows
