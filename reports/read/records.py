"""Run folders (results/<run_id>): the run file and one record per cell, pass or fail.

Record version 1 kept `correct` (true or false) and only cells that reached their check;
version 2 keeps a record for every cell started, with `status` (passed, failed, error), the
failure's kind and rank, and ranks that may be empty (a rank died) or report a NaN output
(`rel_fro: null`). Both are read into one CellRecord; any other version is refused by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from common.errors import ReportInputError
from common.outcomes import STATUSES
from measure.cells.matrix import AXES, CellSpec
from reports.read.fields import field, number, numbers, read_json

KNOWN_VERSIONS = (1, 2)


@dataclass(frozen=True)
class CellRecord:
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

    def row(self) -> dict:
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


def record_version(doc: dict, path: Path) -> int:
    v = field(doc, "record_version", path)
    if v not in KNOWN_VERSIONS:
        raise ReportInputError(
            f"{path}: field record_version is {v!r}; this report reads versions "
            + ", ".join(map(str, KNOWN_VERSIONS))
        )
    return v


def _cell(doc: dict, path: Path) -> CellSpec:
    cell = field(doc, "cell", path)
    for axis in AXES:
        field(cell, axis, path, "cell.")
    spec = CellSpec.from_dict(cell)
    name = field(doc, "name", path)
    if name != spec.name:
        raise ReportInputError(f"{path}: field name is {name!r} but its cell is {spec.name}")
    return spec


def _worst(values: list[float]) -> float:
    """The largest value, NaN if any is NaN (a NaN output is the worst error there is)."""
    if not values or any(math.isnan(v) for v in values):
        return math.nan
    return max(values)


def _drift(ranks: list, path: Path) -> tuple[tuple | None, tuple | None]:
    """rank 0's drift curve (errors may be None where a step's output was NaN) and bounds."""
    figures = ranks[0].get("phase_figures") if ranks else None
    drift = figures.get("drift") if isinstance(figures, dict) else None
    if drift is None:
        return None, None
    where = "ranks[0].phase_figures.drift."
    errors = numbers(field(drift, "errors", path, where), path, where + "errors", optional=True)
    bounds = numbers(field(drift, "bounds", path, where), path, where + "bounds")
    if len(errors) != len(bounds):
        raise ReportInputError(f"{path}: {where}errors and bounds differ in length")
    return tuple(errors), tuple(bounds)


def read_record(path: Path) -> CellRecord:
    doc = read_json(path)
    version = record_version(doc, path)
    cell = _cell(doc, path)
    if version == 1:
        correct = field(doc, "correct", path)
        if not isinstance(correct, bool):
            raise ReportInputError(f"{path}: field correct is {correct!r}, not true or false")
        status, kind, rank = ("passed", None, None) if correct else ("failed", "wrong_result", None)
    else:
        status = field(doc, "status", path)
        if status not in STATUSES:
            raise ReportInputError(f"{path}: field status is {status!r}, not one of {STATUSES}")
        kind, rank = field(doc, "failure_kind", path), field(doc, "failed_rank", path)
    ranks = field(doc, "ranks", path)
    if not isinstance(ranks, list) or (not ranks and status == "passed"):
        raise ReportInputError(f"{path}: field ranks is {ranks!r}; a {status} cell needs ranks")
    errs = []
    for i, r in enumerate(ranks):
        e = field(r, "errors", path, f"ranks[{i}].")
        if e is not None:
            errs.append(
                {
                    k: number(
                        field(e, k, path, f"ranks[{i}].errors."),
                        path,
                        f"ranks[{i}].errors.{k}",
                        optional=True,
                    )
                    for k in ("rel_fro", "rel_fro_bound", "max_abs")
                }
            )
    drift_errors, drift_bounds = _drift(ranks, path)
    return CellRecord(
        cell=cell,
        status=status,
        failure=field(doc, "failure", path),
        failure_kind=kind,
        failed_rank=rank,
        emulated=field(doc, "emulated", path),
        rel_fro_error=_worst([e["rel_fro"] for e in errs]),
        rel_fro_bound=errs[0]["rel_fro_bound"] if errs else math.nan,
        max_abs_error=_worst([e["max_abs"] for e in errs]),
        source=str(path),
        drift_errors=drift_errors,
        drift_bounds=drift_bounds,
    )


def run_state(folder: Path) -> RunState:
    """Read run.json: a version-2 run that is not `completed` with an end time did not finish."""
    path = folder / "run.json"
    doc = read_json(path)
    run_id = str(field(doc, "run_id", path))
    if record_version(doc, path) == 1:
        return RunState(run_id, str(folder), None, None)
    status, ended = doc.get("status"), doc.get("ended")
    if status == "completed" and ended is not None:
        return RunState(run_id, str(folder), status, None)
    if status in ("interrupted", "crashed"):
        what = f"was {status} (exit status {doc.get('exitstatus')})"
    else:
        what = f"did not finish (run.json says status {status!r}, ended {ended!r})"
    return RunState(
        run_id,
        str(folder),
        status,
        f"Run {run_id} ({folder}) {what}: it stopped early, so cells it would have run are "
        "missing from this report.",
    )


def load_run(folder: Path) -> tuple[RunState, list[CellRecord]]:
    """The run's state and every cell record it holds, all phases."""
    return run_state(folder), [read_record(f) for f in sorted(folder.glob("cells/*/*.json"))]
