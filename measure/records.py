"""Result records: one JSON document per cell, written the moment the cell ends.

Layout of a run (default under results/, which git ignores):
    results/<run_id>/run.json                      environment, options, seed, ceilings
    results/<run_id>/cells/<phase>/<cell id>.json  the resolved cell and its figures
    results/<run_id>/series/<cell name>.rank<r>.csv power/clock/temperature time series
A crash loses at most the cell in flight: each file is written whole (temp file, then rename).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

RECORD_VERSION = 1


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


class RunRecords:
    def __init__(self, root: Path, run_id: str | None = None):
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        self.dir = Path(root) / self.run_id
        self.run_doc: dict = {
            "record_version": RECORD_VERSION,
            "run_id": self.run_id,
            "started": time.time(),
            "ceilings": {},
            "environment": {},
        }

    def update_run(self, **fields) -> None:
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(self.run_doc.get(k), dict):
                self.run_doc[k].update(v)
            else:
                self.run_doc[k] = v
        write_json(self.dir / "run.json", self.run_doc)

    def write_cell(self, cell, doc: dict) -> Path:
        for rank in doc.get("ranks", []):
            energy = rank.get("energy", {})
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
                "run_id": self.run_id,
                "cell": cell.as_dict(),
                "name": cell.name,
                **doc,
            },
        )
        return path


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
