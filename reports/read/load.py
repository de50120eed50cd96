"""Read pytest-benchmark JSON files, run folders, study folders and the original study's records
into tables, refusing what does not add up.

Each benchmark becomes a row (its cell axes, device-time samples, extra_info); each cell record
of a run folder becomes a row (status, failure, error figures). A folder in the original
Block-Shock study's layout (its `results/official`, a sweep, or one run folder:
`phase1_forward/<method>/<run_id>/metrics.jsonl` beside `env.json`) is read through
reports/imports/original_study.py into rows of their own, labelled imported, never mixed with
the harness's. Inputs are checked as they are read: a missing, empty or malformed file, an input
given twice, or one cell (or original run) found twice raises ReportInputError naming the file
and the field or cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import pandas as pd

from common.cell import AXES
from common.errors import RecordError, ReportInputError
from common.schema.codec import float_keys, to_json
from common.schema.figures import CellFigures
from common.schema.run import BENCHMARK_JSON
from common.schema.versions import read_figures
from reports.imports import original_study
from reports.read.fields import field, number, numbers, read_json
from reports.read.records import RunState, load_run
from reports.read.study import Study, is_study, pool_cycles, read_study

# the figures' float keys: a missing one is NaN in the tables, as a number is where present
FLOAT_KEYS = float_keys(CellFigures)


@dataclass
class Imported:
    """The original study's records among the inputs: one row per cell, its repeated runs
    pooled (original_study.pooled: the median of their p50s, as a study pools its cycles)."""

    cells: pd.DataFrame  # ImportedCell.row() each: imported, imported_from, timing, runs, ...
    runs: int = 0  # run folders read
    skipped: list[tuple[str, str]] = dc_field(default_factory=list)  # (run, why)


@dataclass
class Inputs:
    """Everything the report is built from."""

    benchmarks: pd.DataFrame  # one row per timed cell, every phase (cycles of a study pooled)
    records: pd.DataFrame  # one row per cell record, every phase and status
    runs: list[RunState]
    studies: list[Study] = dc_field(default_factory=list)
    imported: Imported = dc_field(default_factory=lambda: Imported(pd.DataFrame()))


def _benchmark_row(b: dict[str, Any], i: int, path: Path) -> dict[str, Any]:
    """One benchmark of a pytest-benchmark file: its cell's axes, its samples (device seconds)
    and its figures (the record schema's CellFigures, any readable version)."""
    name = field(b, "name", path, f"benchmarks[{i}].")
    where = f"benchmarks[{i}] ({name}).extra_info"
    if "floor_s" not in b.get("extra_info", {}):
        raise ReportInputError(f"{path}: {name} has no harness extra_info (no floor_s)")
    try:
        figures = read_figures(b["extra_info"], name, str(path), where)
    except RecordError as e:
        raise ReportInputError(str(e)) from None
    info = {k: v for k, v in to_json(figures).items() if k != "cell"}
    for k in FLOAT_KEYS:
        if info.get(k) is None:
            info[k] = math.nan
    stats = field(b, "stats", path, f"benchmarks[{i}] ({name}).")
    where = f"benchmarks[{i}] ({name})."
    # extra_info's `samples` is a count; it must not shadow the samples the intervals resample
    info["sample_count"] = info.pop("samples", None)
    row = figures.cell.as_dict()
    # the 2:4 kernel path is part of a row's identity: the cell's axis, else what the run used
    row["backend"] = figures.cell.backend or figures.kernel.kernel_backend
    return {
        **row,
        "name": name,
        "source": str(path),
        "median_s": number(
            field(stats, "median", path, where + "stats."), path, where + "stats.median"
        ),
        "samples": numbers(
            field(stats, "data", path, where + "stats."), path, where + "stats.data"
        ),
        **info,
    }


def load_benchmark_json(path: Path) -> pd.DataFrame:
    """Every benchmark of one pytest-benchmark JSON file, a row each."""
    doc = read_json(path)
    if not isinstance(doc.get("benchmarks"), list):
        raise ReportInputError(f"{path}: no 'benchmarks' list: not a pytest-benchmark JSON file")
    rows = [_benchmark_row(b, i, path) for i, b in enumerate(doc["benchmarks"])]
    if not rows:
        raise ReportInputError(f"{path}: holds no benchmarks")
    return pd.DataFrame(rows)


def _refuse_duplicates(df: pd.DataFrame, what: str) -> None:
    """One cell twice (in two inputs, or twice in one; in one cycle of a study) would count
    twice: name both places."""
    if df.empty:
        return
    key = ["name", "cycle"] if "cycle" in df else ["name"]
    dup = df[df.duplicated(key, keep=False)].sort_values("name")
    if not dup.empty:
        name = dup["name"].iloc[0]
        places = ", ".join(dup[dup["name"] == name].source)
        raise ReportInputError(f"{name}: {what} found twice, in {places}; give each cell once")


def is_original(path: Path) -> bool:
    """A folder in the original study's layout: one of its run folders (metrics.jsonl beside
    env.json), or a folder holding them at phase1_forward/<method>/<run_id>/."""
    p = Path(path)
    if (p / "metrics.jsonl").is_file() and (p / "env.json").is_file():
        return True
    return next(p.glob("**/phase1_forward/*/*/metrics.jsonl"), None) is not None


def _imported(folders: list[Path]) -> Imported:
    """The original study's runs under `folders`, pooled per cell; a run reached through two
    inputs (a sweep and the results folder above it) is refused, as a cell found twice is."""
    if not folders:
        return Imported(pd.DataFrame())
    seen: dict[Path, Path] = {}
    cells: list[original_study.ImportedCell] = []
    skipped: list[tuple[str, str]] = []
    for folder in folders:
        result = original_study.load([folder])
        for c in result.cells:
            run = Path(c.source).resolve()
            if run in seen:
                raise ReportInputError(
                    f"{c.source}: an original-study run found twice, under {seen[run]} and "
                    f"{folder}; give each run once"
                )
            seen[run] = folder
        cells += result.cells
        skipped += result.skipped
    rows = [c.row() for c in original_study.pooled(cells)]
    return Imported(pd.DataFrame(rows), len(cells), list(skipped))


def _expand(inputs: list[Path]) -> tuple[list[tuple[Path, int | None]], list[Study]]:
    """Each input as (file or run folder, its study cycle or None); a study folder becomes its
    slices' benchmark files and run folders, and a run folder brings its own benchmark file."""
    seen: dict[Path, Path] = {}
    for p in map(Path, inputs):
        if p.resolve() in seen:
            raise ReportInputError(f"{p}: given twice (as {seen[p.resolve()]} and {p})")
        seen[p.resolve()] = p
    out: list[tuple[Path, int | None]] = []
    studies: list[Study] = []
    for p in map(Path, inputs):
        if is_study(p):
            s = read_study(p)
            studies.append(s)
            out += [*s.bench.items(), *s.runs.items()]
        else:
            out.append((p, None))
            samples = p / BENCHMARK_JSON  # a run folder holds its timings (unless given apart)
            if p.is_dir() and samples.is_file() and samples.resolve() not in seen:
                out.append((samples, None))
    return out, studies


def load(inputs: list[Path]) -> Inputs:
    """Benchmark entries, cell records and run states of JSON files, run folders and study
    folders."""
    expanded, studies = _expand(inputs)
    timed, records, runs, originals = [], [], [], []
    for p, cycle in expanded:
        if p.is_dir():
            if not (p / "cells").is_dir() and is_original(p):
                originals.append(p)
                continue
            if not (p / "cells").is_dir():
                raise ReportInputError(
                    f"{p}: a folder, but neither a run folder (no cells/), a study folder (no "
                    "manifest.json) nor the original study's records (no "
                    "phase1_forward/<method>/<run_id>/metrics.jsonl under it)"
                )
            state, recs = load_run(p)
            runs.append(state)
            records += [{**r.row(), **({"cycle": cycle} if cycle else {})} for r in recs]
        else:
            df = load_benchmark_json(p)
            timed.append(df.assign(cycle=cycle) if cycle else df)
    empty = pd.DataFrame(columns=[*AXES, "name", "source", "emulated"])
    benchmarks = pd.concat(timed, ignore_index=True) if timed else empty
    cells = pd.DataFrame(records) if records else empty.assign(status=[])
    _refuse_duplicates(benchmarks, "benchmark")
    _refuse_duplicates(cells, "cell record")
    return Inputs(pool_cycles(benchmarks), cells, runs, studies, _imported(originals))
