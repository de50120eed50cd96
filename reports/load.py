"""Read pytest-benchmark JSON files and run folders into tables, refusing what does not add up.

Each benchmark becomes a row (its cell axes, device-time samples, extra_info); each cell record
of a run folder becomes a row (status, failure, error figures). Inputs are checked as they are
read: a missing, empty or malformed file, an input given twice, or one cell found twice raises
ReportInputError naming the file and the field or cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.errors import ReportInputError
from measure.matrix import AXES, CellSpec
from reports.fields import field, number, numbers, read_json
from reports.records import RunState, load_run

# extra_info figures the report computes with: numbers where present (None allowed)
NUMERIC_INFO = (
    "compute_median_s",
    "collective_median_s",
    "host_overhead_s",
    "j_per_token",
    "mean_abs_error",
    "rel_fro_error",
    "pct_of_floor",
)


@dataclass
class Inputs:
    """Everything the report is built from."""

    benchmarks: pd.DataFrame  # one row per benchmark entry (phase1 timings)
    records: pd.DataFrame  # one row per cell record, every phase and status
    runs: list[RunState]


def _cell_from_name(name: str, path: Path) -> CellSpec:
    """Parse `phase1[method-N..-B..-dtype[-mask]-workload-wsK[-bias]]` back into a CellSpec."""
    try:
        phase, rest = name.split("[", 1)
        parts = rest.rstrip("]").split("-")
        bias = parts[-1] == "bias"
        if bias:
            parts = parts[:-1]
        method, n, b, dtype = parts[0], parts[1][1:], parts[2][1:], parts[3]
        ws = int(parts[-1][2:])
        workload = parts[-2]
        mask = parts[4] if len(parts) == 7 else None
        n_in, _, n_out = n.partition("x")
        return CellSpec(
            phase, method, int(n_in), int(n_out or n_in), int(b), dtype, mask, workload, ws, bias
        )
    except (ValueError, IndexError):
        raise ReportInputError(f"{path}: benchmark name {name!r} is not a harness cell") from None


def _benchmark_row(b: dict, i: int, path: Path) -> dict:
    name = field(b, "name", path, f"benchmarks[{i}].")
    where = f"benchmarks[{i}] ({name})."
    info = dict(field(b, "extra_info", path, where, default={}))
    if "cell" in info:  # files written before extra_info carried the cell: read from the name
        for axis in AXES:
            field(info["cell"], axis, path, where + "extra_info.cell.")
        cell = CellSpec.from_dict(info.pop("cell"))
    else:
        cell = _cell_from_name(name, path)
    if "floor_s" not in info:
        raise ReportInputError(f"{path}: {name} has no harness extra_info (no floor_s)")
    info["floor_s"] = number(info["floor_s"], path, where + "extra_info.floor_s")
    for k in NUMERIC_INFO:
        if k in info:
            info[k] = number(info[k], path, where + "extra_info." + k, optional=True)
    stats = field(b, "stats", path, where)
    return {
        **cell.as_dict(),
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
    doc = read_json(path)
    if not isinstance(doc.get("benchmarks"), list):
        raise ReportInputError(f"{path}: no 'benchmarks' list: not a pytest-benchmark JSON file")
    rows = [_benchmark_row(b, i, path) for i, b in enumerate(doc["benchmarks"])]
    if not rows:
        raise ReportInputError(f"{path}: holds no benchmarks")
    return pd.DataFrame(rows)


def _refuse_duplicates(df: pd.DataFrame, what: str) -> None:
    """One cell twice (in two inputs, or twice in one) would count twice: name both places."""
    if df.empty:
        return
    dup = df[df.duplicated("name", keep=False)].sort_values("name")
    if not dup.empty:
        name = dup["name"].iloc[0]
        places = ", ".join(dup[dup["name"] == name].source)
        raise ReportInputError(f"{name}: {what} found twice, in {places}; give each cell once")


def load(inputs: list[Path]) -> Inputs:
    """Benchmark entries, cell records and run states of JSON files and run folders."""
    seen: dict[Path, Path] = {}
    for p in map(Path, inputs):
        if p.resolve() in seen:
            raise ReportInputError(f"{p}: given twice (as {seen[p.resolve()]} and {p})")
        seen[p.resolve()] = p
    timed, records, runs = [], [], []
    for p in map(Path, inputs):
        if p.is_dir():
            if not (p / "cells").is_dir():
                raise ReportInputError(f"{p}: a folder, but not a run folder (no cells/)")
            state, recs = load_run(p)
            runs.append(state)
            records += [r.row() for r in recs]
        else:
            timed.append(load_benchmark_json(p))
    empty = pd.DataFrame(columns=[*AXES, "name", "source", "emulated"])
    benchmarks = pd.concat(timed, ignore_index=True) if timed else empty
    cells = pd.DataFrame(records) if records else empty.assign(status=[])
    _refuse_duplicates(benchmarks, "benchmark")
    _refuse_duplicates(cells, "cell record")
    return Inputs(benchmarks, cells, runs)
