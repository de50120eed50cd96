"""Read pytest-benchmark JSON files and run folders into tables, refusing what does not add up.

Each benchmark becomes a row (its cell axes, device-time samples, extra_info); each cell record
of a run folder becomes a row (status, failure, error figures). Inputs are checked as they are
read: a missing, empty or malformed file, an input given twice, or one cell found twice raises
ReportInputError naming the file and the field or cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import pandas as pd

from common.errors import ReportInputError
from measure.cells.matrix import AXES, CellSpec
from measure.records.writer import BENCHMARK_JSON
from reports.read.fields import field, number, numbers, read_json
from reports.read.records import RunState, load_run
from reports.read.study import Study, is_study, pool_cycles, read_study

# extra_info figures the report computes with: numbers where present (None allowed)
NUMERIC_INFO = (
    "compute_median_s",
    "collective_median_s",
    "host_overhead_s",
    "j_per_token",
    "mean_abs_error",
    "rel_fro_error",
    "pct_of_floor",
    "floor_s",  # None where the phase has no floor model (phase3)
    "backward_median_s",
    "forward_backward_median_s",
    "grad_weight_median_s",
    "optimizer_median_s",
    "compress_median_s",
)


@dataclass
class Inputs:
    """Everything the report is built from."""

    benchmarks: pd.DataFrame  # one row per timed cell, every phase (cycles of a study pooled)
    records: pd.DataFrame  # one row per cell record, every phase and status
    runs: list[RunState]
    studies: list[Study] = dc_field(default_factory=list)


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
    for k in NUMERIC_INFO:
        if k in info:
            info[k] = number(info[k], path, where + "extra_info." + k, optional=True)
    stats = field(b, "stats", path, where)
    # extra_info's `samples` is a count; it must not shadow the samples the intervals resample
    info["sample_count"] = info.pop("samples", None)
    row = cell.as_dict()
    # the 2:4 kernel path is part of a row's identity: the cell's axis, else what the run used
    row["backend"] = cell.backend or info.get("kernel_backend")
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
