"""Run folders in the record format the harness writes (record_version 2, CONTRACT.md), for
report tests that need failures a healthy CPU run does not produce: NaN outputs, dead ranks,
interrupted runs."""

from __future__ import annotations

import json
from pathlib import Path

from common.cell import CellSpec


def cell(method="dense_single", N=256, B=8, dtype="bf16", mask=None, phase="phase0") -> CellSpec:
    ws = 1 if method == "dense_single" else 2
    return CellSpec(phase, method, N, N, B, dtype, mask, "gaussian", ws, False)


def rank(r: int, rel_fro: float | None = 2.4e-3) -> dict:
    errors = {"rel_fro": rel_fro, "rel_fro_bound": 6.8e-3, "max_abs": 0.02, "nonfinite": 0}
    return {"rank": r, "emulated": True, "errors": errors}


def record(spec: CellSpec, status="passed", ranks=None, failure=None, kind=None, failed=None):
    ranks = [rank(r) for r in range(spec.world_size)] if ranks is None else ranks
    return {
        "record_version": 2,
        "run_id": "test-run",
        "name": spec.name,
        "phase": spec.phase,
        "cell": spec.as_dict(),
        "status": status,
        "failure": failure,
        "failure_kind": kind,
        "failed_rank": failed,
        "published": False,
        "emulated": True if ranks else None,
        "ranks": ranks,
    }


def write_run(folder: Path, records: list[dict], status="completed", ended=1.0e9) -> Path:
    """A run folder as the harness leaves it: marker, run.json, one file per cell record."""
    folder.mkdir(parents=True)
    (folder / ".block-shock-run").write_text("test\n")
    run = {"record_version": 2, "run_id": folder.name, "status": status, "ended": ended}
    (folder / "run.json").write_text(json.dumps({**run, "exitstatus": 0}))
    for doc in records:
        cell_id = doc["name"].partition("[")[2].rstrip("]")
        path = folder / "cells" / doc["phase"] / f"{cell_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
    return folder


def passed_run(folder: Path) -> Path:
    """The smallest good input: one passed phase0 cell."""
    return write_run(folder, [record(cell())])
