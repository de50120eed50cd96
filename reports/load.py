"""Read pytest-benchmark JSON files and run-record folders into one tidy table.

Each phase1 benchmark becomes a row (its cell axes, device-time samples, extra_info); each
phase0 record becomes a row of error figures. Inputs are checked as they are read: a missing,
empty or malformed file raises ReportInputError naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from measure.matrix import AXES, CellSpec


class ReportInputError(Exception):
    """An input file is missing, empty or not what the harness writes."""


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise ReportInputError(f"{path}: no such file")
    text = path.read_text()
    if not text.strip():
        raise ReportInputError(f"{path}: empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{path}: not valid JSON ({e})") from None


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


def load_benchmark_json(path: Path) -> pd.DataFrame:
    doc = _read_json(path)
    if "benchmarks" not in doc:
        raise ReportInputError(f"{path}: no 'benchmarks' key: not a pytest-benchmark JSON file")
    rows = []
    for b in doc["benchmarks"]:
        info = dict(b.get("extra_info", {}))
        # files written before extra_info carried the cell are read back from the cell id
        cell = (
            CellSpec.from_dict(info.pop("cell"))
            if "cell" in info
            else _cell_from_name(b["name"], path)
        )
        if "floor_s" not in info:
            raise ReportInputError(f"{path}: {b['name']} has no harness extra_info")
        rows.append(
            {
                **cell.as_dict(),
                "source": str(path),
                "median_s": b["stats"]["median"],
                "samples": b["stats"]["data"],
                **info,
            }
        )
    if not rows:
        raise ReportInputError(f"{path}: holds no benchmarks")
    return pd.DataFrame(rows)


def load_records(folder: Path) -> pd.DataFrame:
    """phase0 records of one run folder (results/<run_id>)."""
    files = sorted(folder.glob("cells/phase0/*.json"))
    rows = []
    for f in files:
        doc = _read_json(f)
        if "cell" not in doc or "ranks" not in doc:
            raise ReportInputError(f"{f}: not a harness cell record")
        errs = [r["errors"] for r in doc["ranks"]]
        rows.append(
            {
                **doc["cell"],
                "source": str(f),
                "emulated": doc["emulated"],
                "correct": doc["correct"],
                "rel_fro_error": max(e["rel_fro"] for e in errs),
                "rel_fro_bound": errs[0]["rel_fro_bound"],
                "max_abs_error": max(e["max_abs"] for e in errs),
            }
        )
    return pd.DataFrame(rows)


def load(inputs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(phase1 rows, phase0 rows) from JSON files and run folders."""
    timed, checked = [], []
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            if not (p / "cells").is_dir():
                raise ReportInputError(f"{p}: a folder, but not a run folder (no cells/)")
            checked.append(load_records(p))
        else:
            timed.append(load_benchmark_json(p))
    t = pd.concat(timed, ignore_index=True) if timed else pd.DataFrame(columns=AXES)
    c = pd.concat(checked, ignore_index=True) if checked else pd.DataFrame(columns=AXES)
    return t, c
