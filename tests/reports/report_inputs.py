"""Run folders in the record format the harness writes (the record schema, common/schema), for
report tests that need failures a healthy CPU run does not produce: NaN outputs, dead ranks,
interrupted runs. Documents are built from the schema's types and written by its codec, then
handed back as JSON data so a test can break one field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from common.cell import CellSpec
from common.schema.checks import ErrorFigures
from common.schema.codec import to_json
from common.schema.rank import MemoryFigures, RankResult
from common.schema.record import CellRecord
from common.schema.run import RunDocument
from common.schema.versions import RECORD_VERSION


def cell(method="dense_single", N=256, B=8, dtype="bf16", mask=None, phase="phase0") -> CellSpec:
    ws = 1 if method == "dense_single" else 2
    return CellSpec(phase, method, N, N, B, dtype, mask, "gaussian", ws, False)


def rank(r: int, rel_fro: float | None = 2.4e-3) -> RankResult:
    """Rank r's result on the CPU; rel_fro None: its output held NaN (the record says null)."""
    errors = ErrorFigures(
        nonfinite=0 if rel_fro is not None else 1,
        nonfinite_inputs=0,
        rel_fro=math.nan if rel_fro is None else rel_fro,
        max_abs=0.02,
        mean_abs=0.002,
        max_rel=0.2,
        max_abs_over_bound=0.2,
        ref_fro=30.0,
        rel_fro_bound=6.8e-3,
        elementwise_factor=0.0117,
        roundings=3,
    )
    return RankResult(
        rank=r,
        device="cpu",
        process_group_backend="gloo",
        shared_device=False,
        pool_generation=0,
        kernel_backend="dense",
        emulated=True,
        alg_id=None,
        alg_source=None,
        alg_search_error=None,
        seed=1,
        memory=MemoryFigures(weight_bytes=65536, build_peak_bytes=None),
        errors=errors,
    )


def record(
    spec: CellSpec, status="passed", ranks=None, failure=None, kind=None, failed=None
) -> dict[str, Any]:
    """The cell's record as JSON data (its ranks RankResults, or [] for a rank that died)."""
    ranks = [rank(r) for r in range(spec.world_size)] if ranks is None else ranks
    doc = CellRecord(
        record_version=RECORD_VERSION,
        measurement_version=2,
        run_id="test-run",
        name=spec.name,
        phase=spec.phase,
        cell=spec,
        status=status,
        correct=None if not ranks else status == "passed",
        failure=failure,
        failure_kind=kind,
        failed_rank=failed,
        published=False,
        emulated=True if ranks else None,
        ranks=ranks,
    )
    return to_json(doc)


def write_run(folder: Path, records: list[dict], status="completed", ended=1.0e9) -> Path:
    """A run folder as the harness leaves it: marker, run.json, one file per cell record."""
    folder.mkdir(parents=True)
    (folder / ".block-shock-run").write_text("test\n")
    run = RunDocument(
        record_version=RECORD_VERSION,
        run_id=folder.name,
        started=ended - 60 if ended else 0.0,
        status=status,
        ended=ended,
        exitstatus=0,
    )
    (folder / "run.json").write_text(json.dumps(to_json(run)))
    for doc in records:
        cell_id = doc["name"].partition("[")[2].rstrip("]")
        path = folder / "cells" / doc["phase"] / f"{cell_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
    return folder


def passed_run(folder: Path) -> Path:
    """The smallest good input: one passed phase0 cell."""
    return write_run(folder, [record(cell())])
