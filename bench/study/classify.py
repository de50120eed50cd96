"""Failure classes and the retry policy.

A failed cell's class comes from its record (record_version 2's `failure_kind`) when the
harness wrote one, else from the exception pytest reported, else from how the slice ended (the
study's watchdog killed it: `rank_hang`; the process died: `rank_crash`).

Retry policy, per cell and cycle: a hang or a crash is retried once, alone, in a fresh process
(either can be the machine's fault: a stuck collective, a driver hiccup); a wrong result, a rank
that raised, out of memory and the time cap are not retried (running them again gives the same
answer, and out of memory is never retried at a larger size: the cell's size is fixed).
"""

from __future__ import annotations

import json
from pathlib import Path

from common.outcomes import FAILURE_KINDS

RETRIES = {"rank_hang": 1, "rank_crash": 1}

# (substring of pytest's failure text, class), first match wins.
_TEXT_RULES = (
    ("OutOfMemoryError", "out_of_memory"),
    ("out of memory", "out_of_memory"),
    ("CorrectnessError", "wrong_result"),
    ("RankTimeout", "rank_hang"),
    ("did not answer within", "rank_hang"),
    ("died without a traceback", "rank_crash"),
    ("time_cap", "time_cap"),
)


def kind_from_text(text: str) -> str:
    """The class of a failure from pytest's report text (v1 records carry none)."""
    for needle, kind in _TEXT_RULES:
        if needle in text:
            return kind
    return "rank_error"


def kind_from_record(slice_runs: Path, phase: str, cell_id: str) -> str | None:
    """`failure_kind` of the cell's v2 record under a slice's --bs-results folder, if any."""
    for path in Path(slice_runs).glob(f"*/cells/{phase}/{cell_id}.json"):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        kind = doc.get("failure_kind")
        if kind in FAILURE_KINDS:
            return kind
    return None


def should_retry(kind: str, attempts: int) -> bool:
    """Whether a cell that failed with `kind` after `attempts` tries runs once more."""
    return attempts <= RETRIES.get(kind, 0)
