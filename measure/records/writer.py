"""Result records: one JSON document per cell, written the moment the cell ends.

Layout of a run (default under results/, which git ignores):
    results/<run_id>/.block-shock-run              marker: a folder the harness made
    results/<run_id>/run.json                      environment, options, seed, ceilings, status
    results/<run_id>/cells/<phase>/<cell id>.json  the cell's outcome (pass or fail), figures
    results/<run_id>/series/<cell name>.rank<r>.csv power/clock/temperature time series
    results/<run_id>/benchmarks.json               pytest-benchmark's JSON of the timed cells
                                                   (unless --benchmark-json puts it elsewhere)
Nothing is written until the first cell ends (so `--help` or `--co` leave no folder). A crash
loses at most the cell in flight: each file is written whole (temp file, then rename), and
run.json says "running" until the run ends ("completed" or "interrupted", with the signal that
stopped it), so a run that died is told from one that finished. run.json and every record
carry the `attempt` that wrote them: the study slice (--bs-attempt) and torchrun's restart
count, so a study tells a killed attempt's records from the ones it keeps.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

from measure.timing.policy import MEASUREMENT_VERSION

RECORD_VERSION = 2
MARKER = ".block-shock-run"
BENCHMARK_JSON = "benchmarks.json"  # the run folder's benchmark samples (measure.plugin.hooks)


def _clean(obj):
    """JSON-safe copy: NaN/inf become None (JSON has no NaN), tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(doc), indent=1, sort_keys=True))
    os.replace(tmp, path)


def attempt_of(study_attempt: str | None) -> dict:
    """Who wrote a record: the study's attempt id (None outside a study) and torchrun's restart
    count (None outside torchrun)."""
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    return {"id": study_attempt, "restart_count": None if restart is None else int(restart)}


class RunRecords:
    def __init__(self, root: Path, run_id: str | None = None, attempt: str | None = None):
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        self.attempt = attempt_of(attempt)
        self.dir = Path(root) / self.run_id
        self.started = False
        self.cells = 0
        self.run_doc: dict = {
            "record_version": RECORD_VERSION,
            "measurement_version": MEASUREMENT_VERSION,
            "run_id": self.run_id,
            "attempt": self.attempt,
            "started": time.time(),
            "status": "running",
            "ended": None,
            "exitstatus": None,
            "ceilings": {},
            "environment": {},
        }

    def update_run(self, **fields) -> None:
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(self.run_doc.get(k), dict):
                self.run_doc[k].update(v)
            else:
                self.run_doc[k] = v
        if self.started:
            write_json(self.dir / "run.json", self.run_doc)

    def _start(self) -> None:
        if not self.started:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / MARKER).write_text("a run folder written by Block-Shock bench\n")
            self.started = True
            write_json(self.dir / "run.json", self.run_doc)

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

    def write_cell(self, result) -> Path:
        """The cell's record (a CellResult, pass or fail), its energy series beside it."""
        self._start()
        cell = result.cell
        doc = result.record()
        for rank in doc["ranks"]:
            energy = rank.get("energy") or {}
            rows = energy.pop("series", None)
            if rows:
                p = self.dir / "series" / f"{cell.phase}" / f"{cell.id}.rank{rank['rank']}.csv"
                p.parent.mkdir(parents=True, exist_ok=True)
                with p.open("w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(
                        ["t_s", "power_w", "sm_clock_mhz", "temperature_c", "clocks_event_reasons"]
                    )
                    t0 = rows[0][0]
                    w.writerows([[f"{r[0] - t0:.4f}", r[1], r[2], r[3], r[4]] for r in rows])
                energy["series_csv"] = str(p.relative_to(self.dir))
        path = self.dir / "cells" / cell.phase / f"{cell.id}.json"
        write_json(
            path,
            {
                "record_version": RECORD_VERSION,
                "measurement_version": MEASUREMENT_VERSION,
                "run_id": self.run_id,
                "attempt": self.attempt,
                "cell": cell.as_dict(),
                "name": cell.name,
                **doc,
            },
        )
        self.cells += 1
        return path


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
