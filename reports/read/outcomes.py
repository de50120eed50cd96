"""Which cells the tables and plots may use: passed ones only; every other cell is counted and
listed, so a report never reads as if a failed cell had not been run.

A benchmark entry is left out when its extra_info says `correct: false` or when its cell's
record (any cycle's, in a study) says it did not pass (a run from before correctness gated
publication could time a cell that then failed its check).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from common.phases import check_only
from reports.read.load import Inputs

LEFT_OUT_COLUMNS = ["cell", "status", "failure_kind", "failed_rank", "failure"]


@dataclass
class Outcomes:
    timed: pd.DataFrame  # benchmark entries of cells that passed
    checked: pd.DataFrame  # check-only (phase0) records with error figures, passed or failed
    left_out: pd.DataFrame  # LEFT_OUT_COLUMNS: failed, errored and excluded cells
    counts: list[str]  # one line per phase: "phase0: 18 of 76 cells correct."


def _first_line(text) -> str:
    return str(text).strip().splitlines()[0] if isinstance(text, str) and text.strip() else "-"


def sort_out(inputs: Inputs) -> Outcomes:
    recs, bench = inputs.records, inputs.benchmarks
    # a cell whose record did not pass, in any cycle of a study, is not trusted in any
    failed = set(recs["name"][recs.status != "passed"])
    said_wrong = (
        bench.correct.eq(False) if "correct" in bench else pd.Series(False, index=bench.index)
    )
    not_passed = bench["name"].isin(failed)
    excluded = bench[said_wrong & ~not_passed]  # the rest are listed by their record
    rows = [
        [r.name, r.status, r.failure_kind, r.failed_rank, _first_line(r.failure)]
        for r in recs[recs.status != "passed"].itertuples()
    ] + [
        [n, "excluded", None, None, "benchmark extra_info says correct: false"]
        for n in excluded["name"]
    ]
    left_out = pd.DataFrame(rows, columns=LEFT_OUT_COLUMNS).sort_values("cell")
    timed = bench[~said_wrong & ~not_passed]
    counts = []
    for phase in sorted(set(recs.phase) | set(bench.phase)):
        names = set(recs["name"][recs.phase == phase]) | set(bench["name"][bench.phase == phase])
        bad = names & set(left_out.cell)
        word = "correct" if phase in check_only() else "passed"
        line = f"{phase}: {len(names) - len(bad)} of {len(names)} cells {word}"
        counts.append(line + (f" ({len(bad)} left out, listed below)." if bad else "."))
    p0 = recs[recs.phase.isin(check_only()) & recs.emulated.notna()]
    return Outcomes(timed, p0, left_out, counts)
