"""The harness's own exceptions: each names the cell (or file) and the rule it broke."""

from __future__ import annotations

import difflib
import signal


class BenchError(Exception):
    """Base of every error the harness raises on purpose."""


class MatrixError(BenchError):
    """benchmarks.json (or a cell built from it) breaks a rule; raised before anything runs."""


class CellSpecError(BenchError):
    """A cell cannot run on this machine or with these axes (names the cell and the rule)."""


class MaskError(BenchError):
    """A mask pair is not 2:4 in every group or not complementary."""


class CorrectnessError(BenchError, AssertionError):
    """A method's output disagrees with the float64 reference beyond the derived bound."""


class RankError(BenchError):
    """A rank raised, died or hung; the message names the task, the rank and the world size.

    The attributes are what a failure record keeps, so nobody has to parse the message.

    Attributes:
        rank: the rank the failure is blamed on, None when no single rank can be named.
        kind: "rank_error" (raised), "out_of_memory" (raised an out-of-memory error),
            "rank_crash" (the process died) or "rank_hang" (did not answer in time).
        stacks: each rank's Python stack when the pool stopped waiting, None if not taken.
    """

    KINDS = ("rank_error", "out_of_memory", "rank_crash", "rank_hang")

    def __init__(
        self,
        message: str,
        rank: int | None = None,
        kind: str = "rank_error",
        stacks: dict[int, str] | None = None,
    ):
        if kind not in self.KINDS:
            raise ValueError(f"RankError kind {kind!r} is not one of {self.KINDS}")
        super().__init__(message)
        self.rank = rank
        self.kind = kind
        self.stacks = stacks


class RankTimeout(RankError):
    """A rank did not answer within the bound (kind "rank_hang"); its group is torn down."""

    def __init__(self, message: str, rank: int | None = None, stacks=None):
        super().__init__(message, rank, "rank_hang", stacks)


class MeterUnavailable(BenchError):
    """No energy meter can read this device; the reason goes into the record, never a number."""


class RecordError(BenchError):
    """A document does not fit the record schema (common/schema): the message names the field,
    and the reader adds the file."""


class ReportInputError(BenchError):
    """A report input is missing, malformed, given twice or of a record version not known here;
    the message names the file and the field."""


class ReportOutputError(BenchError):
    """The report folder asked for is not one `reports build` made, so it is never replaced."""


def closest(name: str, allowed) -> str:
    """Return ' (did you mean X?)' for the closest allowed name, or '' when none is close."""
    match = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


class StudyError(BenchError):
    """A study (bench.study) cannot start, resume or be read: names the folder and the rule."""


class RunStopped(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) asked the run to stop: raised where Ctrl+C raises
    KeyboardInterrupt, so pytest ends the session the same way whatever the signal.

    Attributes:
        signum: the signal that stopped the run.
    """

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


class GateError(BenchError):
    """A regression gate cannot judge: a run file is missing or malformed, holds no raw samples,
    or was measured on another machine under --bs-strict-machine; names the file and the rule."""
