"""A study folder (bench.study) as a report input: its manifest's failure table and per-cell
spread over cycles, and the benchmark files and run folders of its slices.

The study's records are checked against their sha256 sidecars first (bench.study.tables); a
record that does not match is a ReportInputError, so a report never rests on an edited file.
A cell timed in several cycles becomes one row: its samples pooled, its median taken over the
pool; the cycle-to-cycle spread is shown beside it so a drifting cell is seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.study.manifest import Manifest
from bench.study.tables import StudyTables, study_tables
from common.errors import ReportInputError, StudyError
from reports.render.html import md_table


@dataclass(frozen=True)
class Study:
    folder: Path
    tables: StudyTables
    bench: dict[Path, int]  # benchmark JSON file -> its cycle
    runs: dict[Path, int]  # run folder -> its cycle


def is_study(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "manifest.json").is_file()


def read_study(folder: Path) -> Study:
    """The study's tables and the files of its slices (slices that left none are skipped)."""
    folder = Path(folder)
    try:
        tables = study_tables(folder)
        slices = Manifest.load(folder / "manifest.json").slices.values()
    except (StudyError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ReportInputError(f"{folder}: a study folder that cannot be read: {e}") from None
    bench, runs = {}, {}
    for sl in slices:
        path = folder / "bench" / f"{sl.id}.json"
        if path.is_file():
            bench[path] = sl.cycle
        for run in sorted((folder / "runs" / sl.id).glob("*/cells")):
            runs[run.parent] = sl.cycle
    return Study(folder, tables, bench, runs)


def pool_cycles(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: samples of every cycle pooled, median_s over the pool, the rest from
    the first cycle; `cycles` says how many were pooled."""
    if df.empty or "cycle" not in df:
        return df
    rows = []
    for _, g in df.sort_values("cycle").groupby("name", sort=False):
        first = g.iloc[0].to_dict()
        pooled = [s for samples in g.samples for s in samples]
        first.update(samples=pooled, median_s=float(np.median(pooled)), cycles=len(g))
        rows.append(first)
    return pd.DataFrame(rows)


def _reason(text: str) -> str:
    """One line of a failure's text: pytest's last `E ` line (the error), else the first."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    return errors[-1] if errors else (lines[0].strip() if lines else "-")


def failure_table(t: StudyTables) -> pd.DataFrame:
    cols = ["cell", "cycle", "state", "kind", "attempts", "reason"]
    rows = [[f.name, f.cycle, f.state, f.kind, f.attempts, _reason(f.reason)] for f in t.failures]
    return pd.DataFrame(rows, columns=cols)


def spread_table(t: StudyTables) -> pd.DataFrame:
    rows = [
        {
            "cell": s.name,
            "cycles": ", ".join(map(str, s.cycles)),
            "medians_ms": ", ".join(f"{m * 1e3:.4g}" for m in s.medians_s),
            "spread": s.spread,
        }
        for s in sorted(t.spread, key=lambda s: s.name)
    ]
    return pd.DataFrame(rows, columns=["cell", "cycles", "medians_ms", "spread"])


def section(studies: list[Study]) -> list[str]:
    """The report's top for each study: its status, failure table and spread per cell."""
    md = []
    for s in studies:
        t = s.tables
        md += [f"## Study {s.folder} (suite {t.suite}, {t.status}, design {t.design_hash[:12]})"]
        fail = failure_table(t)
        md += ["", f"### Failed or skipped cell runs ({len(fail)})", ""]
        md += [md_table(fail) if not fail.empty else "None: every cell run passed.", ""]
        md += ["### Spread of each cell's median over cycles: (max - min) / median", ""]
        md += [md_table(spread_table(t)), ""]
    return md
