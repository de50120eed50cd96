"""The words a cell's record uses for how it ended, shared by the harness that writes them,
the reports that read them and the studies that classify them. Each is a Literal type (what the
record schema checks a value against) and the tuple of its words (what code iterates)."""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal["passed", "failed", "error"]  # failed: its check failed; error: a rank failed
FailureKind = Literal[
    "wrong_result",
    "rank_error",
    "rank_crash",
    "rank_hang",
    "out_of_memory",
    "time_cap",
]
STATUSES: tuple[str, ...] = get_args(Status)
FAILURE_KINDS: tuple[str, ...] = get_args(FailureKind)
