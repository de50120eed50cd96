"""Result records: one JSON document per cell, written the moment the cell ends.

Layout of a run (default under results/, which git ignores):
    results/<run_id>/.block-shock-run              marker: a folder the harness made
    results/<run_id>/run.json                      environment, options, seed, ceilings, status
    results/<run_id>/cells/<phase>/<cell id>.json  the cell's outcome (pass or fail), figures
    results/<run_id>/series/<phase>/<cell id>.rank<r>.csv  power/clock/temperature time series
    results/<run_id>/benchmarks.json               pytest-benchmark's JSON of the timed cells
                                                   (unless --benchmark-json puts it elsewhere)
Every document is a record-schema object (common/schema: CellRecord, RunDocument) written by its
codec, so what a reader gets back is what was written, field for field. Nothing is written until
the first cell ends (so `--help` or `--co` leave no folder). A crash loses at most the cell in
flight: each file is written whole (temp file, then rename), and run.json says "running" until
the run ends ("completed" or "interrupted", with the signal that stopped it), so a run that died
is told from one that finished. run.json and every record carry the `attempt` that wrote them
(common/schema/attempt.py): the study slice (--bs-attempt) and torchrun's restart count, so a
study tells a killed attempt's records from the ones it keeps.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from common.schema.attempt import Attempt
from common.schema.codec import from_json, to_json
from common.schema.rank import RankResult
from common.schema.run import RunDocument
from common.schema.versions import RECORD_VERSION
from measure.records.results import CellResult
from measure.timing.policy import MEASUREMENT_VERSION

MARKER = ".block-shock-run"
SERIES_COLUMNS = ["t_s", "power_w", "sm_clock_mhz", "temperature_c", "clocks_event_reasons"]


def write_json(path: Path, doc: Any) -> None:
    """`doc` (a record-schema object, or plain JSON data) written whole, NaN/inf as null."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_json(doc), indent=1, sort_keys=True))
    os.replace(tmp, path)


def attempt_of(study_attempt: str | None) -> Attempt:
    """Who writes this process's records: the study's attempt id (None outside a study) and
    torchrun's restart count (None outside torchrun)."""
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    return Attempt(id=study_attempt, restart_count=None if restart is None else int(restart))


class RunRecords:
    """The run folder of one pytest run: run.json and the cells' records, written by `attempt`
    (the study's --bs-attempt, None outside a study)."""

    def __init__(self, root: Path, run_id: str | None = None, attempt: str | None = None):
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        self.attempt = attempt_of(attempt)
        self.dir = Path(root) / self.run_id
        self.started = False
        self.cells = 0
        self.run = RunDocument(
            record_version=RECORD_VERSION,
            measurement_version=MEASUREMENT_VERSION,
            run_id=self.run_id,
            attempt=self.attempt,
            started=time.time(),
            status="running",
        )

    def update_run(self, **fields: Any) -> None:
        """Set run.json's fields (a dict merges into the one there: the environment and the
        ceilings arrive one world size at a time). The values are plain data from the session
        (the environment's and ceilings' dicts); each is checked against RunDocument here, so a
        key the schema does not know fails at once, naming the field."""
        doc = to_json(self.run)
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(doc.get(k), dict):
                doc[k] = {**doc[k], **to_json(v)}
            else:
                doc[k] = to_json(v)
        self.run = from_json(RunDocument, doc, "run.json", lenient=True)
        if self.started:
            write_json(self.dir / "run.json", self.run)

    def _start(self) -> None:
        if not self.started:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / MARKER).write_text("a run folder written by Block-Shock bench\n")
            self.started = True
            write_json(self.dir / "run.json", self.run)

    def finish(
        self, exitstatus: int | None, interrupted: bool, stopped_by: str | None = None
    ) -> None:
        """Close the run file: completed or interrupted (with the signal that stopped it, if
        one did), with the run's exit status."""
        self.update_run(
            status="interrupted" if interrupted else "completed",
            ended=time.time(),
            exitstatus=exitstatus,
            stopped_by=stopped_by,
        )

    def write_cell(self, result: CellResult) -> Path:
        """The cell's record (pass or fail), each rank's energy series beside it as CSV."""
        self._start()
        cell = result.cell
        ranks = [self._series_to_csv(result, r) for r in result.ranks]
        record = dataclasses.replace(result.record(self.run_id, self.attempt), ranks=ranks)
        path = self.dir / "cells" / cell.phase / f"{cell.id}.json"
        write_json(path, record)
        self.cells += 1
        return path

    def _series_to_csv(self, result: CellResult, rank: RankResult) -> RankResult:
        """The rank's result with its power samples moved to series/, their file named."""
        energy = rank.energy
        if energy is None or not energy.series:
            return rank
        cell = result.cell
        p = self.dir / "series" / cell.phase / f"{cell.id}.rank{rank.rank}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(SERIES_COLUMNS)
            t0 = energy.series[0][0]
            w.writerows([[f"{s[0] - t0:.4f}", *s[1:]] for s in energy.series])
        moved = dataclasses.replace(energy, series=None, series_csv=str(p.relative_to(self.dir)))
        return dataclasses.replace(rank, energy=moved)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
