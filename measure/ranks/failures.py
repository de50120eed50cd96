"""How long a pool waits for its ranks, and how a rank's failure is named: its kind, its exit,
every rank's stack."""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass, fields

from common.errors import BenchError

# Start-up spawns interpreters that import torch: 10-30 s when a 2-core machine is busy.
DEFAULT_STARTUP_S = 120.0
# Set-up (environment, ceilings) runs once per pool and may time a few large kernels.
DEFAULT_SETUP_S = 600.0
DEFAULT_TASK_S = 120.0
GRACE_S = 5.0  # how long the other ranks get to finish after one rank raised


def timeout_problem(value) -> str | None:
    """What is wrong with a timeout in seconds, or None: it must be finite and positive."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        return f"must be a finite positive number of seconds, got {value!r}"
    return None


@dataclass(frozen=True)
class Timeouts:
    """Seconds a pool waits for its ranks, per kind of call.

    Attributes:
        startup_s: spawn, import torch and join the process group.
        setup_s: a once-per-pool set-up task (`run_setup`: environment, ceilings).
        task_s: a cell's task (`run`).
    """

    startup_s: float = DEFAULT_STARTUP_S
    setup_s: float = DEFAULT_SETUP_S
    task_s: float = DEFAULT_TASK_S

    def __post_init__(self):
        for f in fields(self):
            problem = timeout_problem(getattr(self, f.name))
            if problem:
                raise BenchError(f"rank pool timeout {f.name} {problem}")

    @property
    def collective_s(self) -> float:
        """The process group's own bound on a collective: longer than every pool bound, so the
        pool (which takes the stacks) is the one that gives up first."""
        return max(self.startup_s, self.setup_s, self.task_s) + 2 * GRACE_S


def failure_kind(tb: str) -> str:
    """The record's failure_kind for a rank's traceback: out-of-memory errors are their own."""
    if "OutOfMemoryError" in tb or "CUDA out of memory" in tb:
        return "out_of_memory"
    return "rank_error"


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def describe_exit(exitcode: int) -> str:
    """'killed by signal 9 (SIGKILL)', 'exited with code 143 (128 + SIGTERM: stopped by it)' or
    'exited with code 3', from a Process.exitcode or a Popen.returncode."""
    if exitcode < 0:
        return f"killed by signal {-exitcode} ({_signal_name(-exitcode) or 'unknown signal'})"
    name = _signal_name(exitcode - 128) if exitcode > 128 else None
    if name:
        return f"exited with code {exitcode} (128 + {name}: stopped by it)"
    return f"exited with code {exitcode}"


def format_stacks(stacks: dict[int, str], missing) -> str:
    """Each rank's stack under a heading that says whether the rank had answered."""
    parts = []
    for rank, text in sorted(stacks.items()):
        state = "did not answer" if rank in missing else "had answered"
        parts.append(f"--- rank {rank} ({state}) ---\n{text.rstrip()}")
    return "\n".join(parts)


_TRACEBACK = "Traceback (most recent call last):"


def cause_line(failure: str) -> str:
    """The one line of a failure's text that says what went wrong, for a table.

    A rank's failure holds its traceback, then notes (secondary ranks, "the group was torn
    down"); its last line is a note and its first the context. The cause is the exception line
    that ends the last traceback (the one raised last, after any "during handling"), else the
    text's first line (a rank that died or hung, a failed check), each without a leading
    "phase[...]: " cell name, which the table shows apart.
    """
    lines = failure.strip().splitlines()
    if not lines:
        return "-"
    if _TRACEBACK in lines:
        start = len(lines) - lines[::-1].index(_TRACEBACK)
        for line in lines[start:]:
            if line.strip() and not line[0].isspace():
                return line.strip()
    first = lines[0].strip()
    head, sep, rest = first.partition("]: ")
    return rest if sep and "[" in head and " " not in head else first
