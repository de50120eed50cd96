"""Measured cells the time model is fitted on, from any input a user has.

Inputs: the harness's pytest-benchmark JSON files, its run folders (results/<run_id>, a
passed phase-1 cell record's `figures`), and the original study's results folders (through
reports/imports/original_study.py). Each timed phase-1 cell on a GPU that a machine description
names becomes one Observation per timing mode it reports: the harness's graph-mode median (with
compute and collective timed apart on two ranks) and its eager median; the original's eager p50
(with its all-reduce p50). Emulated cells, other phases and GPUs no description names are skipped,
each with its reason, so a fit never silently rests on fewer cells than the user gave.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ReportInputError
from kernels.registry import spec
from reports.imports import original_study
from reports.model.machine import GpuSpec, for_device
from reports.model.time_model import BUS_FACTOR, Cell
from reports.read.fields import read_json
from reports.read.load import load_benchmark_json


@dataclass(frozen=True)
class Observation:
    """One measured forward: the cell, the machine, the median and, where timed apart, the
    compute alone and the collective alone (seconds)."""

    cell: Cell
    machine: str
    median_s: float
    compute_s: float | None
    collective_s: float | None
    source: str
    imported: bool = False


@dataclass(frozen=True)
class CollectiveSample:
    """A collective timed on its own on a machine's link: a cell's collective median, or the
    run's link ceiling (nccl-tests' bus bandwidth at the ceiling's message size)."""

    machine: str
    collective: str
    payload_bytes: float
    world_size: int
    seconds: float
    source: str


@dataclass(frozen=True)
class Measured:
    """Everything read from the inputs: cells, collectives timed alone, and what was skipped."""

    cells: list[Observation] = field(default_factory=list)
    collectives: list[CollectiveSample] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __add__(self, other: Measured) -> Measured:
        return Measured(
            self.cells + other.cells,
            self.collectives + other.collectives,
            self.skipped + other.skipped,
        )

    def on(self, machine: str) -> Measured:
        """Only the given machine's cells and collectives."""
        return Measured(
            [o for o in self.cells if o.machine == machine],
            [c for c in self.collectives if c.machine == machine],
            self.skipped,
        )


def _num(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value) if value > 0 else None
    return None


def _ceilings(
    info: Mapping[str, Any], machine: str, ws: int, source: str
) -> list[CollectiveSample]:
    """The run's link ceilings (nccl-tests' bus bandwidth at its message size) as samples."""
    c = info.get("ceilings")
    if ws < 2 or not isinstance(c, Mapping) or not _num(c.get("collective_bytes")):
        return []
    out = []
    for coll in BUS_FACTOR:
        busbw = _num(c.get(f"{coll}_bus_bytes_per_s"))
        if busbw:
            payload = float(c["collective_bytes"])
            bus = BUS_FACTOR[coll] * (ws - 1) / ws * payload
            out.append(CollectiveSample(machine, coll, payload, ws, bus / busbw, source))
    return out


def from_figures(
    cell: Mapping[str, Any],
    info: Mapping[str, Any],
    median_s: float | None,
    source: str,
    gpus: Mapping[str, GpuSpec],
) -> Measured:
    """One harness cell from its axes and figures (a benchmark's extra_info or a record's
    `figures`): its observations, its collective and the run's link ceilings, or why none."""
    if cell.get("phase") != "phase1":
        return Measured(skipped=[(source, f"phase {cell.get('phase')!r}: the model covers phase1")])
    if info.get("emulated"):
        return Measured(skipped=[(source, "emulated on a CPU: never compared with GPU timings")])
    gpu_name = info.get("gpu")
    gpu = for_device(str(gpu_name), gpus) if gpu_name else None
    if gpu is None:
        why = f"GPU {gpu_name!r} has no machine description" if gpu_name else "no GPU named"
        return Measured(skipped=[(source, why)])
    method = str(cell["method"])
    backend = cell.get("backend") or info.get("kernel_backend")
    backend = backend if spec(method).semi_structured else None
    ws = int(cell["world_size"])

    def make(mode: str, median: float | None, compute: object, coll: object) -> Observation | None:
        if median is None:
            return None
        return Observation(
            cell=Cell(
                method,
                backend,
                int(cell["N"]),
                int(cell["N_out"]),
                int(cell["B"]),
                str(cell["dtype"]),
                ws,
                mode,
            ),
            machine=gpu.key,
            median_s=median,
            compute_s=median if ws == 1 else _num(compute),
            collective_s=None if ws == 1 else _num(coll),
            source=source,
        )

    mode = str(info.get("mode") or "graph")
    obs = [
        make(mode, _num(median_s), info.get("compute_median_s"), info.get("collective_median_s"))
    ]
    if mode != "eager":  # the eager median is the whole forward; its parts were not timed apart
        obs.append(make("eager", _num(info.get("eager_median_s")), None, None))
    return Measured(
        [o for o in obs if o is not None], _ceilings(info, gpu.key, ws, source + " (ceilings)")
    )


def from_benchmark_json(path: Path, gpus: Mapping[str, GpuSpec]) -> Measured:
    """A pytest-benchmark JSON file's cells."""
    out = Measured()
    for row in load_benchmark_json(path).to_dict("records"):
        out += from_figures(row, row, row["median_s"], f"{path}::{row['name']}", gpus)
    return out


def from_run_folder(folder: Path, gpus: Mapping[str, GpuSpec]) -> Measured:
    """A run folder's passed phase-1 cell records (their `figures`)."""
    out = Measured()
    for path in sorted((folder / "cells" / "phase1").glob("*.json")):
        doc = read_json(path)
        passed = doc.get("status") == "passed" or doc.get("correct") is True
        figures = doc.get("figures")
        if not passed or not isinstance(figures, dict):
            out += Measured(skipped=[(str(path), "not a passed cell with figures")])
            continue
        cell = {**doc["cell"], "phase": doc.get("phase", "phase1")}
        mode = str(figures.get("mode") or "graph")
        out += from_figures(cell, figures, figures.get(f"{mode}_median_s"), str(path), gpus)
    return out


def from_original(cells: Iterable[original_study.ImportedCell]) -> Measured:
    """The original study's cells: eager p50s, with its all-reduce p50 as the collective."""
    out = Measured()
    for c in cells:
        if c.machine is None:
            out.skipped.append((c.source, f"GPU {c.gpu!r} has no machine description"))
            continue
        cell = Cell(c.method, c.backend, c.N, c.N_out, c.B, c.dtype, c.world_size, c.mode)
        out.cells.append(
            Observation(
                cell=cell,
                machine=c.machine,
                median_s=c.median_s,
                compute_s=c.median_s if c.world_size == 1 else None,
                collective_s=c.collective_median_s,
                source=c.source,
                imported=True,
            )
        )
    return out


def load(paths: Iterable[Path], gpus: Mapping[str, GpuSpec], pool: bool = True) -> Measured:
    """Every input: benchmark JSON files, run folders, original-study results folders (its
    repeated runs of one cell pooled into one, as a study pools its cycles, unless `pool` is
    off)."""
    out = Measured()
    for p in map(Path, paths):
        if p.is_file() and p.suffix == ".json":
            out += from_benchmark_json(p, gpus)
        elif p.is_dir() and (p / "cells").is_dir():
            out += from_run_folder(p, gpus)
        elif p.is_dir():
            result = original_study.load([p])
            cells = original_study.pooled(result.cells) if pool else result.cells
            out += from_original(cells) + Measured(skipped=list(result.skipped))
        else:
            raise ReportInputError(
                f"{p}: not a benchmark JSON file, a run folder or the original study's results"
            )
    return out
