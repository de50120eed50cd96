"""What a report shows of a study, without depending on `reports`: the failure table and each
cell's spread over the cycles. The records are checked against their sidecars first."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from bench.study import integrity
from bench.study.manifest import Manifest
from common.errors import StudyError


@dataclass(frozen=True)
class FailureRow:
    name: str
    cycle: int
    state: str  # failed or skipped
    kind: str | None  # the failure class; None for a skip
    attempts: int
    reason: str


@dataclass(frozen=True)
class SpreadRow:
    """One cell's median device time per cycle and their spread: (max - min) / median."""

    name: str
    medians_s: tuple[float, ...]  # in cycle order
    cycles: tuple[int, ...]
    spread: float | None  # None with fewer than two cycles measured


@dataclass(frozen=True)
class StudyTables:
    suite: str
    design_hash: str
    status: str
    failures: tuple[FailureRow, ...]
    spread: tuple[SpreadRow, ...]


def study_tables(folder: Path) -> StudyTables:
    """Read a study folder: raise StudyError when a record does not match its sidecar."""
    folder = Path(folder)
    problems = integrity.verify(folder)
    if problems:
        raise StudyError(f"{folder}: records fail their sha256 check:\n  " + "\n  ".join(problems))
    m = Manifest.load(folder / "manifest.json")
    failures = tuple(
        FailureRow(c.name, c.cycle, c.state, c.failure_kind, c.attempts, c.reason or "")
        for c in m.cells
        if c.state in ("failed", "skipped")
    )
    per_cell: dict[str, dict[int, float]] = {}
    for sl in m.slices.values():
        path = folder / "bench" / f"{sl.id}.json"
        if not path.exists():
            continue
        for b in json.loads(path.read_text()).get("benchmarks", []):
            per_cell.setdefault(b["name"], {})[sl.cycle] = b["stats"]["median"]
    spread = []
    for name, by_cycle in per_cell.items():
        cycles = tuple(sorted(by_cycle))
        medians = tuple(by_cycle[c] for c in cycles)
        s = (max(medians) - min(medians)) / statistics.median(medians) if len(medians) > 1 else None
        spread.append(SpreadRow(name, medians, cycles, s))
    return StudyTables(m.suite, m.design_hash, m.status, failures, tuple(spread))
