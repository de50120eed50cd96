"""Failure classes and the retry policy.

A failed cell's class comes from its record (record_version 2's `failure_kind`) when the
harness wrote one, else from the exception pytest reported, else from how the slice ended (the
study's watchdog killed it: `rank_hang`; the process died: `rank_crash`; a job ended from
outside, as its scheduler tells: `killed` by a signal or a cancel, `time_limit`, `preempted`,
`out_of_memory`, or `rank_crash` for a lost node).

Retry policy, per cell and cycle: a hang, a crash, a kill or a job's time limit is retried once,
alone, in a fresh process (each can be the machine's or the scheduler's doing: a stuck
collective, a driver hiccup, a user's kill, a cell started just before the limit); a preempted
cell up to three times (never its own fault); a wrong result, a rank that raised, out of memory
and the time cap are not retried (running them again gives the same answer, and out of memory
is never retried at a larger size: the cell's size is fixed).
"""

from __future__ import annotations

import json
from pathlib import Path

from common.outcomes import FAILURE_KINDS
from measure.ranks.failures import describe_exit

RETRIES = {"rank_hang": 1, "rank_crash": 1, "killed": 1, "time_limit": 1, "preempted": 3}
JOB_KINDS = ("killed", "time_limit", "preempted")  # a job ended from outside (beside FAILURE_KINDS)

# SLURM job states (sacct's State, its first word) that end a job abnormally.
SLURM_ENDS = {
    "CANCELLED": ("killed", "the job was cancelled"),
    "TIMEOUT": ("time_limit", "the job hit its time limit"),
    "DEADLINE": ("time_limit", "the job hit its deadline"),
    "PREEMPTED": ("preempted", "the job was preempted"),
    "OUT_OF_MEMORY": ("out_of_memory", "the job ran out of memory"),
    "NODE_FAIL": ("rank_crash", "the job's node failed"),
    "BOOT_FAIL": ("rank_crash", "the job's node failed to boot"),
    "FAILED": ("rank_crash", "the job failed (non-zero exit)"),
}

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


def slurm_job_end(state: str) -> tuple[str, str] | None:
    """(class, cause) of a SLURM job that ended abnormally, from its state as submitit reads it
    from sacct ("TIMEOUT", "CANCELLED by 1234", ...); None for COMPLETED and any state that
    does not say (UNKNOWN: sacct had no answer; the job's own result is used then)."""
    word = (state or "").split(" ", 1)[0].rstrip("+")
    if word not in SLURM_ENDS:
        return None
    kind, cause = SLURM_ENDS[word]
    return kind, f"{cause} (SLURM state {state})"


def local_job_end(returncode: int | None) -> tuple[str, str] | None:
    """(class, cause) of a local submitit job (its controller process) that ended abnormally:
    a signal is `killed`, a non-zero exit `rank_crash`; None while it runs or when it exited 0
    (its own result says the rest)."""
    if not returncode:
        return None
    if returncode < 0:
        return "killed", f"the job was {describe_exit(returncode)}"
    return "rank_crash", f"the job {describe_exit(returncode)}"


def should_retry(kind: str, attempts: int) -> bool:
    """Whether a cell that failed with `kind` after `attempts` tries runs once more."""
    return attempts <= RETRIES.get(kind, 0)
