"""Read pytest-benchmark JSON files and run folders into tables, refusing what does not add up.

Each benchmark becomes a row (its cell axes, device-time samples, extra_info); each cell record
of a run folder becomes a row (status, failure, error figures). Inputs are checked as they are
read: a missing, empty or malformed file, an input given twice, or one cell found twice raises
ReportInputError naming the file and the field or cell.
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
from reports.read.fields import field, number, numbers, read_json
from reports.read.records import RunState, load_run
from reports.read.study import Study, is_study, pool_cycles, read_study

# the figures' float keys: a missing one is NaN in the tables, as a number is where present
FLOAT_KEYS = float_keys(CellFigures)


@dataclass
class Inputs:
    """Everything the report is built from."""

    benchmarks: pd.DataFrame  # one row per timed cell, every phase (cycles of a study pooled)
    records: pd.DataFrame  # one row per cell record, every phase and status
    runs: list[RunState]
    studies: list[Study] = dc_field(default_factory=list)


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
    timed, records, runs = [], [], []
    for p, cycle in expanded:
        if p.is_dir():
            if not (p / "cells").is_dir():
                raise ReportInputError(
                    f"{p}: a folder, but neither a run folder (no cells/) "
                    "nor a study folder (no manifest.json)"
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
    return Inputs(pool_cycles(benchmarks), cells, runs, studies)
