"""Exactly one record per cell run: which records of a slice the study keeps, and the check.

A slice's pytest writes each cell's record under `runs/<slice>/<run_id>/cells/<phase>/<cell
id>.json` the moment the cell ends (atomically, carrying its attempt: the slice id) and its
timings into `bench/<slice>.json` when its session ends. A cell run's record is the one in the
slice that gave it its final state (the manifest's `slice`). A slice that ends under a cell (a
kill, a hang, a crash) may leave a record, or a benchmark entry, of a cell the study runs
again; such a record is moved to `superseded/<slice>/` under the same path, and its benchmark
entry from `bench/<slice>.json` into `superseded/<slice>/bench.json`: the killed attempt's
data is kept, as that attempt's, and nothing under runs/ or bench/ counts any cell run twice.
A cell that passed counts as done only when its record (and, for a timed phase, its benchmark
entry) is there: a slice killed before writing them runs the cell again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.study.integrity import SUFFIX, SUPERSEDED
from bench.study.manifest import CellRun, Manifest
from common.errors import RecordError
from common.schema.record import CellRecord
from common.schema.versions import read_cell_record
from measure.phases import PHASES


def _read(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _record(path: Path) -> CellRecord | None:
    """The cell record at `path` through the record schema; None where it cannot be read (the
    study then counts it by its path, so it is still seen)."""
    doc = _read(path)
    try:
        return None if doc is None else read_cell_record(doc, str(path))
    except RecordError:
        return None


def slice_records(study: Path, slice_id: str) -> dict[str, list[Path]]:
    """The slice's record files under runs/, by cell name (a readable record names its cell)."""
    out: dict[str, list[Path]] = {}
    for path in sorted((study / "runs" / slice_id).glob("*/cells/*/*.json")):
        record = _record(path)
        out.setdefault(record.name if record else str(path), []).append(path)
    return out


def bench_names(study: Path, slice_id: str) -> list[str]:
    """The cell names of the slice's benchmark entries (each once per entry)."""
    doc = _read(study / "bench" / f"{slice_id}.json")
    entries = (doc or {}).get("benchmarks", [])
    return [b["name"] for b in entries if isinstance(b, dict) and isinstance(b.get("name"), str)]


def writes_records(m: Manifest) -> bool:
    """Records and benchmark files are written by torchrun's global rank 0 only: a study on a
    node other than the first has none of its own."""
    return m.options.get("launcher", {}).get("node_rank", 0) == 0


def _attempt_problem(path: Path, slice_id: str) -> str | None:
    """A record written by another attempt than the slice it is kept in (records from before
    attempts were recorded, record version 3 and earlier, carry none and are not judged)."""
    record = _record(path)
    if record is None or record.attempt is None:
        return None
    attempt = record.attempt.id
    return None if attempt == slice_id else f"written by attempt {attempt!r}, not {slice_id}"


def not_recorded(study: Path, slice_id: str, run: CellRun) -> str | None:
    """Why a cell the slice reports passed has no good record there, or None when it has."""
    paths = slice_records(study, slice_id).get(run.name, [])
    if not paths:
        return "its record was not written"
    problem = _attempt_problem(paths[0], slice_id)
    if problem:
        return f"its record was {problem}"
    if PHASES[run.phase].timed and run.name not in bench_names(study, slice_id):
        return "its benchmark entry was not written (the slice ended before its session did)"
    return None


def set_apart(study: Path, slice_id: str, keep: set[str]) -> list[str]:
    """Move the slice's records and benchmark entries of cells not in `keep` (and their energy
    series) under superseded/<slice>/; return the names moved."""
    runs, apart = study / "runs" / slice_id, study / SUPERSEDED / slice_id
    moved = []
    for name, paths in slice_records(study, slice_id).items():
        if name in keep:
            continue
        moved.append(name)
        for path in paths:
            rel = path.relative_to(runs)
            run_dir, phase, cell_id = runs / rel.parts[0], rel.parts[2], path.stem
            for f in [path, *(run_dir / "series" / phase).glob(f"{cell_id}.rank*.csv")]:
                target = apart / f.relative_to(runs)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, target)
                side = f.with_name(f.name + SUFFIX)  # a sidecar written before goes with it
                if side.exists():
                    os.replace(side, target.with_name(target.name + SUFFIX))
    bench = study / "bench" / f"{slice_id}.json"
    doc = _read(bench)
    if doc and any(b.get("name") not in keep for b in doc.get("benchmarks", [])):
        apart.mkdir(parents=True, exist_ok=True)
        os.replace(bench, apart / "bench.json")
        kept = [b for b in doc["benchmarks"] if b.get("name") in keep]
        moved += [b.get("name") for b in doc["benchmarks"] if b.get("name") not in keep]
        if kept:
            tmp = bench.with_name(bench.name + ".tmp")
            tmp.write_text(json.dumps({**doc, "benchmarks": kept}, indent=4))
            os.replace(tmp, bench)
    return sorted(set(moved))


def problems(study: Path) -> list[str]:
    """Every cell run not recorded exactly once: a duplicate (records or benchmark entries in
    two slices of one cycle, or twice in one), a record outside its cell run's slice, a record
    of another attempt, a cell run missing (not run, or passed without its record)."""
    study = Path(study)
    m = Manifest.load(study / "manifest.json")
    runs = m.by_key()
    out: list[str] = []
    found: dict[str, dict[str, list[str]]] = {"record": {}, "benchmark entry": {}}
    for slice_id, sl in sorted(m.slices.items()):
        for name, paths in slice_records(study, slice_id).items():
            for path in paths:
                problem = _attempt_problem(path, slice_id)
                if problem:
                    out.append(f"{path.relative_to(study)}: {problem}")
                found["record"].setdefault(f"{name}@{sl.cycle}", []).append(slice_id)
        for name in bench_names(study, slice_id):
            found["benchmark entry"].setdefault(f"{name}@{sl.cycle}", []).append(slice_id)
    for what, by_key in found.items():
        for key, slices in sorted(by_key.items()):
            r = runs.get(key)
            name, cycle = key.rsplit("@", 1)
            if r is None:
                out.append(f"{name} (cycle {cycle}): a {what} in slice {slices[0]}, not a cell "
                           "run of this study")  # fmt: skip
            elif len(slices) > 1:
                out.append(f"duplicate: {name} (cycle {cycle}) has a {what} in each of "
                           f"{', '.join(slices)}")  # fmt: skip
            elif r.slice != slices[0]:
                out.append(f"{name} (cycle {cycle}): a {what} in slice {slices[0]}, but its "
                           f"state came from slice {r.slice}")  # fmt: skip
    for r in m.cells:
        if r.state in ("pending", "running"):
            out.append(f"missing: {r.name} (cycle {r.cycle}) has not run ({r.state})")
        elif r.state == "passed" and writes_records(m):
            if r.key not in found["record"]:
                out.append(f"missing: {r.name} (cycle {r.cycle}) passed without a record")
            if PHASES[r.phase].timed and r.key not in found["benchmark entry"]:
                out.append(f"missing: {r.name} (cycle {r.cycle}) passed without a benchmark entry")
    return out
